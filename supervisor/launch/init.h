// SPDX-License-Identifier: Apache-2.0
// The session's pid 1. The agent is cloned into a pid namespace of its own,
// where the first process is this minimal init, never exec'd: it prepares
// the namespace (a fresh /proc, vm.memfd_noexec), forks the agent as pid 2,
// forwards agent-run's signals to it, reaps every orphan, and ends with the
// agent. It runs as the agent's account with no capability, no new
// privileges, and non-dumpable (it is a copy of agent-run's memory).
// Everything here runs between clone3 and execve: async-signal-safe only.
#pragma once

#include <signal.h>
#include <sys/types.h>

namespace cordon::launch {

// The signals agent-run forwards to the agent (those a caller stops,
// reloads or resizes a program with). The init forwards the same ones.
inline constexpr int kForwardedSignals[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,
                                            SIGUSR1, SIGUSR2, SIGWINCH};

// True when this kernel keeps vm.memfd_noexec per pid namespace (Linux 6.3).
bool memfd_noexec_supported();

// In the session's pid 1, after /proc is the namespace's own: sets
// vm.memfd_noexec to 2, so that no memfd of the session can be executed.
// Needs CAP_SYS_ADMIN: before the identity drops it. 0 or -errno.
int seal_memfd_exec();

// Blocks the forwarded signals and SIGCHLD, for the init to take them
// with sigwaitinfo (pid 1 drops a signal it neither handles nor blocks).
// 0 or -errno.
int block_init_signals();

// Restores an empty signal mask: the agent's first step after the fork.
void unblock_signals();

// Until the agent exits: forwards the signals, reaps orphans. Then writes
// the agent's wait status (an int) to status_fd and exits. The status goes
// by the pipe because pid 1 cannot die by a signal it sends itself.
[[noreturn]] void run_init(pid_t agent, int status_fd);

}  // namespace cordon::launch
