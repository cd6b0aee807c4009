// SPDX-License-Identifier: Apache-2.0
// cordond's configuration, /etc/cordon/cordond.json. Every path can be set,
// so that tests (and a second instance) use names of their own. Unknown
// keys are errors.
#pragma once

#include <string>
#include <vector>

#include "cordon/result.h"
#include "launch/session.h"

namespace cordon::daemon {

inline constexpr const char* kDefaultConfig = "/etc/cordon/cordond.json";

struct Config {
    std::string socket = "/run/cordon/cordond.sock";  // the API; its directory is made 0755
    std::string run_dir = "/run/cordon/daemon";       // root's: state, locks, seccomp cache
    // Cordon's root below the cgroup2 mount, or "auto" (see daemon/delegation.h); not
    // standalone agent-run's "cordon", whose reaper would take these sessions for orphans.
    std::string cgroup = "cordond";
    std::string bpf_pin_dir = "/sys/fs/bpf/cordond";  // not standalone agent-run's: another root
    std::string profiles_dir = "/etc/cordon/profiles.d";
    std::string audit_log = "/var/log/cordon/audit.log";
    std::string seccomp_dir;   // "": the installed data
    std::string dns_upstream;  // "": the host's resolvers
    // Where sessions with approval tools put their approvers' sockets (cordonctl's default).
    std::string approvals_dir = "/run/cordon/approvals";
    // Groups whose members may list and stop every user's sessions (root always may).
    std::vector<std::string> admin_groups;
    // Every audit event also in cordond's log (the journal under systemd).
    bool audit_to_log = true;
    unsigned max_sessions = 256;          // live sessions at once; more are refused
    unsigned max_sessions_per_user = 32;  // of those, one launcher's (root: no limit)
    std::string log_level = "info";
};

// Reads path. An error names the file, the key and what was expected.
Result<Config> load_config(const std::string& path);

// What a session child of cordond runs with.
launch::SessionOptions session_options(const Config& config);

}  // namespace cordon::daemon
