// SPDX-License-Identifier: Apache-2.0
// The profile's filesystem section for one launch: the Landlock ruleset
// the agent will be confined to, built before anything is started.
#pragma once

#include <string>
#include <vector>

#include "cordon/result.h"
#include "landlock/landlock.h"
#include "launch/identity.h"
#include "profile/profile.h"

namespace cordon::launch {

// The ruleset for `policy`, with the agent's command (the file execvpe will
// run as `identity`, found on PATH as it would be) allowed to execute. Fails closed: a
// kernel without Landlock, or a listed path that cannot be opened, is an
// error, and the launch stops.
Result<landlock::Ruleset> filesystem_rules(const profile::FilesystemPolicy& policy,
                                           const std::vector<std::string>& command,
                                           const Identity& identity);

}  // namespace cordon::launch
