// SPDX-License-Identifier: Apache-2.0
// Human approval for a session's high-risk tools. Each tool of
// approvalRequired is in the kernel behind a gate of its own (netfilter),
// closed from the start. The broker, run by the session's supervisor:
//
//   - turns the kernel's approval-required denials into one pending
//     request per tool (repeated attempts fold into it), announced by the
//     audit log and the profile's webhook;
//   - serves the agent's ask-ahead API: a Unix stream socket the agent
//     reaches at kAgentSocketPath, one JSON object per line, answered with
//     the decision when it comes (see README, "Approvals");
//   - serves the approvers' API: a Unix SOCK_SEQPACKET socket per session in
//     the approvals directory, which cordonctl finds, authorized by
//     SO_PEERCRED against the profile's approvers; the session's launcher
//     and the agent's own account may not grant unless the profile says so;
//   - opens a granted tool's gate and issues its credentials for the
//     window (or a number of connections), and closes both when the window
//     ends, which also cuts the connections still open (egress).
//
// Grants never outlive the session: end() closes them all.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cordon/result.h"
#include "netfilter/netfilter.h"
#include "policy/policy.h"
#include "profile/profile.h"

namespace cordon::approval {

// Where the approvers' sockets are, one per session: DIR/SESSION.sock.
inline constexpr const char* kDefaultApprovalsDir = "/run/cordon/approvals";
inline constexpr const char* kApprovalsDirVariable = "CORDON_APPROVALS_DIR";
// Where the agent finds its own API, in its mount namespace, and the
// variable that tells it. The BPF programs let a session connect to this
// one Unix socket path, and to no other.
inline constexpr const char* kAgentSocketDir = "/run/cordon-approval";
inline constexpr const char* kAgentSocketPath = "/run/cordon-approval/socket";
inline constexpr const char* kAgentSocketVariable = "CORDON_APPROVAL_SOCKET";

// The largest message either API reads.
inline constexpr size_t kMaxMessageBytes = 4096;

// What the broker asks of the rest of the session.
struct BrokerHooks {
    // The kernel closes the gate at `closes_at` by itself, should the
    // supervisor be gone by then.
    std::function<Status(uint16_t gate, std::optional<uint32_t> uses,
                         std::chrono::steady_clock::time_point closes_at)>
        open_gate;
    std::function<Status(uint16_t gate)> close_gate;
    // Where the gate stands in the kernel: its count of uses is the true
    // one, which the grants' `used` shows (events of uses can be lost).
    std::function<Result<netfilter::GateState>(uint16_t gate)> gate_state;
    // Issues (and delivers) the tool's credentials; revokes them.
    std::function<Status(const std::string& tool)> open_credentials;
    std::function<void(const std::string& tool)> close_credentials;
    std::function<void(const std::string& event, const nlohmann::json& fields)> audit;
    // Announces an event to the webhook, when the profile has one; may be null.
    std::function<void(const std::string& event, const nlohmann::json& body)> notify;
};

struct BrokerConfig {
    const profile::Profile* profile = nullptr;        // outlives the broker
    const policy::EffectivePolicy* policy = nullptr;  // outlives the broker
    std::string session_id;
    uid_t launcher_uid = 0;  // who started the session
    // Other accounts the launcher is known by: the one logged in as (the
    // audit loginuid) and the one sudo ran agent-run for (SUDO_UID). An
    // approver who ran `sudo agent-run` is that session's launcher too.
    std::vector<uid_t> launcher_accounts;
    uid_t agent_uid = 0;  // the account the agent runs as
    std::chrono::system_clock::time_point deadline;
    std::string approvals_dir;  // for the approvers' socket
    std::string agent_dir;      // a directory of the session's own, for the agent's socket
};

class Broker {
  public:
    // Binds both sockets: approvals_dir/SESSION.sock (made 0755 if missing)
    // and agent_dir/socket, which the agent's view mounts at kAgentSocketDir.
    static Result<std::unique_ptr<Broker>> start(BrokerConfig config, BrokerHooks hooks);

    // Readable when on_ready has work (an epoll descriptor of the broker's own).
    virtual int fd() const = 0;
    virtual void on_ready() = 0;

    // A kernel event of reason "approval-required" or "gate-use".
    virtual void on_event(const netfilter::Denial& event) = 0;

    // The session ends: grants are closed (credentials revoked), pending
    // requests expire, waiting agents are told, the sockets go.
    virtual void end() = 0;

    virtual ~Broker() = default;
};

}  // namespace cordon::approval
