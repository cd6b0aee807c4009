// SPDX-License-Identifier: Apache-2.0
// Who the agent runs as. Resolved in the supervisor (getpwnam is not safe
// between clone and exec); applied in the child by become().
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "cordon/result.h"

namespace cordon::launch {

// The account made for agents by packaging/install-deps.sh.
inline constexpr const char* kAgentAccount = "cordon-agent";

struct Identity {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // supplementary groups
    std::string home;
    bool root() const { return uid == 0; }
};

// The profile's session.user if set; otherwise the launching user when
// that is not root; otherwise kAgentAccount, or nobody where it is missing.
Result<Identity> resolve_identity(const std::optional<std::string>& profile_user,
                                  uid_t launcher_uid);

// In the child: takes the identity's groups, gid and uid, and drops every
// capability (bounding and ambient sets too), so that even an agent that
// runs as root holds none. Async-signal-safe; returns 0 or -errno.
int become(const Identity& id);

}  // namespace cordon::launch
