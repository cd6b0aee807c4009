// SPDX-License-Identifier: Apache-2.0
// Cordon's cgroup v2 subtree: the root under which every session gets its
// own cgroup, found from /proc/self/mountinfo (pure or hybrid hosts), never
// hard-coded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cordon/fd.h"
#include "cordon/result.h"

namespace cordon::cgroup {

// Mount point of the cgroup2 filesystem ("/sys/fs/cgroup" on pure v2 hosts,
// "/sys/fs/cgroup/unified" on hybrid ones), read from mountinfo.
Result<std::string> find_cgroup2_mount(const std::string& mountinfo = "/proc/self/mountinfo");

// Parses mountinfo text; for tests.
Result<std::string> cgroup2_mount_from(const std::string& mountinfo_text);

// The cgroup id the kernel reports to BPF (bpf_get_current_cgroup_id) for dir.
Result<uint64_t> cgroup_id(const std::string& dir);

// Creates dir (and missing parents) if needed.
Status ensure_dir(const std::string& dir);

// Which session cgroups a live supervisor owns: one lock file per session,
// DIR/SESSION.lock, held with flock() by its supervisor. The kernel drops the
// lock when that supervisor dies, however it dies. The directory is root's
// and mode 0700, so an agent can neither open nor lock what decides whether
// its session is alive (a cgroup directory, which an agent can open and
// flock, would let it hide its session from the reaper or stall the next
// launch). Nothing here ever waits for a lock.
class OwnerLocks {
  public:
    // Creates dir (0700, missing parents 0755) and checks that it is a
    // directory of the effective user that no one else can open.
    static Result<OwnerLocks> open(const std::string& dir);

    const std::string& path() const { return path_; }
    int fd() const { return fd_.get(); }

  private:
    std::string path_;
    UniqueFd fd_;
};

// The lock directory of Cordon's root cgroup `cgroup_name` (below the
// cgroup2 mount) under run_dir: one per root, so that roots never share one.
std::string owner_lock_dir(const std::string& run_dir, const std::string& cgroup_name);

// One session's cgroup, owned through its lock file in OwnerLocks while the
// supervisor holds it; cleanup_orphans() reaps a session cgroup whose lock
// file nobody holds.
class SessionCgroup {
  public:
    // label is kept with the cgroup (xattr trusted.cordon.session) so that
    // whoever reaps it after a crash can say whose session it was. The lock
    // file is taken before the cgroup exists, so a reaper never sees the
    // cgroup unowned. Without locks the cgroup is nobody's and a reaper
    // takes it for an orphan: only for tests that run no reaper.
    static Result<SessionCgroup> create(const std::string& root, const std::string& name,
                                        const std::string& label = {},
                                        const OwnerLocks* locks = nullptr);

    const std::string& path() const { return path_; }
    uint64_t id() const { return id_; }
    int dir_fd() const { return dir_fd_.get(); }  // for clone3 CLONE_INTO_CGROUP

    // Writes "1" to cgroup.kill: every process in it gets SIGKILL.
    Status kill_all() const;
    // True while any process is in the cgroup (cgroup.events "populated").
    Result<bool> populated() const;
    // Fd of cgroup.events, to poll for EPOLLPRI when "populated" changes.
    Result<UniqueFd> open_events() const;
    // Kills what is left, waits until empty (at most timeout_ms), removes the
    // dir, then its lock file.
    Status destroy(int timeout_ms = 5000);

  private:
    std::string path_;
    uint64_t id_ = 0;
    UniqueFd dir_fd_;
    UniqueFd lock_dir_fd_;  // where the lock file is, to remove it
    UniqueFd lock_fd_;      // held while this object lives
    std::string lock_name_;
};

struct Orphan {
    uint64_t id = 0;    // to clear its BPF map entries
    std::string label;  // as given to SessionCgroup::create
};

// Session cgroups under root whose lock file in locks no live supervisor
// holds (or that have none). Each is killed and removed, and returned. Never
// blocks on a lock: a session whose lock is held is alive, and skipped.
std::vector<Orphan> cleanup_orphans(const std::string& root, const OwnerLocks& locks);

}  // namespace cordon::cgroup
