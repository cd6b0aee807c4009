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

// One session's cgroup. While the supervisor holds it, the directory is
// flock()ed; a session cgroup nobody holds a lock on was left by a
// supervisor that died, and cleanup_orphans() reaps it.
class SessionCgroup {
  public:
    // label is kept with the cgroup (xattr trusted.cordon.session) so that
    // whoever reaps it after a crash can say whose session it was.
    static Result<SessionCgroup> create(const std::string& root, const std::string& name,
                                        const std::string& label = {});

    const std::string& path() const { return path_; }
    uint64_t id() const { return id_; }
    int dir_fd() const { return dir_fd_.get(); }  // for clone3 CLONE_INTO_CGROUP

    // Writes "1" to cgroup.kill: every process in it gets SIGKILL.
    Status kill_all() const;
    // True while any process is in the cgroup (cgroup.events "populated").
    Result<bool> populated() const;
    // Fd of cgroup.events, to poll for EPOLLPRI when "populated" changes.
    Result<UniqueFd> open_events() const;
    // Kills what is left, waits until empty (at most timeout_ms), removes the dir.
    Status destroy(int timeout_ms = 5000);

  private:
    std::string path_;
    uint64_t id_ = 0;
    UniqueFd dir_fd_;
};

struct Orphan {
    uint64_t id = 0;     // to clear its BPF map entries
    std::string label;   // as given to SessionCgroup::create
};

// Session cgroups under root that no live supervisor holds. Each is killed
// and removed, and returned.
std::vector<Orphan> cleanup_orphans(const std::string& root);

}  // namespace cordon::cgroup
