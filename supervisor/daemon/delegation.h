// SPDX-License-Identifier: Apache-2.0
// Where cordond's sessions live under systemd: the cgroup subtree the
// service manager delegates to it (Delegate=yes, systemd.resource-control(5)).
// cgroup v2 lets no process sit in a cgroup whose children have controllers
// ("no internal processes", cgroup-v2.rst), so cordond first moves itself
// into a leaf of its own, then puts the sessions' root beside it.
#pragma once

#include <string>

#include "cordon/result.h"

namespace cordon::daemon {

// The configured cgroup for anything but "auto". For "auto": with cordond in
// a cgroup of its own (not the root), moves it into SELF/supervisor and
// returns SELF/sessions (relative to the cgroup2 mount); in the root, "cordon".
Result<std::string> sessions_cgroup(const std::string& configured);

}  // namespace cordon::daemon
