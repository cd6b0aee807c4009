// SPDX-License-Identifier: Apache-2.0
// SysV IPC across the session's edge: looks up a shared memory segment the
// host made (key argv[1], mode 0666), then makes one of its own (key
// argv[2]) and exits, leaving it behind. Prints one line per step:
// "visible" or the errno name, then "created" or the errno name.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/shm.h>

static const char* name(int err) {
    return err == ENOENT ? "ENOENT" : err == EACCES ? "EACCES" : strerror(err);
}

int main(int argc, char** argv) {
    if (argc != 3) return 2;
    key_t host = (key_t)strtol(argv[1], 0, 10), own = (key_t)strtol(argv[2], 0, 10);
    puts(shmget(host, 0, 0) >= 0 ? "visible" : name(errno));
    puts(shmget(own, 4096, IPC_CREAT | 0600) >= 0 ? "created" : name(errno));
    return 0;
}
