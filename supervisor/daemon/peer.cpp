// SPDX-License-Identifier: Apache-2.0
#include "daemon/peer.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <optional>

namespace cordon::daemon {
namespace {

std::optional<unsigned long> number(const std::string& text) {
    unsigned long n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return n;
}

bool in_groups(const Peer& peer, const std::vector<std::string>& names) {
    for (const auto& name : names)
        if (auto gid = gid_of(name))
            if (std::find(peer.groups.begin(), peer.groups.end(), *gid) != peer.groups.end())
                return true;
    return false;
}

// The account's groups as the user database has them now: a user taken out
// of a group loses it here even while old sessions still carry it. The
// caller's own gid does not count: newgrp or a setgid program gives one
// that is not the account's.
void fill_account(Peer& peer) {
    passwd p{}, *found = nullptr;
    std::vector<char> buf(16384);
    peer.user = std::to_string(peer.uid);
    peer.groups.clear();
    if (::getpwuid_r(peer.uid, &p, buf.data(), buf.size(), &found) != 0 || !found) return;
    peer.user = found->pw_name;
    int n = 64;
    std::vector<gid_t> groups(n);
    while (::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &n) < 0)
        groups.resize(static_cast<size_t>(n));
    groups.resize(static_cast<size_t>(n));
    for (gid_t g : groups)
        if (std::find(peer.groups.begin(), peer.groups.end(), g) == peer.groups.end())
            peer.groups.push_back(g);
}

}  // namespace

std::optional<gid_t> gid_of(const std::string& name) {
    if (auto n = number(name)) return static_cast<gid_t>(*n);
    group g{}, *found = nullptr;
    std::vector<char> buf(16384);
    if (::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found) != 0 || !found)
        return std::nullopt;
    return found->gr_gid;
}

std::optional<uid_t> uid_of(const std::string& name) {
    if (auto n = number(name)) return static_cast<uid_t>(*n);
    passwd p{}, *found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwnam_r(name.c_str(), &p, buf.data(), buf.size(), &found) != 0 || !found)
        return std::nullopt;
    return found->pw_uid;
}

Result<Peer> peer_of(int sock) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return errno_error("cannot read the caller's credentials (SO_PEERCRED)");
    Peer peer{cred.pid, cred.uid, cred.gid, {}, {}, login_uid_of(cred.pid)};
    fill_account(peer);
    return peer;
}

std::optional<uid_t> login_uid_of(pid_t pid) {
    std::ifstream in(pid ? "/proc/" + std::to_string(pid) + "/loginuid" : "/proc/self/loginuid");
    uint64_t uid = 0;
    if (!(in >> uid) || uid >= 4294967295u) return std::nullopt;
    return static_cast<uid_t>(uid);
}

bool may_launch(const profile::Launchers& launchers, const Peer& peer) {
    if (peer.uid == 0) return true;
    for (const auto& name : launchers.users)
        if (uid_of(name) == peer.uid) return true;
    return in_groups(peer, launchers.groups);
}

bool is_admin(const Peer& peer, const std::vector<std::string>& admin_groups) {
    return peer.uid == 0 || in_groups(peer, admin_groups);
}

}  // namespace cordon::daemon
