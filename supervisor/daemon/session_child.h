// SPDX-License-Identifier: Apache-2.0
// One launch, in a child cordond forks for it: the standalone session code
// (launch::run_session) with the client's stdin, stdout and stderr as its
// own, its working directory, environment and identity. The child keeps
// the client's connection: it forwards the signals the client sends, tells
// it when the agent started and, at the end, its exit status.
//
// A session child does not depend on cordond once forked: it goes on
// supervising its agent, deadline included, when cordond dies or
// restarts, and a restarted cordond finds it by its state record.
#pragma once

#include <string>

#include "daemon/config.h"
#include "daemon/peer.h"
#include "daemon/protocol.h"

namespace cordon::daemon {

struct ChildSpec {
    const Config* config = nullptr;
    LaunchRequest request;
    std::string session_id;
    std::string profile_name;
    std::string agent_id;
    std::string agent_type;
    std::string version;
    std::string profile_path;
    Peer peer;
    int conn = -1;                // the client's connection
    int stdio[3] = {-1, -1, -1};  // the client's, received with the request
};

// Runs in the forked child; never returns.
[[noreturn]] void run_session_child(const ChildSpec& spec);

}  // namespace cordon::daemon
