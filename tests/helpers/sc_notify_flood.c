// SPDX-License-Identifier: Apache-2.0
// Keeps agent-run answering: argv[1] threads (default 1000) that call a
// syscall of the escape class (unshare, sent to agent-run by user
// notification) without pause, forever. A supervisor that answered until
// none were waiting would never get back to its deadline.
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static void* hammer(void* arg) {
    (void)arg;
    for (;;) (void)syscall(SYS_unshare, 0);
    return 0;
}

int main(int argc, char** argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1000;
    pthread_t t;
    for (int i = 1; i < threads; ++i) pthread_create(&t, 0, hammer, 0);
    hammer(0);
    return 0;
}
