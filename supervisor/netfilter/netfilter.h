// SPDX-License-Identifier: Apache-2.0
// User-space half of bpf/netfilter: loads the programs once, attaches them
// to Cordon's root cgroup with BPF_F_ALLOW_MULTI links and pins the links
// and maps under a BPF filesystem directory, so that enforcement
// outlives the process that loaded it. A session is map updates only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cordon/result.h"
#include "profile/profile.h"

namespace cordon::netfilter {

// One allowed prefix with its ports, already folded (see bpf/netfilter/netfilter.h).
struct Rule {
    profile::Ip6 address{};
    uint8_t prefix_len = 128;  // of the 128-bit form
    profile::PortRange ports;
    uint8_t protocols = 0;  // CORDON_PROTO_* bits
    // 0: an ordinary rule. Else the rule lets traffic through only while the
    // session's gate of this number is open (open_gate); a destination that
    // only a closed gate's rules cover is denied with reason "approval-required".
    uint16_t gate = 0;
};

// Whether a rule for network/prefix_len lets addr through, as the trie
// decides: a prefix shorter than the range an IPv4-carrying address lies in
// (v4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96 and
// 64:ff9b:1::/48, 6to4 2002::/16) does not reach it, so [::/0] opens no IPv4.
bool rule_reaches(const profile::Ip6& network, unsigned prefix_len, const profile::Ip6& addr);

// A denial reported by the kernel, or a use of an open gate (reason "gate-use").
struct Denial {
    uint64_t cgroup_id = 0;
    uint32_t pid = 0;  // 0 for "egress": packets leave in softirq too, where no task is theirs
    std::string comm;  // "" for "egress"
    // "connect4", "connect6", "sendmsg4", "sendmsg6", "sock_create", "setsockopt", "egress",
    // "connect_unix", "sendmsg_unix"
    std::string hook;
    // "no-rule", "no-session", "raw-socket", "socket-type" (an inet socket neither TCP nor
    // UDP), "ip-options" (IPv4 options or IPv6 extension headers), "protocol" (a packet
    // whose TCP or UDP header cannot be read), "direct-dns" (port 53 or 853 anywhere but
    // the session's resolver), "budget" (egress: the session's byte budget is spent),
    // "unix-socket" (an AF_UNIX connect or addressed send),
    // "approval-required": only a gated rule covers the destination and its gate is closed,
    //     or open with no uses left (connect/sendmsg), or closed (egress).
    // "gate-use": NOT a denial: a connect() or addressed send went through an open gate
    //     (each one is reported, so that the broker can audit and count uses).
    std::string reason;
    std::string protocol;  // "tcp", "udp" or "" when neither
    profile::Ip6 address{};
    uint16_t port = 0;
    // "egress" only: the session's dropped packets so far, this one included ("budget": its
    // budget drops so far). Egress reports only the drops whose count is a power of two (1, 2,
    // 4, ...), so that a stream the rules cut does not flood the ring buffer; the others are
    // in counters().
    uint64_t drops = 0;
    // The gate whose rule covered the destination, for reason "approval-required"
    // and "gate-use"; 0 otherwise.
    uint16_t gate = 0;
    // "gate-use" only: the uses the gate has left after this one; nullopt when it
    // was opened without a count (and for every other reason).
    std::optional<uint32_t> uses_left;
    // "gate-use" only: the connections this opening of the gate let through,
    // this one included (the kernel's count, as gate_state reads it); else 0.
    uint64_t used = 0;
};

// Where a gate stands (Netfilter::gate_state).
struct GateState {
    bool open = false;
    // Of an open gate, the new connections it still lets through; nullopt: no
    // count (and for a closed gate).
    std::optional<uint32_t> uses_left;
    // The connections the gate's last opening let through, counted by the
    // kernel with each use: exact, whatever the ring buffer lost. Kept after
    // its window ended, until close_gate; 0 once closed.
    uint64_t used = 0;
};

// What the kernel counted for one session since it was added.
struct SessionCounters {
    uint64_t egress_dropped = 0;  // packets the egress program dropped, budget drops included
    uint64_t events_lost = 0;     // denials not reported: the ring buffer was full
    uint64_t budget_dropped = 0;  // packets dropped because the byte budget was spent
    uint64_t bytes_sent = 0;      // IP bytes of the packets egress allowed
    uint64_t packets_sent = 0;    // packets egress allowed
    // Of bytes_sent and packets_sent, those the destinations map had no room for.
    uint64_t unattributed_bytes = 0;
    uint64_t unattributed_packets = 0;
    uint64_t unix_denied = 0;  // AF_UNIX connects and addressed sends refused
};

// What one session sent to one destination (allowed packets only).
struct DestinationCounters {
    profile::Ip6 address{};
    uint16_t port = 0;
    std::string protocol;  // "tcp" or "udp"
    uint64_t bytes = 0;
    uint64_t packets = 0;
};

// The session's DNS resolver, run by the supervisor: the only address and
// port a session may reach on port 53 or 853, and it needs no rule.
struct Resolver {
    profile::Ip6 address{};  // v4-mapped for IPv4, e.g. ::ffff:127.53.0.1
    uint16_t port = 53;
};
// A session without a resolver: every destination on port 53 or 853 is denied.
inline constexpr std::nullopt_t kNoResolver = std::nullopt;

// Map sizes, set before the programs are loaded. Pinned programs keep the
// sizes they were loaded with: change these, then detach, to resize.
struct NetfilterConfig {
    uint32_t max_sessions = 4096;       // CORDON_MAX_SESSIONS
    uint32_t max_rules = 1u << 20;      // CORDON_MAX_RULES: trie entries, all sessions
    uint32_t max_destinations = 65536;  // CORDON_MAX_DESTINATIONS, all sessions
    uint32_t max_gates = 65536;         // CORDON_MAX_GATES: open gates, all sessions
};

// Where a session with approval_socket reaches the approval broker: the only
// Unix socket path it may connect() to (in its own mount namespace).
inline constexpr const char* kApprovalSocket = "/run/cordon-approval/socket";

// The denials of one session, read from its own ring buffer.
class DenialStream {
  public:
    virtual ~DenialStream() = default;
    virtual int fd() const = 0;  // epoll it for EPOLLIN
    // Calls on_denial for each event waiting, at most kMaxDenialsPerDrain
    // of them, so that an agent that keeps being denied cannot keep the
    // caller from its other work; returns how many (call again while it is
    // kMaxDenialsPerDrain to empty the buffer).
    static constexpr int kMaxDenialsPerDrain = 1024;
    virtual Result<int> drain(const std::function<void(const Denial&)>& on_denial) = 0;
    // Denials the kernel could not report because the ring buffer was full
    // (the denials themselves stood). Counts since the session was added.
    virtual uint64_t lost() const = 0;
};

// The maps of an attached program set, opened from its pins.
class Netfilter {
  public:
    // Opens the programs pinned under pin_dir, or, when none are, loads the
    // embedded skeleton with config's map sizes, attaches it to cgroup_dir
    // and pins it there. Pinned maps keep their sizes (a debug log says so
    // when they differ from config). Fails with a message that names the
    // step and a hint.
    static Result<std::unique_ptr<Netfilter>> open_or_attach(const std::string& cgroup_dir,
                                                             const std::string& pin_dir,
                                                             const NetfilterConfig& config = {});

