// SPDX-License-Identifier: Apache-2.0
#include "daemon/delegation.h"

#include <unistd.h>

#include <fstream>

#include "cgroup/cgroup.h"

namespace cordon::daemon {
namespace {

// This process's cgroup v2 path, "0::/system.slice/cordond.service" in
// /proc/self/cgroup (cgroups(7)), without its leading slash.
Result<std::string> own_cgroup() {
    std::ifstream in("/proc/self/cgroup");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("0::/", 0) == 0) return line.substr(4);
    return plain_error("cannot find cordond's cgroup v2 path in /proc/self/cgroup",
                       "set cgroup in cordond.json to a name instead of auto");
}

}  // namespace

Result<std::string> sessions_cgroup(const std::string& configured) {
    if (configured != "auto") return configured;
    auto self = own_cgroup();
    if (!self) return self.error();
    if (self->empty()) return std::string("cordon");
    // Already in our leaf: a restart in the same service cgroup.
    std::string base = *self;
    if (base.size() > 11 && base.ends_with("/supervisor")) base.resize(base.size() - 11);
    auto mount = cgroup::find_cgroup2_mount();
    if (!mount) return mount.error();
    std::string leaf = *mount + "/" + base + "/supervisor";
    if (auto st = cgroup::ensure_dir(leaf); !st) return st.error();
    std::ofstream procs(leaf + "/cgroup.procs");
    procs << ::getpid();
    procs.close();
    if (!procs)
        return errno_error("cannot move cordond into " + leaf,
                           "run it with Delegate=yes, or set cgroup in cordond.json to a name");
    return base + "/sessions";
}

}  // namespace cordon::daemon
