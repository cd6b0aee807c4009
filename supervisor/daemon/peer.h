// SPDX-License-Identifier: Apache-2.0
// Who is on the other end of a connection, as the kernel saw it when the
// client connected (SO_PEERCRED, unix(7)), and what that caller may do.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "cordon/result.h"
#include "profile/profile.h"

namespace cordon::daemon {

struct Peer {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;              // primary group of the connecting process
    std::vector<gid_t> groups;  // of its account: getgrouplist(3), primary included
    std::string user;           // account name, or the uid as text
    // The account its login came from (the audit loginuid, which sudo and
    // su keep), read as it connected; unset where the kernel knows none.
    std::optional<uid_t> login_uid;
};

// The peer of a connected Unix socket.
Result<Peer> peer_of(int sock);

// An account or group by name or number; nullopt for a name with none.
std::optional<uid_t> uid_of(const std::string& name);
std::optional<gid_t> gid_of(const std::string& name);

// A process's audit loginuid, if the kernel knows one; pid 0: this process.
std::optional<uid_t> login_uid_of(pid_t pid);

// Root, a listed user (by name or uid), or a member of a listed group (by
// name or gid). Names that do not resolve match nothing.
bool may_launch(const profile::Launchers& launchers, const Peer& peer);

// Root, or a member of one of admin_groups: may see and stop every session.
bool is_admin(const Peer& peer, const std::vector<std::string>& admin_groups);

}  // namespace cordon::daemon
