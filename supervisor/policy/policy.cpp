// SPDX-License-Identifier: Apache-2.0
#include "policy/policy.h"

#include <algorithm>
#include <set>

#include "bpf/netfilter/netfilter.h"

namespace cordon::policy {

using profile::Endpoint;
using profile::Ip6;
using profile::Profile;
using profile::ProfileError;
using profile::Protocol;
using profile::TimePoint;

// Rule::protocols carries the profile's Protocol values as bits.
static_assert(static_cast<uint8_t>(Protocol::tcp) == CORDON_PROTO_TCP);
static_assert(static_cast<uint8_t>(Protocol::udp) == CORDON_PROTO_UDP);

namespace {

bool contains(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

// Deny wins over everything; approval-required tools start closed even
// when also allowed.
std::optional<DenyReason> deny_reason(const Profile& profile, const std::string& tool) {
    if (contains(profile.denied_tools, tool)) return DenyReason::denied;
    if (contains(profile.approval_required, tool)) return DenyReason::approval_required;
    if (!contains(profile.allowed_tools, tool)) return DenyReason::not_allowed;
    return std::nullopt;
}

std::string endpoint_path(const std::string& tool, size_t index) {
    return "tools." + tool + ".endpoints[" + std::to_string(index) + "]";
}

// A literal or CIDR as written; a hostname resolved now (its addresses are
// filtered later, once every literal is known); a wildcard waits for DNS.
ResolvedEndpoint resolve_endpoint(const profile::Tool& tool, size_t index,
                                  const Resolver& resolve) {
    const Endpoint& ep = tool.endpoints[index];
    ResolvedEndpoint resolved{tool.name, ep, {}, {}};
    if (ep.hostname.empty()) {
        resolved.addresses.push_back(ep.address);
        return resolved;
    }
    if (profile::is_wildcard(ep)) return resolved;
    Result<std::vector<Ip6>> addresses = resolve(ep.hostname);
    if (!addresses) {
        throw ProfileError(endpoint_path(tool.name, index), addresses.error().message());
    }
    if (addresses->empty()) {
        throw ProfileError(endpoint_path(tool.name, index),
                           "\"" + ep.hostname +
                               "\" resolved to no address (check the name, or write the "
                               "endpoint as an address or a *.suffix wildcard, learned as the "
                               "agent asks)");
    }
    resolved.addresses = std::move(addresses.value());
    return resolved;
}

// Keeps a hostname's learnable addresses, as the session's resolver would.
void drop_unlearnable(const EffectivePolicy& policy, ResolvedEndpoint& resolved,
                      const std::string& path) {
    std::vector<Ip6> kept;
    for (const Ip6& addr : resolved.addresses)
        (learnable(policy, addr) ? kept : resolved.not_learned).push_back(addr);
    if (kept.empty() && !resolved.not_learned.empty()) {
        const Ip6& first = resolved.not_learned.front();
        throw ProfileError(path, "\"" + resolved.endpoint.hostname +
                                     "\" resolves only to addresses Cordon does not learn (" +
                                     profile::format_ip(first) + " is " + *special_range(first) +
                                     "); write the address or its range as an endpoint to "
                                     "allow it");
    }
    resolved.addresses = std::move(kept);
}

void add_rules(const ResolvedEndpoint& resolved, std::vector<netfilter::Rule>& rules,
               uint16_t gate = 0) {
    const Endpoint& ep = resolved.endpoint;
    uint8_t prefix_len = ep.hostname.empty() ? ep.prefix_len : 128;
    for (const Ip6& address : resolved.addresses) {
        netfilter::Rule rule{address, prefix_len, ep.ports, static_cast<uint8_t>(ep.protocol)};
        rule.gate = gate;
        rules.push_back(rule);
    }
}

bool rules_overlap(const netfilter::Rule& a, const netfilter::Rule& b) {
    return (a.protocols & b.protocols) && a.ports.first <= b.ports.last &&
           b.ports.first <= a.ports.last &&
           (netfilter::rule_reaches(a.address, a.prefix_len, b.address) ||
            netfilter::rule_reaches(b.address, b.prefix_len, a.address));
}

// An allowed tool's endpoint that reaches a gated one would open it with no
// approval (an ungated rule decides alone): refused, naming both.
void check_not_shadowed(const EffectivePolicy& policy, const GatedTool& gated) {
    auto refuse = [&](size_t i, const std::string& spec, const std::string& tool) {
        throw ProfileError(endpoint_path(gated.name, i),
                           "\"" + gated.endpoints[i].endpoint.spec +
                               "\" is also reached through \"" + spec + "\" of allowed tool " +
                               tool +
                               ", which would open it without approval; narrow that endpoint or "
                               "take the tool out of approvalRequired");
    };
    for (size_t i = 0; i < gated.endpoints.size(); ++i) {
        // A name both an allowed tool and a gated one may ask for: the
        // kernel keeps its addresses behind the gate, so the allowed tool
        // could not reach them either.
        const Endpoint& ep = gated.endpoints[i].endpoint;
        for (const DnsName& open : policy.dns_names)
            if (open.gate == 0 && !ep.hostname.empty() &&
                names_overlap(open.endpoint.hostname, ep.hostname) &&
                open.endpoint.protocol == ep.protocol &&
                open.endpoint.ports.first <= ep.ports.last &&
                ep.ports.first <= open.endpoint.ports.last)
                refuse(i, open.endpoint.spec, open.tool);
        std::vector<netfilter::Rule> mine;
        add_rules(gated.endpoints[i], mine, gated.gate);
        for (const ResolvedEndpoint& open : policy.endpoints) {
            std::vector<netfilter::Rule> theirs;
            add_rules(open, theirs);
            for (const auto& g : mine)
                for (const auto& o : theirs)
                    if (rules_overlap(g, o)) refuse(i, open.endpoint.spec, open.tool);
        }
    }
}

// A gated tool's endpoints, resolved as an allowed tool's are (a name must
// resolve now, to learnable addresses), after the allowed tools' literals
// are known.
GatedTool gate_tool(const EffectivePolicy& policy, const profile::Tool& tool, uint16_t gate,
                    const Resolver& resolve) {
    GatedTool gated{tool.name, gate, {}, tool.credentials};
    for (size_t i = 0; i < tool.endpoints.size(); ++i) {
        gated.endpoints.push_back(resolve_endpoint(tool, i, resolve));
        if (!tool.endpoints[i].hostname.empty())
            drop_unlearnable(policy, gated.endpoints.back(), endpoint_path(tool.name, i));
    }
    return gated;
}

// The gated tools in name order, their rules, DNS names and the
// credentials only they need.
void add_gated_tools(const Profile& profile, const Resolver& resolve, EffectivePolicy& policy) {
    std::set<std::string> gated_credentials;
    for (const DeniedTool& closed : policy.denied_tools) {
        if (closed.reason != DenyReason::approval_required) continue;
        const profile::Tool& tool = profile.tools.at(closed.name);
        auto gate = static_cast<uint16_t>(policy.gated_tools.size() + 1);
        policy.gated_tools.push_back(gate_tool(policy, tool, gate, resolve));
        check_not_shadowed(policy, policy.gated_tools.back());
        for (const ResolvedEndpoint& resolved : policy.gated_tools.back().endpoints)
            add_rules(resolved, policy.gated_rules, gate);
        for (const Endpoint& ep : tool.endpoints)
            if (!ep.hostname.empty()) policy.dns_names.push_back({tool.name, ep, gate});
        gated_credentials.insert(tool.credentials.begin(), tool.credentials.end());
    }
    for (const std::string& name : policy.credentials) gated_credentials.erase(name);
    policy.gated_credentials.assign(gated_credentials.begin(), gated_credentials.end());
}

TimePoint deadline_of(const Profile& profile, TimePoint now) {
    if (!profile.max_duration) return profile.identity.expires_at;
    return std::min(profile.identity.expires_at, now + *profile.max_duration);
}

}  // namespace

std::vector<netfilter::Rule> installed_rules(const EffectivePolicy& policy) {
    std::vector<netfilter::Rule> rules = policy.rules;
    rules.insert(rules.end(), policy.gated_rules.begin(), policy.gated_rules.end());
    return rules;
}

const GatedTool* gated_tool(const EffectivePolicy& policy, const std::string& name) {
    for (const GatedTool& t : policy.gated_tools)
        if (t.name == name) return &t;
    return nullptr;
}

const GatedTool* gated_tool(const EffectivePolicy& policy, uint16_t gate) {
    for (const GatedTool& t : policy.gated_tools)
        if (t.gate == gate) return &t;
    return nullptr;
}

const char* to_string(DenyReason reason) {
    switch (reason) {
        case DenyReason::denied:
            return "denied";
        case DenyReason::not_allowed:
            return "not-allowed";
        case DenyReason::approval_required:
            return "approval-required";
    }
    return "denied";
}

EffectivePolicy compute_policy(const Profile& profile, TimePoint now, const Resolver& resolve) {
    EffectivePolicy policy;
    std::set<std::string> credentials;
    std::vector<std::string> paths;  // of policy.endpoints, for errors
    for (const auto& [name, tool] : profile.tools) {
        if (std::optional<DenyReason> reason = deny_reason(profile, name)) {
            policy.denied_tools.push_back({name, *reason});
            continue;
        }
        policy.allowed_tools.push_back(name);
        for (size_t i = 0; i < tool.endpoints.size(); ++i) {
            policy.endpoints.push_back(resolve_endpoint(tool, i, resolve));
            paths.push_back(endpoint_path(name, i));
            if (!tool.endpoints[i].hostname.empty())
                policy.dns_names.push_back({name, tool.endpoints[i]});
        }
        credentials.insert(tool.credentials.begin(), tool.credentials.end());
    }
    // Names last: whether a name may resolve into a range depends on every literal.
    for (size_t i = 0; i < policy.endpoints.size(); ++i)
        if (!policy.endpoints[i].endpoint.hostname.empty())
            drop_unlearnable(policy, policy.endpoints[i], paths[i]);
    for (const ResolvedEndpoint& resolved : policy.endpoints) add_rules(resolved, policy.rules);
    policy.credentials.assign(credentials.begin(), credentials.end());
    add_gated_tools(profile, resolve, policy);
    policy.deadline = deadline_of(profile, now);
    policy.egress_budget = profile.egress_budget.value_or(0);
    return policy;
}

}  // namespace cordon::policy
