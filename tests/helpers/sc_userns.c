// SPDX-License-Identifier: Apache-2.0
// Creates a user namespace, the door to most unprivileged kernel exploits.
// Exits with the errno it got, 0 if the call succeeded.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>

int main(void) {
    if (unshare(CLONE_NEWUSER) == 0) return 0;
    return errno;
}
