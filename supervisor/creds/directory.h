// SPDX-License-Identifier: Apache-2.0
// The agent's credentials directory, as systemd's $CREDENTIALS_DIRECTORY: a
// tmpfs that exists only in the session's mount namespace, at one path
// every session shares (an empty mount point on the host), holding one
// file per credential delivered as a file. The supervisor plans it; the
// session's init mounts it (launch/mounts.h) and writes the files before it
// drops root, allocating nothing; it goes away with the namespace.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "cordon/fd.h"
#include "cordon/result.h"
#include "creds/creds.h"

namespace cordon::creds {

// Where the agent finds its credential files, and the variable that says so.
inline constexpr const char* kCredentialsDir = "/run/cordon-credentials";
inline constexpr const char* kCredentialsDirVariable = "CREDENTIALS_DIRECTORY";

struct SecretFile {
    std::string path;               // kCredentialsDir/NAME
    const Secret* value = nullptr;  // owned by the Delivery, alive until the spawn
};

struct CredentialsDir {
    std::string mount_options;  // for the tmpfs: mode, owner, size, noswap
    uid_t uid = 0;              // the agent's account, owner of the directory and files
    gid_t gid = 0;
    std::vector<SecretFile> files;
};

// True when tmpfs takes "noswap" (Linux 6.4): probed once with fsopen and
// fsconfig, nothing mounted.
bool noswap_supported();

// The directory for the file deliveries among `deliveries`, none when there
// are none and nothing is `needed_later`: a credential a grant issues once
// the agent runs (TokenLease::open_tool) needs the directory mounted from
// the start, empty if need be, since a running agent's mounts cannot change.
// The values stay in `deliveries`, which must outlive the spawn.
std::optional<CredentialsDir> plan_directory(const std::vector<Delivery>& deliveries, uid_t uid,
                                             gid_t gid, bool needed_later = false);

// On the host: the empty, root-owned mount point every session mounts its
// own directory over (the credentials directory, or another such as the
// approval socket's).
Status ensure_mount_point(const char* path = kCredentialsDir);

// One file `name` (relative to dir_fd, or a path with AT_FDCWD), created
// exclusively without following a symbolic link, mode 0400, owned by
// uid:gid. Async-signal-safe; returns 0 or -errno.
int write_secret_at(int dir_fd, const char* name, const Secret& value, uid_t uid, gid_t gid);

// In the session's init, once the tmpfs is mounted and before it drops
// root: each file, as write_secret_at. Returns 0 or -errno.
int write_files(const CredentialsDir& dir);

// A running session's credentials directory, reached by agent-run from
// outside the session's mount namespace: through /proc/INIT/root, resolved
// beneath it without following any symbolic link, and kept open. The agent
// owns the directory and may put anything in it; every name is taken
// relative to this descriptor and no link is followed.
class LiveDirectory {
  public:
    // Refuses a directory that is not a mount of its own: the host's empty
    // mount point, where the session mounted nothing (plan_directory gave
    // no directory).
    static Result<LiveDirectory> open(pid_t init);

    // Replaces file `name` atomically: the new value is written to a
    // temporary file beside it, then renamed over it.
    Status replace(const std::string& name, const Secret& value, uid_t uid, gid_t gid) const;

    // Removes file `name` (the name itself, never what a link the agent put
    // there points to); one already gone is no error.
    Status remove(const std::string& name) const;

  private:
    explicit LiveDirectory(UniqueFd dir) : dir_(std::move(dir)) {}
    UniqueFd dir_;
};

}  // namespace cordon::creds
