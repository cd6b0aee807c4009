// SPDX-License-Identifier: Apache-2.0
#include "launch/terminal.h"

#include <fcntl.h>
#include <unistd.h>

#include "cordon/fd.h"

namespace cordon::launch {

TerminalGuard::TerminalGuard() {
    for (int fd : {STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO}) {
        termios modes{};
        if (::isatty(fd) && ::tcgetattr(fd, &modes) == 0) saved_.push_back({fd, modes});
    }
}

void TerminalGuard::restore() {
    // agent-run ignores SIGTTOU, so this works from a background job too.
    for (const Saved& s : saved_) {
        (void)::tcflow(s.fd, TCOON);
        (void)::tcsetattr(s.fd, TCSANOW, &s.modes);
    }
}

void release_stdin_stdout() {
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!null.valid()) return;
    (void)::dup2(null.get(), STDIN_FILENO);
    (void)::dup2(null.get(), STDOUT_FILENO);
}

}  // namespace cordon::launch
