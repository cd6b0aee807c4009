// SPDX-License-Identifier: Apache-2.0
// Calls getpid through the x32 ABI (the syscall number with
// __X32_SYSCALL_BIT set). Under Cordon's filter this kills the process with
// SIGSYS; exiting means the filter let it through.
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
#if defined(__x86_64__)
    long ret = syscall(0x40000000L | SYS_getpid);
    printf("x32 getpid returned %ld (errno %d)\n", ret, ret < 0 ? errno : 0);
    return 0;
#else
    fprintf(stderr, "sc_x32: x86_64 only\n");
    return 77;
#endif
}
