// SPDX-License-Identifier: Apache-2.0
// A tight system call loop: getppid(2) N times (argv[1], default 10,000,000).
// getppid is one of the cheapest system calls, so what it measures is the
// cost of entering the kernel, and of whatever filter runs on entry.
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000000;
    long sum = 0;
    for (long i = 0; i < n; i++) sum += syscall(SYS_getppid);  // never the libc cache
    return sum == 0 ? 1 : 0;
}
