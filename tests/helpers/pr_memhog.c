// SPDX-License-Identifier: Apache-2.0
// Allocates and touches memory 1 MiB at a time until refused. Prints
// "allocated N MiB, then ERRNO"; killed instead if a cgroup limit stops it.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    const size_t mib = 1 << 20;
    size_t n = 0;
    for (; n < 1 << 16; ++n) {
        char* p = malloc(mib);
        if (!p) break;
        memset(p, 1, mib);
    }
    printf("allocated %zu MiB, then %s\n", n, strerrorname_np(errno));
    return 0;
}
