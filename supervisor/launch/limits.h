// SPDX-License-Identifier: Apache-2.0
// The profile's resource limits, applied where this host can: cgroup v2
// controllers of the session cgroup when Cordon's root cgroup has them,
// else rlimits set in the agent's pid 1, each with a warning that says
// what the fallback does not do.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/result.h"
#include "profile/profile.h"

namespace cordon::launch {

// One rlimit the agent's pid 1 sets (soft and hard alike) before it forks the agent.
struct RlimitStep {
    int resource;
    rlim_t value;
};

// How each limit of the profile is enforced on this host.
struct LimitsPlan {
    std::vector<std::pair<std::string, std::string>> cgroup_files;  // file, value
    std::vector<std::string> controllers;  // to enable in Cordon's root and above
    std::vector<RlimitStep> rlimits;
    std::vector<std::string> warnings;  // one per fallback
    nlohmann::json fields;              // for --check and session.start
};

// Decides, from the controllers Cordon's root cgroup can have (those listed
// in the cgroup2 mount's cgroup.controllers), how each limit is applied.
// `duration` is the session's longest life, for RLIMIT_CPU.
LimitsPlan plan_limits(const profile::Limits& limits, const std::vector<std::string>& available,
                       std::chrono::seconds duration);

// The controllers Cordon's root cgroup can get: those of the cgroup2 mount's
// root (a hybrid host lists none of pids, memory, cpu).
Result<std::vector<std::string>> available_controllers(const std::string& cgroup2_mount);

// Enables the plan's controllers from the mount down to Cordon's root, then
// writes the limit files of the session cgroup. Any failure is an error:
// a limit that can be set but is not would be a silent gap.
Status apply_cgroup_limits(const LimitsPlan& plan, const std::string& cgroup2_mount,
                           const std::string& root, const std::string& session_dir);

// In the child: sets each rlimit. Async-signal-safe; 0 or -errno.
int apply_rlimits(const std::vector<RlimitStep>& steps);

}  // namespace cordon::launch
