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
#include "creds/directory.h"
#include "landlock/landlock.h"
#include "launch/identity.h"
#include "launch/limits.h"
#include "launch/mounts.h"
#include "seccomp/seccomp.h"

namespace cordon::launch {

struct SpawnSpec {
    std::vector<std::string> argv;  // argv[0] is looked up in PATH
    std::vector<std::string> env;   // "NAME=value"
    int cgroup_fd = -1;             // directory fd of the session cgroup
    const seccomp::Program* filter = nullptr;
    const Identity* identity = nullptr;                  // who the agent runs as
    const MountPlan* mounts = nullptr;                   // its own mount namespace, when set
    const std::vector<RlimitStep>* rlimits = nullptr;    // set in its pid 1, inherited
    bool seal_memfd_exec = false;                        // vm.memfd_noexec=2 in its pid namespace
    const landlock::Ruleset* landlock = nullptr;         // confines the agent, when set
    const creds::CredentialsDir* credentials = nullptr;  // files to write once mounted
    const char* working_dir = nullptr;                   // where it starts, in its own view
    // The directory working_dir named when the session was planned (device
    // and inode): the init enters it by path, as root, and a path swapped
    // meanwhile (a symbolic link put in its place) must not lead elsewhere.
    dev_t working_dir_dev = 0;
    ino_t working_dir_ino = 0;
};

// The session's pid 1 (launch/init.h), which runs the agent as its pid 2.
struct Child {
    pid_t pid = -1;
    UniqueFd pidfd;     // readable when the child exits
    UniqueFd status;    // the agent's wait status, written by the init as it exits
    UniqueFd listener;  // the filter's user-notification listener, when it notifies
};

// Exit statuses for a command that cannot run, as env(1) and timeout(1) use them.
inline constexpr int kExitNotFound = 127;
inline constexpr int kExitNotExecutable = 126;

// A failure in the child is reported back through a close-on-exec pipe:
// "cannot execute CMD" when execve failed (err is its errno), else "cannot
// prepare the agent: STEP failed". Either way, nothing runs.
Result<Child> spawn(const SpawnSpec& spec);

// True when spawn's error is execve's (map it to 126/127), false when an
// earlier step failed (agent-run's own failure).
bool is_exec_failure(const Error& e);

// Refuses stdio that is an AF_INET or AF_INET6 socket. The agent keeps
// stdin, stdout and stderr across execve, and the BPF programs judge a
// socket by the cgroup it was created in: one made outside Cordon's subtree
// is filtered by nothing, whoever uses it. Unix sockets, pipes, files and
// terminals pass. The error names the descriptor and how to redirect it.
Status refuse_inet_stdio();

// The files execvpe tries for a command without a '/', in PATH order (its
// own PATH, as glibc reads it, with glibc's default when unset); none for a
// command with a '/'.
std::vector<std::string> path_candidates(const std::string& command);

// Waits for the child and returns the agent's wait status (as from
// waitpid): the one its init reported, else the init's own (killed by
// cgroup.kill before the agent ended).
Result<int> reap(const Child& child);

}  // namespace cordon::launch
