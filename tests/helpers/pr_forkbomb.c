// SPDX-License-Identifier: Apache-2.0
// Forks until the kernel refuses; each child waits forever. Prints
// "forked N, then ERRNO" and waits too, for the session's deadline.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    int forked = 0;
    for (;;) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;) pause();
        }
        if (pid < 0) break;
        ++forked;
    }
    printf("forked %d, then %s\n", forked, strerrorname_np(errno));
    fflush(stdout);
    for (;;) pause();
}
