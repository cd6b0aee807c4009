// SPDX-License-Identifier: Apache-2.0
// One escape attempt per case, named by argv[1]: the syscall Cordon's
// default baseline must refuse, made the plain way. Prints the outcome and
// exits with the errno the call failed with, 0 when it succeeded.
//
//   sc_escape CASE                 run the case now
//   sc_escape --after FILE CASE    create FILE.ready, wait for FILE to
//                                  appear, run the case, write its errno
//                                  to FILE.result (the supervisor-killed test)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

// clone(2) with `flags`; a child that gets through exits at once.
static long clone_with(unsigned long flags) {
    long rc = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (rc == 0) _exit(0);
    if (rc > 0) waitpid((pid_t)rc, NULL, 0);
    return rc;
}

static long clone3_plain(void) {
    struct clone_args args = {.exit_signal = SIGCHLD};
    long rc = syscall(SYS_clone3, &args, sizeof args);
    if (rc == 0) _exit(0);
    if (rc > 0) waitpid((pid_t)rc, NULL, 0);
    return rc;
}

// A copy of /bin/true in a memfd, run with execveat(fd, "", AT_EMPTY_PATH).
static long memfd_exec(void) {
    int fd = (int)syscall(SYS_memfd_create, "payload", 0);
    if (fd < 0) return -1;
    int src = open("/bin/true", O_RDONLY | O_CLOEXEC);
    if (src < 0) return -1;
    char buf[65536];
    ssize_t n;
    while ((n = read(src, buf, sizeof buf)) > 0)
        if (write(fd, buf, (size_t)n) != n) return -1;
    close(src);
    char* argv[] = {"true", NULL};
    return syscall(SYS_execveat, fd, "", argv, environ, AT_EMPTY_PATH);
}

static long process_vm_read_parent(void) {
    char local[8], remote[8] = "x";
    struct iovec l = {local, sizeof local}, r = {remote, sizeof remote};
    return syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0);
}

static long perf_open(void) {
    struct perf_event_attr attr = {
        .size = sizeof attr, .type = PERF_TYPE_SOFTWARE, .config = PERF_COUNT_SW_CPU_CLOCK};
    return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
}

static long open_by_handle(void) {
    struct {
        unsigned int handle_bytes;
        int handle_type;
        unsigned char f_handle[8];
    } h = {8, 1, {0}};
    return syscall(SYS_open_by_handle_at, AT_FDCWD, &h, O_RDONLY);
}

static long io_uring(void) {
    struct io_uring_params params;
    memset(&params, 0, sizeof params);
    return syscall(SYS_io_uring_setup, 1, &params);
}

// FIONREAD on a pipe: an ordinary ioctl, which must work.
static long ioctl_plain(void) {
    int p[2], n = 0;
    if (pipe(p) != 0) return -1;
    return ioctl(p[0], FIONREAD, &n);
}

// Runs `name`; returns its result (< 0 with errno set on failure) or
// sets *unknown.
static long run_case(const char* name, int* unknown) {
    *unknown = 0;
#define CASE(n, call) \
    if (strcmp(name, n) == 0) return (long)(call)
    CASE("ptrace", ptrace(PTRACE_TRACEME, 0, 0, 0));
    CASE("bpf", syscall(SYS_bpf, BPF_PROG_LOAD, NULL, 0));
    CASE("mount", mount("none", "/nonexistent-cordon", "tmpfs", 0, NULL));
    CASE("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
    CASE("unshare", unshare(CLONE_NEWUSER));
    CASE("setns", setns(0, CLONE_NEWNET));
    CASE("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    CASE("add_key", syscall(SYS_add_key, "user", "cordon", "x", 1, KEY_SPEC_PROCESS_KEYRING));
    CASE("perf_event_open", perf_open());
    CASE("userfaultfd", syscall(SYS_userfaultfd, 0));
    CASE("init_module", syscall(SYS_init_module, NULL, 0, ""));
    CASE("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
    CASE("process_vm_readv", process_vm_read_parent());
    CASE("open_by_handle_at", open_by_handle());
    CASE("socket-packet", socket(AF_PACKET, SOCK_RAW, 0));
    CASE("socket-vsock", socket(AF_VSOCK, SOCK_STREAM, 0));
    CASE("socket-alg", socket(AF_ALG, SOCK_SEQPACKET, 0));
    CASE("socket-high-bits", syscall(SYS_socket, (1UL << 32) | AF_INET, SOCK_STREAM, 0));
    CASE("socket-sock-packet", socket(AF_INET, SOCK_PACKET, 0));
    CASE("socket-netlink-audit", socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT));
    CASE("socket-netlink-route", socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE));
    CASE("socket-unix", socket(AF_UNIX, SOCK_STREAM, 0));
    CASE("socket-inet", socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    CASE("socket-inet6", socket(AF_INET6, SOCK_DGRAM, 0));
    CASE("clone-newuser", clone_with(CLONE_NEWUSER));
    CASE("clone-newnet", clone_with(CLONE_NEWNET));
    CASE("clone-plain", clone_with(0));
    CASE("clone3", clone3_plain());
    CASE("io_uring_setup", io_uring());
    // An invalid descriptor: the kernel alone says EBADF, the filter EPERM.
    CASE("ioctl-tiocsti", ioctl(-1, TIOCSTI, "x"));
    CASE("ioctl-tiocsti-high-bits", syscall(SYS_ioctl, -1, (1UL << 32) | TIOCSTI, "x"));
    CASE("ioctl-tioclinux", ioctl(-1, TIOCLINUX, "x"));
    CASE("ioctl-plain", ioctl_plain());
    CASE("personality-linux32", personality(PER_LINUX32));
    CASE("personality-read-implies-exec", personality(READ_IMPLIES_EXEC));
    CASE("personality-query", personality(0xffffffff));
    CASE("personality-linux", personality(PER_LINUX));
    CASE("memfd-execveat", memfd_exec());
#undef CASE
    *unknown = 1;
    return 0;
}

static int report(const char* name, long rc) {
    int err = rc < 0 ? errno : 0;
    printf("%s: %s\n", name, err ? strerrorname_np(err) : "ok");
    return err;
}

int main(int argc, char** argv) {
    int unknown;
    if (argc == 4 && strcmp(argv[1], "--after") == 0) {
        char ready[4096], result[4096];
        snprintf(ready, sizeof ready, "%s.ready", argv[2]);
        snprintf(result, sizeof result, "%s.result", argv[2]);
        FILE* r = fopen(ready, "w");
        if (!r) return 125;
        fprintf(r, "%d\n", getpid());
        fclose(r);
        for (int i = 0; i < 3000 && access(argv[2], F_OK) != 0; i++) usleep(10000);
        long rc = run_case(argv[3], &unknown);
        FILE* out = fopen(result, "w");
        if (!out) return 125;
        fprintf(out, "%d\n", rc < 0 ? errno : 0);
        fclose(out);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: sc_escape CASE | sc_escape --after FILE CASE\n");
        return 125;
    }
    long rc = run_case(argv[1], &unknown);
    if (unknown) {
        fprintf(stderr, "sc_escape: unknown case '%s'\n", argv[1]);
        return 125;
    }
    return report(argv[1], rc);
}
