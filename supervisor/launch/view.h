// SPDX-License-Identifier: Apache-2.0
// What the agent sees of the host beyond its resolv.conf: a /proc of its
// own pid namespace, private scratch directories, and no host control
// socket.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cordon/result.h"
#include "creds/directory.h"
#include "launch/mounts.h"

namespace cordon::launch {

// The size cap of each private scratch tmpfs (kScratchDirs).
inline constexpr const char* kScratchOptions = "mode=1777,size=256m,nr_inodes=65536";

// The directories each session replaces with private, empty ones: the
// host's world-writable ones, where an agent could leave files behind.
// (/var/lock is a link to /run/lock.)
inline constexpr const char* kScratchDirs[] = {"/tmp", "/var/tmp", "/dev/shm", "/run/lock"};

// The scratch directory `path` lies beneath (links resolved, relative to
// agent-run's working directory), or empty when none: what is there on the
// host the agent never sees.
std::string scratch_dir_of(const std::string& path);

// Refuses a command given by a path beneath a scratch directory: the agent
// would find nothing there. The error says where to put it instead.
Status refuse_command_in_scratch(const std::string& command);

// The agent's working directory: agent-run's own, or "/" when that lies
// beneath a scratch directory (then `warning` says so).
std::string agent_working_dir(std::string& warning);

// The control sockets of host services that act for whoever connects:
// container engines, systemd, D-Bus, and those of each /run/user/UID.
std::vector<std::string> host_control_sockets();

// Adds to plan: a fresh procfs on /proc (the child is pid 1 of a new pid
// namespace), an empty tmpfs on /tmp, /var/tmp and /dev/shm where they
// exist, and /dev/null over every host control socket that exists.
void add_private_view(MountPlan& plan);

// Adds the session's approval directory (holding the broker's socket for
// the agent, approval/broker.h) at approval::kAgentSocketDir, read-only.
void add_approval_view(MountPlan& plan, const std::string& dir);

// Adds the credentials directory's tmpfs (creds/directory.h), when there is one.
void add_credentials_view(MountPlan& plan, const std::optional<creds::CredentialsDir>& dir);

}  // namespace cordon::launch
