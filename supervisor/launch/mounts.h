// SPDX-License-Identifier: Apache-2.0
// The agent's view of the filesystem: its own mount namespace, where Cordon
// lays private files over the host's (resolv.conf, a credentials
// directory, /tmp). The plan is made in the supervisor; apply() runs in the
// child before it drops privileges, and allocates nothing.
#pragma once

#include <string>
#include <vector>

#include "cordon/result.h"

namespace cordon::launch {

struct MountStep {
    enum class Kind {
        bind_file_ro,   // source (a file the supervisor made) over target, read-only
        tmpfs,          // a fresh tmpfs at target with `options` ("mode=1777,size=...")
        procfs,         // a fresh procfs at target: the processes of the child's pid namespace
        secrets_tmpfs,  // a fresh tmpfs at target with `options`, noexec too (creds/directory.h)
    };
    Kind kind;
    std::string source;
    std::string target;
    std::string options;
};

struct MountPlan {
    std::vector<MountStep> steps;  // applied in order
};

// Names resolve only through the session's resolver: resolv_conf (a file
// the supervisor wrote) over the host's /etc/resolv.conf (or the file it
// links to), and /dev/null over the sockets of host services that resolve
// names for any client: systemd-resolved's varlink socket, nscd, and the
// D-Bus system bus (org.freedesktop.resolve1). Only paths that exist on
// this host are planned. Fails when the host has no resolv.conf to cover.
Result<MountPlan> dns_view(const std::string& resolv_conf);

// Adds a /dev/null bind over each path that is a socket on this host and
// that the plan does not cover yet (paths are resolved: /var/run is often /run).
void mask_sockets(MountPlan& plan, const std::vector<std::string>& paths);

// In the child: unshare(CLONE_NEWNS), make every mount a slave of the host's
// (so nothing done here propagates back), then each step. Returns 0 or
// -errno; `failed_step` is set to the index of the step that failed (-1
// for the namespace itself).
int apply(const MountPlan& plan, int* failed_step);

}  // namespace cordon::launch
