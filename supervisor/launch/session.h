// SPDX-License-Identifier: Apache-2.0
// One agent session, standalone: from a profile on disk to a contained
// agent process and back to nothing left behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cgroup/cgroup.h"
#include "netfilter/netfilter.h"

namespace cordon::audit {
class AuditLog;
}

namespace cordon::launch {

// agent-run's exit statuses, as timeout(1) and env(1) use them.
inline constexpr int kExitDeadline = 124;  // killed at the session's deadline
inline constexpr int kExitFailure = 125;   // agent-run itself failed; nothing started

struct SessionOptions {
    std::string profile_path;
    std::vector<std::string> command;
    std::string audit_log;               // "" or "-": stderr
    std::string cgroup_name = "cordon";  // below the cgroup2 mount
    std::string bpf_pin_dir = "/sys/fs/bpf/cordon";
    // Root-only state: session lock files (one dir per root) and, under
    // sessions/, the files laid over each agent's view (its resolv.conf).
    std::string run_dir = "/run/cordon/standalone";
    std::string seccomp_dir;  // profiles/seccomp data
    // Sizes of the BPF maps, when this run is the one that loads the programs.
    netfilter::NetfilterConfig netfilter;
    // Where the session's resolver forwards allowed queries: "ADDR[:PORT],...";
    // "" for the nameservers of the host's /etc/resolv.conf.
    std::string dns_upstream;
    // Where each session with approval tools puts its approvers' socket
    // (approval/broker.h), for cordonctl to find.
    std::string approvals_dir = "/run/cordon/approvals";

    // Set by cordond, which runs a session for a client (see
    // supervisor/daemon). Unset, each takes agent-run's own.
    std::string session_id;             // "": a new UUID
    std::optional<uid_t> launcher_uid;  // who asked: getuid()
    // Who asked, by its login uid (read by cordond as the client connected).
    std::optional<uid_t> launcher_login_uid;
    std::optional<std::vector<std::string>> environment;  // "NAME=VALUE": environ
    // Called once the agent runs, after session.start.
    std::function<void(const struct StartedSession&)> on_start;
    // Called for each network denial, from the supervise loop or the
    // resolver's thread (one at a time), before any rate limit.
    std::function<void()> on_denial;
    // The launching user's access token, for tokenExchange credentials: a
    // file protected as a secret (creds/secret_file.h); "" for none.
    std::string subject_token_file;
};

// A session whose agent runs, as on_start sees it.
struct StartedSession {
    std::string id;
    std::string cgroup_path;
    uint64_t cgroup_id = 0;
    pid_t agent_pid = 0;  // the session's init, pid 1 of its namespace
    std::string user;
    uid_t uid = 0;
    std::chrono::system_clock::time_point deadline;
};

// A new session id: a random UUID, lowercase.
std::string new_session_id();

// Blocks the signals agent-run forwards (those a caller stops, reloads or
// resizes a program with, launch::kForwardedSignals) and returns a
// signalfd for them.
Result<UniqueFd> forwarded_signals();

// What every session of one root shares: Cordon's root cgroup, the BPF
// programs attached to it, and the lock files of who owns which session.
struct Host {
    std::string root;
    std::unique_ptr<netfilter::Netfilter> nf;
    cgroup::OwnerLocks locks;
};

// Creates the root cgroup if missing, opens (or loads, attaches and pins)
// the BPF programs, and opens the owner locks under options.run_dir.
Result<Host> open_host(const SessionOptions& options);

// Removes what crashed supervisors left: session cgroups nobody holds (each
// reported as session.reaped) and policy entries whose cgroup is gone.
void reap_leftovers(Host& host, const std::string& run_dir, const std::string& approvals_dir,
                    audit::AuditLog& audit);

// Runs the session and returns agent-run's exit status: the agent's own
// status, 128+N if signal N killed it, kExitDeadline at the deadline,
// kExitFailure if the session could not start. Failures are logged.
int run_session(const SessionOptions& options);

// Validates the profile and prints the effective policy as JSON on stdout.
// Returns 0, or kExitFailure after printing the error.
int check_profile(const SessionOptions& options);

}  // namespace cordon::launch
