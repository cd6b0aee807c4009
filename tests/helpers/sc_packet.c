// SPDX-License-Identifier: Apache-2.0
// Opens a packet socket, which sees and forges whole frames and is beyond
// the reach of the cgroup sock_create hook. Exits with the errno it got, 0
// if the call succeeded.
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <sys/socket.h>

int main(void) {
    if (socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)) >= 0) return 0;
    return errno;
}
