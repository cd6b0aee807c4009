// SPDX-License-Identifier: Apache-2.0
// Sends one batch of UDP datagrams with sendmmsg(2), one to each HOST:PORT
// argument (IPv4 only), then, if the batch stopped early, the rest again
// from where it stopped. Prints each call's result as "sent N" or the
// errno's name, so a test sees what an agent sees.
#define _GNU_SOURCE  // sendmmsg, strerrorname_np
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_DATAGRAMS 16

static int parse(const char* arg, struct sockaddr_in* out) {
    char host[64];
    const char* colon = strrchr(arg, ':');
    if (!colon || colon - arg >= (long)sizeof(host)) return -1;
    memcpy(host, arg, colon - arg);
    host[colon - arg] = '\0';
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((unsigned short)atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char** argv) {
    struct sockaddr_in to[MAX_DATAGRAMS];
    struct mmsghdr msgs[MAX_DATAGRAMS];
    struct iovec iov[MAX_DATAGRAMS];
    int count = argc - 1;
    if (count < 1 || count > MAX_DATAGRAMS) return 2;
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < count; i++) {
        if (parse(argv[i + 1], &to[i]) != 0) return 2;
        iov[i].iov_base = argv[i + 1];
        iov[i].iov_len = strlen(argv[i + 1]);
        msgs[i].msg_hdr.msg_name = &to[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(to[i]);
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return 3;
    // Each call starts at the first datagram not sent; one that fails skips it.
    for (int next = 0; next < count;) {
        int n = sendmmsg(fd, msgs + next, count - next, 0);
        if (n < 0) {
            printf("%s\n", strerrorname_np(errno));
            next++;
        } else {
            printf("sent %d\n", n);
            next += n;
        }
    }
    return 0;
}
