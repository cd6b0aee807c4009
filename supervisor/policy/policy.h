// SPDX-License-Identifier: Apache-2.0
// The effective policy of a session, computed from a validated profile:
// which tools are open, the network rules for their endpoints, the
// credentials they need and the session's deadline.
//
// A tool is allowed only when it is in allowedTools and neither in
// deniedTools (deny wins) nor in approvalRequired (those start closed until
// a human opens them). Every other tool the profile defines is denied, with
// the reason. Rules are emitted per endpoint address, unfolded: the
// netfilter loader folds overlapping prefixes.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cordon/result.h"
#include "netfilter/netfilter.h"
#include "profile/profile.h"

namespace cordon::policy {

// Why a tool is closed, as --check and the audit log spell it.
enum class DenyReason {
    denied,             // in deniedTools
    not_allowed,        // on neither list
    approval_required,  // in approvalRequired: closed until a human grants it
};
const char* to_string(DenyReason reason);

struct DeniedTool {
    std::string name;
    DenyReason reason;
};

// One endpoint of a tool with the addresses it stands for: the literal
// address or CIDR as written, or what a hostname resolved to.
struct ResolvedEndpoint {
    std::string tool;
    profile::Endpoint endpoint;
    std::vector<profile::Ip6> addresses;  // /128 each for a hostname; none for a wildcard
    // A hostname's addresses that were not learned: non-public (see special_range)
    // and covered by no literal or CIDR endpoint.
    std::vector<profile::Ip6> not_learned;
};

// A name the session's resolver answers for: a hostname or "*.suffix"
// endpoint of an allowed tool. Addresses learned from its answers are
// allowed for the endpoint's ports and protocol.
struct DnsName {
    std::string tool;
    profile::Endpoint endpoint;
    uint16_t gate = 0;  // the tool's gate when it needs approval (GatedTool); 0 otherwise
};

// A tool of approvalRequired that deniedTools does not name: its endpoints
// are in the kernel from the start, behind a gate of its own that stays
// closed until a human grants a window (supervisor/approval). Its
// credentials are issued only then.
struct GatedTool {
    std::string name;
    uint16_t gate = 0;                        // 1, 2, ... in name order
    std::vector<ResolvedEndpoint> endpoints;  // as for allowed tools
    std::vector<std::string> credentials;     // of the tool, as the profile lists them
};

struct EffectivePolicy {
    std::vector<std::string> allowed_tools;    // sorted
    std::vector<DeniedTool> denied_tools;      // sorted by name
    std::vector<ResolvedEndpoint> endpoints;   // of allowed tools only
    std::vector<netfilter::Rule> rules;        // of allowed tools only, unfolded
    std::vector<DnsName> dns_names;            // hostname endpoints of allowed and gated tools
    std::vector<GatedTool> gated_tools;        // by name
    std::vector<netfilter::Rule> gated_rules;  // of gated tools, each with its gate, unfolded
    // Needed by gated tools only: loaded at start, issued at a grant.
    std::vector<std::string> gated_credentials;
    std::vector<std::string> credentials;  // needed by allowed tools, sorted, distinct
    profile::TimePoint deadline;           // min(expiresAt, now + maxDuration)
    uint64_t egress_budget = 0;            // session.egressBudget in bytes; 0: none
};

// The rules a session is installed with: the allowed tools' and, behind
// their gates, the gated tools'.
std::vector<netfilter::Rule> installed_rules(const EffectivePolicy& policy);

// The gated tool of that name or gate; nullptr when none.
const GatedTool* gated_tool(const EffectivePolicy& policy, const std::string& name);
const GatedTool* gated_tool(const EffectivePolicy& policy, uint16_t gate);

// The kind of non-public range addr is in: "unspecified", "loopback",
// "private", "shared" (100.64.0.0/10), "link-local", "cloud-metadata",
// "multicast", "reserved"; nullopt for a public address. v4-mapped, NAT64
// (64:ff9b::/96) and 6to4 (2002::/16) addresses are judged by the IPv4
// address they embed. A DNS answer's non-public addresses are not learned,
// so that a name cannot be rebound onto the host or its private network.
std::optional<std::string> special_range(const profile::Ip6& addr);

// Whether a DNS name, lowercase, is `pattern`'s: the name itself, or for
// "*.example.com" any name below example.com.
bool name_matches(const std::string& pattern, const std::string& qname);
// Whether some name matches both patterns (each a name or "*.suffix").
bool names_overlap(const std::string& a, const std::string& b);

// Whether a literal or CIDR endpoint covers addr, on any port, as the
// kernel's rules decide (netfilter::rule_reaches).
bool endpoint_covers(const profile::Endpoint& ep, const profile::Ip6& addr);

// Whether a literal or CIDR endpoint of an allowed tool covers addr, on any
// port: such a range is allowed on purpose, and names may resolve into it.
bool literal_covers(const EffectivePolicy& policy, const profile::Ip6& addr);

// Whether addr, from an answer for a name, may enter the allowlist.
bool learnable(const EffectivePolicy& policy, const profile::Ip6& addr);

// The allowed names matching qname ("api.example.com", lowercase, no
// trailing dot): exact names, and "*.example.com" for any name below
// example.com (not example.com itself).
std::vector<const DnsName*> match_name(const EffectivePolicy& policy, const std::string& qname);

// Resolves a hostname to its addresses (IPv4 v4-mapped). Injectable so that
// unit tests need no DNS.
using Resolver = std::function<Result<std::vector<profile::Ip6>>(const std::string& hostname)>;

// getaddrinfo(3), both families, addresses sorted and distinct.
Result<std::vector<profile::Ip6>> system_resolve(const std::string& hostname);
Resolver system_resolver();

// Throws profile::ProfileError (path "tools.NAME.endpoints[I]") when a
// hostname of an allowed tool does not resolve.
EffectivePolicy compute_policy(const profile::Profile& profile, profile::TimePoint now,
                               const Resolver& resolve = system_resolve);

// What `agent-run --check` prints: identity, tools allowed and denied with
// the reason, endpoints with their addresses, credentials that would be
// delivered (name, variable and source, never a value), deadline.
nlohmann::json to_json(const EffectivePolicy& policy, const profile::Profile& profile);

// The policy's fields of the session.start audit event: pid, deadline,
// toolsAllowed (names) and toolsDenied ({name, reason}).
nlohmann::json start_fields(const EffectivePolicy& policy, pid_t pid);

// The tool, allowed or denied, one of whose literal or CIDR endpoints covers
// this destination; for the net.deny audit event. Hostname endpoints are not
// resolved here: use the overload with the policy for allowed tools' names.
std::optional<std::string> tool_for(const profile::Profile& profile, const profile::Ip6& addr,
                                    uint16_t port, profile::Protocol protocol);

// As above, and also matching the addresses the policy resolved.
std::optional<std::string> tool_for(const EffectivePolicy& policy, const profile::Profile& profile,
                                    const profile::Ip6& addr, uint16_t port,
                                    profile::Protocol protocol);

}  // namespace cordon::policy
