// SPDX-License-Identifier: Apache-2.0
// The service manager's readiness protocol (sd_notify(3)): one datagram
// to $NOTIFY_SOCKET. Without the variable, nothing is sent.
#pragma once

#include <string>

namespace cordon::daemon {

// "READY=1", "RELOADING=1", "STOPPING=1", "STATUS=...". Returns false when
// the manager asked for notifications and the datagram could not go.
bool notify_service_manager(const std::string& state);

}  // namespace cordon::daemon
