// SPDX-License-Identifier: Apache-2.0
// Runs argv[1..] under stacked seccomp filters that allow everything and
// fill the thread's whole seccomp budget: the kernel caps all of a thread's
// filters together (MAX_INSNS_PER_PATH, 32768 instructions, each filter
// counted 4 more; kernel/seccomp.c), so any filter a descendant installs
// fails with ENOMEM. A real way for a sandbox layer to fail. The budget is
// filled greedily, halving the filter size at each ENOMEM, so that filters
// already in place (a container's) do not matter.
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

// A filter of `len` instructions that loads the syscall number len-1 times
// and allows.
static int install_allow_all(unsigned short len) {
    struct sock_filter* insns = calloc(len, sizeof *insns);
    if (!insns) return -1;
    for (unsigned short i = 0; i + 1 < len; ++i)
        insns[i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                offsetof(struct seccomp_data, nr));
    insns[len - 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {len, insns};
    int rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
    free(insns);
    return rc;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sc_stack COMMAND [ARG...]\n");
        return 2;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("sc_stack: no_new_privs");
        return 1;
    }
    for (unsigned short len = BPF_MAXINSNS; len >= 1;) {
        if (install_allow_all(len) == 0) continue;
        if (errno != ENOMEM) {
            perror("sc_stack: seccomp");
            return 1;
        }
        len /= 2;
    }
    execv(argv[1], argv + 1);
    perror("sc_stack: execv");
    return 127;
}
