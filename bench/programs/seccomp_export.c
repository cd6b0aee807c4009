// SPDX-License-Identifier: Apache-2.0
// Writes to stdout a seccomp BPF program for bwrap --seccomp: allow by
// default, EPERM for the system calls a container runtime's default filter
// typically refuses (escape and kernel attack surface), so that bwrap's
// launch pays for a filter of a size comparable to Cordon's.
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>

static const char* const kDenied[] = {
    "ptrace",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "lookup_dcookie",
    "open_by_handle_at",
    "name_to_handle_at",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "adjtimex",
    "clock_adjtime",
    "vhangup",
    "nfsservctl",
    "personality",
};

int main(void) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) return 1;
    for (size_t i = 0; i < sizeof(kDenied) / sizeof(kDenied[0]); i++) {
        int nr = seccomp_syscall_resolve_name(kDenied[i]);
        if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
        if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0) != 0) return 1;
    }
    int rc = seccomp_export_bpf(ctx, STDOUT_FILENO);
    seccomp_release(ctx);
    return rc == 0 ? 0 : 1;
}
