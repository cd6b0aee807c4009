// SPDX-License-Identifier: Apache-2.0
// Writes through /proc/self/mem into a read-only private mapping of its own
// (the way a debugger plants a breakpoint), then reads the mapping back.
// Prints "write: ok|ERRNO" and "byte: C" (the byte now in the mapping).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    char* page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return 1;
    page[0] = 'A';
    if (mprotect(page, 4096, PROT_READ) != 0) return 1;
    int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        printf("open: %s\n", strerrorname_np(errno));
        return 0;
    }
    ssize_t n = pwrite(fd, "B", 1, (off_t)(uintptr_t)page);
    printf("write: %s\n", n == 1 ? "ok" : strerrorname_np(errno));
    printf("byte: %c\n", page[0]);
    return 0;
}
