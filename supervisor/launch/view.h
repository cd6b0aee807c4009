// SPDX-License-Identifier: Apache-2.0
// What the agent sees of the host beyond its resolv.conf: a /proc of its
// own pid namespace, private scratch directories, and no host control
// socket.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "creds/directory.h"
#include "launch/mounts.h"

namespace cordon::launch {

// The size cap of each private scratch tmpfs (/tmp, /var/tmp, /dev/shm).
inline constexpr const char* kScratchOptions = "mode=1777,size=256m,nr_inodes=65536";

// The control sockets of host services that act for whoever connects:
// container engines, systemd, D-Bus, and those of each /run/user/UID.
std::vector<std::string> host_control_sockets();

// Adds to plan: a fresh procfs on /proc (the child is pid 1 of a new pid
// namespace), an empty tmpfs on /tmp, /var/tmp and /dev/shm where they
// exist, and /dev/null over every host control socket that exists.
void add_private_view(MountPlan& plan);

// Adds the credentials directory's tmpfs (creds/directory.h), when there is one.
void add_credentials_view(MountPlan& plan, const std::optional<creds::CredentialsDir>& dir);

}  // namespace cordon::launch
