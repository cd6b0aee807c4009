// SPDX-License-Identifier: Apache-2.0
// Copies an ELF (argv[1]) into a memfd and tries to run it, by path and by
// descriptor; then asks for an executable memfd outright. Prints one line
// per attempt: "execve: ERRNO", "fexecve: ERRNO", "mfd_exec: ok|ERRNO".
// An attempt that succeeds runs the ELF instead, and nothing more prints.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

static int copy_into_memfd(const char* elf) {
    int fd = memfd_create("payload", 0);
    int in = open(elf, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || in < 0) return -1;
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(fd, buf, (size_t)n) != n) return -1;
    close(in);
    return fd;
}

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    int fd = copy_into_memfd(argv[1]);
    if (fd < 0) {
        printf("memfd: %s\n", strerrorname_np(errno));
        return 1;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    char* args[] = {argv[1], NULL};
    char* env[] = {NULL};
    execve(path, args, env);
    printf("execve: %s\n", strerrorname_np(errno));
    fexecve(fd, args, env);
    printf("fexecve: %s\n", strerrorname_np(errno));
    int exec_fd = memfd_create("exec", MFD_EXEC);
    printf("mfd_exec: %s\n", exec_fd >= 0 ? "ok" : strerrorname_np(errno));
    fflush(stdout);
    return 0;
}
