// SPDX-License-Identifier: Apache-2.0
// The profile's filesystem section, enforced by Landlock (landlock(7),
// Documentation/userspace-api/landlock.rst): the agent reads, writes and
// executes only beneath the paths it lists, plus the few every program
// needs (kDefault* in landlock.cpp). Raw system calls: Debian 12 has no
// liblandlock, and its kernel headers stop at ABI 2.
//
// The steps:
//   abi_version   the kernel's Landlock ABI, probed once
//   support_for   what that ABI enforces, or the error that refuses the launch
//   build         in the supervisor: the paths opened O_PATH, one rule each,
//                 into a ruleset fd (nothing is restricted yet)
//   restrict_self in the child, after no_new_privs: the ruleset applies to it
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/fd.h"
#include "cordon/result.h"
#include "profile/profile.h"

namespace cordon::landlock {

// The kernel's Landlock ABI version (1 and up), or a negative errno:
// -EOPNOTSUPP when it is built in but not enabled at boot, -ENOSYS when it
// is not built in. Probed once.
int abi_version();

// What a kernel of one ABI enforces: filesystem rights and IPC scopes, as
// the kernel's bit masks.
struct Support {
    int abi = 0;
    uint64_t fs_rights = 0;
    uint64_t scopes = 0;
};

// Support for `abi` (abi_version()'s answer), or the error that refuses a
// profile with a filesystem section when the kernel has no Landlock. Pure.
Result<Support> support_for(int abi);

// Rights and scopes by name ("read_file", "signal"), for --check.
std::vector<std::string> right_names(uint64_t fs_rights);
std::vector<std::string> scope_names(uint64_t scopes);

// The kernel's ABI and what it enforces, for --check: {"abi": 7,
// "enforced": [...], "scopes": [...]}; without Landlock, abi null, the
// lists empty and "missing" saying why.
nlohmann::json kernel_json();

// A ruleset built in the supervisor, ready for the child's restrict_self.
struct Ruleset {
    UniqueFd fd;
    nlohmann::json summary;  // {"landlockAbi", "read", "write", "execute"}: what the rules cover
    uint64_t handled = 0;    // the rights the ruleset handles
};

// The session's ruleset: the profile's paths (an error names the key of one
// that cannot be opened), the defaults that exist on this host, and
// `executables` (the agent's command) with their interpreters.
Result<Ruleset> build(const profile::FilesystemPolicy& policy,
                      const std::vector<std::string>& executables, const Support& support);

// In the session's init, once its mounts are in place: rules for the
// filesystems the session mounts itself (its /proc, /tmp, /var/tmp and
// /dev/shm), which a rule on the host's directory does not reach.
// Async-signal-safe; 0 or -errno.
int add_after_mounts(const Ruleset& ruleset);

// In the child, after no_new_privs: the calling thread and everything it
// starts are confined to `ruleset_fd`'s rules. Async-signal-safe; 0 or
// -errno.
int restrict_self(int ruleset_fd);

}  // namespace cordon::landlock
