// SPDX-License-Identifier: Apache-2.0
// The client side of cordond's API, for agent-run and cordonctl.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "cordon/fd.h"
#include "cordon/result.h"
#include "daemon/protocol.h"

namespace cordon::daemon {

// The socket to use: option when given, else $CORDON_SOCKET, else the default.
std::string socket_path(const std::string& option);

// True when a socket exists at path (cordond made it; it may be a dead one's).
bool socket_exists(const std::string& path);

Result<UniqueFd> connect_to(const std::string& path);

// One request, one answer (sessions, stop).
Result<nlohmann::json> call(const std::string& path, const nlohmann::json& request);

// Launches through cordond with this process's stdin, stdout and stderr,
// forwarding the signals agent-run forwards standalone, and returns the
// agent's exit status as agent-run reports it (125 when cordond refused).
int launch_through(const std::string& path, const LaunchRequest& request);

}  // namespace cordon::daemon
