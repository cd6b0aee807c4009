// SPDX-License-Identifier: Apache-2.0
// The caller's terminal, which the agent shares as its stdio: it can change
// the terminal's modes and stop its output (tcflow, or a stop character
// the terminal itself sends), and that would outlive the session and hold
// up whatever writes there next. agent-run puts it back as it found it.
#pragma once

#include <termios.h>

#include <vector>

namespace cordon::launch {

class TerminalGuard {
  public:
    // Saves the modes of each of stdin, stdout and stderr that is a terminal.
    TerminalGuard();
    TerminalGuard(const TerminalGuard&) = delete;
    TerminalGuard& operator=(const TerminalGuard&) = delete;

    // Restarts output and restores the saved modes; for when the agent is gone.
    void restore();

  private:
    struct Saved {
        int fd;
        termios modes;
    };
    std::vector<Saved> saved_;
};

// Points stdin and stdout at /dev/null once the agent is gone: a caller that
// reads stdout to its end before it reads stderr then reaches stderr, where
// the last audit lines may wait.
void release_stdin_stdout();

}  // namespace cordon::launch
