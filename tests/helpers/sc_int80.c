// SPDX-License-Identifier: Apache-2.0
// Calls getpid through int 0x80, the i386 ABI, from a 64-bit process.
// Under Cordon's filter the foreign ABI kills the process with SIGSYS;
// reaching the end means the filter let it through.
#include <stdio.h>

int main(void) {
#if defined(__x86_64__)
    long ret = 20;  // __NR_getpid in the i386 table
    __asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
    printf("int 0x80 getpid returned %ld\n", ret);
    return 0;
#else
    fprintf(stderr, "sc_int80: x86_64 only\n");
    return 77;
#endif
}
