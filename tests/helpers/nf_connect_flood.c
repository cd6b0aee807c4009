// SPDX-License-Identifier: Apache-2.0
// Keeps the session's ring buffer full: argv[1] threads (default 200) that
// connect a UDP socket to an address no rule allows, without pause,
// forever. Each refusal is an event for agent-run to read.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

static void* hammer(void* arg) {
    (void)arg;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "10.1.2.3", &to.sin_addr);
    for (;;) (void)connect(s, (struct sockaddr*)&to, sizeof to);
    return 0;
}

int main(int argc, char** argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 200;
    pthread_t t;
    for (int i = 1; i < threads; ++i) pthread_create(&t, 0, hammer, 0);
    hammer(0);
    return 0;
}
