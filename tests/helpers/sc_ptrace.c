// SPDX-License-Identifier: Apache-2.0
// Asks to be traced by its parent, the first step of every ptrace-based
// escape. Exits with the errno it got, 0 if the call succeeded.
#include <errno.h>
#include <sys/ptrace.h>

int main(void) {
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) == 0) return 0;
    return errno;
}
