// SPDX-License-Identifier: Apache-2.0
// Starts the agent: clone3 straight into the session's cgroup, so that it
// is contained from its first instruction, then the child's own steps
// before execve. Everything the child needs is prepared here, in the parent:
// between clone3 and execve the child allocates nothing.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "cordon/fd.h"
#include "cordon/result.h"
#include "launch/identity.h"
#include "seccomp/seccomp.h"

namespace cordon::launch {

struct SpawnSpec {
    std::vector<std::string> argv;  // argv[0] is looked up in PATH
    std::vector<std::string> env;   // "NAME=value"
    int cgroup_fd = -1;             // directory fd of the session cgroup
    const seccomp::Program* filter = nullptr;
    const Identity* identity = nullptr;  // who the agent runs as
};

struct Child {
    pid_t pid = -1;
    UniqueFd pidfd;  // readable when the child exits
};

// Error codes the caller maps to exit statuses, as env(1) and timeout(1) do.
inline constexpr int kExitNotFound = 127;
inline constexpr int kExitNotExecutable = 126;

// On failure to execute, the error's `err` is the errno of execve, reported
// back through a close-on-exec pipe.
Result<Child> spawn(const SpawnSpec& spec);

// Waits for the child and returns its wait status (as from waitpid).
Result<int> reap(const Child& child);

}  // namespace cordon::launch