    // Detaches and unpins everything under pin_dir, then removes the
    // directory. For tests and uninstall.
    static Status detach(const std::string& pin_dir);

    // Installs a session: its ring buffer for denials, its counters, its
    // rules, then its policy entry (last, so the session is never
    // half-visible). Rules are folded here (see Rule). resolver is the only
    // destination the session may reach on port 53 or 853 (kNoResolver:
    // none); egress_budget caps the bytes it may send (0: no cap). With
    // approval_socket the session may connect() to kApprovalSocket, the one
    // Unix socket it reaches; every other Unix connect stays denied. Gated
    // rules start closed. A full map is an error that names it; nothing of
    // the session is left.
    virtual Status add_session(uint64_t cgroup_id, const std::vector<Rule>& rules,
                               const std::optional<Resolver>& resolver, uint64_t egress_budget,
                               bool approval_socket = false) = 0;

    // Replaces the rules of a session this object added, applying only the
    // difference: new and changed trie entries first, then the stale ones
    // are deleted, so an address both sets allow is allowed throughout. On
    // failure (a full map) the session's old rules are restored. Safe to
    // call from any thread, as add_session and remove_session are (for
    // different sessions; one session's calls must not overlap).
    virtual Status replace_rules(uint64_t cgroup_id, const std::vector<Rule>& rules) = 0;

    // Removes every entry keyed by cgroup_id (policy, rules, gates, counters,
    // destinations, ring buffer); missing entries are not errors.
    virtual Status remove_session(uint64_t cgroup_id) = 0;

    // Opens the session's gate (1 or more): its rules pass; with `uses` set,
    // for that many new connections (each connect() or addressed UDP send
    // through the gate takes one; 0 keeps open connections but admits no new
    // one), unlimited otherwise. Opening an open gate replaces its uses and
    // starts its count of uses made (GateState::used) again from 0.
    // With closes_at, the kernel closes it then by itself (every hook,
    // egress included), even if no process is left to call close_gate.
    // Fails when the session has no policy entry or the gates map is full.
    virtual Status open_gate(
        uint64_t cgroup_id, uint16_t gate, std::optional<uint32_t> uses,
        std::optional<std::chrono::steady_clock::time_point> closes_at = std::nullopt) = 0;

    // Closes it: new connections are refused and the egress program drops the
    // packets of connections already open through it. Closing a closed gate
    // (or one of a session that is gone) is not an error.
    virtual Status close_gate(uint64_t cgroup_id, uint16_t gate) = 0;

    // Whether the session's gate is open, the uses it has left and those it
    // let through. Fails when the session has no policy entry.
    virtual Result<GateState> gate_state(uint64_t cgroup_id, uint16_t gate) const = 0;

    // Cgroup ids that have a policy entry, for cleaning up after a crash.
    virtual std::vector<uint64_t> session_ids() const = 0;

    // Number of rules trie entries keyed by cgroup_id (tests check cleanup).
    virtual size_t rule_count(uint64_t cgroup_id) const = 0;

    // The session's counters, readable while it runs.
    virtual Result<SessionCounters> counters(uint64_t cgroup_id) const = 0;

    // What the session sent to each destination, most bytes first.
    virtual Result<std::vector<DestinationCounters>> destinations(uint64_t cgroup_id) const = 0;

    // The map sizes in force: those of the pinned maps.
    virtual NetfilterConfig sizes() const = 0;

    // Opens the session's ring buffer, created by add_session.
    virtual Result<std::unique_ptr<DenialStream>> watch(uint64_t cgroup_id) = 0;

    virtual ~Netfilter() = default;
};

}  // namespace cordon::netfilter
