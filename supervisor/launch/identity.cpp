// SPDX-License-Identifier: Apache-2.0
#include "launch/identity.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "profile/profile.h"

namespace cordon::launch {
namespace {

Result<Identity> from_passwd(const passwd* pw, const std::string& asked) {
    if (!pw)
        return plain_error("no such user: " + asked,
                           "create it, or name another in the profile's session.user");
    if (pw->pw_uid > profile::kMaxUid || pw->pw_gid > profile::kMaxUid)
        return plain_error("the account " + asked + " has uid or gid -1, which no process can take",
                           "fix its entry in the user database");
    Identity id{pw->pw_name, pw->pw_uid, pw->pw_gid, {}, pw->pw_dir ? pw->pw_dir : "/"};
    int n = 64;
    id.groups.resize(n);
    if (::getgrouplist(pw->pw_name, pw->pw_gid, id.groups.data(), &n) < 0) {
        id.groups.resize(n);
        ::getgrouplist(pw->pw_name, pw->pw_gid, id.groups.data(), &n);
    }
    id.groups.resize(n);
    return id;
}

Result<Identity> lookup(const std::string& user) {
    bool numeric = !user.empty() && user.find_first_not_of("0123456789") == std::string::npos;
    if (numeric) {
        if (user.size() > 10 || std::stoull(user) > profile::kMaxUid)
            return plain_error("uid " + user + " is out of range",
                               "name a uid from 0 to " + std::to_string(profile::kMaxUid));
        uid_t uid = static_cast<uid_t>(std::stoull(user));
        if (const passwd* pw = ::getpwuid(uid)) return from_passwd(pw, user);
        // A uid with no account: its own group, no supplementary groups.
        return Identity{user, uid, static_cast<gid_t>(uid), {}, "/"};
    }
    return from_passwd(::getpwnam(user.c_str()), user);
}

// Whether every real, effective and saved id is the identity's: the check
// that an id the kernel reads as "unchanged" cannot pass for a change.
bool holds_ids(const Identity& id) {
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    if (::syscall(SYS_getresuid, &ruid, &euid, &suid) != 0) return false;
    if (::syscall(SYS_getresgid, &rgid, &egid, &sgid) != 0) return false;
    return ruid == id.uid && euid == id.uid && suid == id.uid && rgid == id.gid && egid == id.gid &&
           sgid == id.gid;
}

}  // namespace

Result<Identity> resolve_identity(const std::optional<std::string>& profile_user,
                                  uid_t launcher_uid) {
    if (profile_user) return lookup(*profile_user);
    if (launcher_uid != 0) return lookup(std::to_string(launcher_uid));
    if (::getpwnam(kAgentAccount)) return lookup(kAgentAccount);
    return lookup("nobody");
}

int become(const Identity& id) {
    // Raw system calls, never glibc's wrappers: those apply the change to
    // every thread glibc knows of (nptl_setxid), and in a child of clone3
    // those threads do not exist: with one caught mid-creation at clone
    // time (agent-run's resolver thread), the wrapper waits for it forever.
    if (::syscall(SYS_setgroups, id.groups.size(), id.groups.data()) != 0) return -errno;
    if (::syscall(SYS_setresgid, id.gid, id.gid, id.gid) != 0) return -errno;

    // The bounding set first: dropping from it needs CAP_SETPCAP, which
    // setresuid to a non-root uid is about to take away.
    for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return -errno;
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return -errno;

    if (::syscall(SYS_setresuid, id.uid, id.uid, id.uid) != 0) return -errno;
    if (!holds_ids(id)) return -EPERM;

    // A root agent keeps uid 0 but no capability: effective, permitted and
    // inheritable all empty (capabilities(7), "Effect of user ID changes").
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capset, &header, data) != 0) return -errno;
    return 0;
}

}  // namespace cordon::launch
