// SPDX-License-Identifier: Apache-2.0
// cordond's service loop: the API socket, the sessions' supervising
// children, and the backstops that hold when a child cannot (a deadline
// passed while cordond was down, a child that died).
#pragma once

#include <string>

#include "daemon/config.h"

namespace cordon::daemon {

// Serves until SIGTERM or SIGINT; returns the process's exit status. Live
// sessions outlive it: their children go on, and the next cordond adopts them.
int serve(const Config& config, const std::string& config_path);

}  // namespace cordon::daemon
