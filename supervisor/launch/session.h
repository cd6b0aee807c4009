// SPDX-License-Identifier: Apache-2.0
// One agent session, standalone: from a profile on disk to a contained
// agent process and back to nothing left behind.
#pragma once

#include <string>
#include <vector>

#include "netfilter/netfilter.h"

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
    // The launching user's access token, for tokenExchange credentials: a
    // file protected as a secret (creds/secret_file.h); "" for none.
    std::string subject_token_file;
};

// Runs the session and returns agent-run's exit status: the agent's own
// status, 128+N if signal N killed it, kExitDeadline at the deadline,
// kExitFailure if the session could not start. Failures are logged.
int run_session(const SessionOptions& options);

// Validates the profile and prints the effective policy as JSON on stdout.
// Returns 0, or kExitFailure after printing the error.
int check_profile(const SessionOptions& options);

}  // namespace cordon::launch
