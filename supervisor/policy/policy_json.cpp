// SPDX-License-Identifier: Apache-2.0
// The effective policy as `agent-run --check` prints it and as the
// session.start audit event carries it. Credential values never appear:
// only their names, where they come from and where they go.
#include <nlohmann/json.hpp>

#include "policy/policy.h"

namespace cordon::policy {
namespace {

using nlohmann::json;
using profile::Ip6;

constexpr uint8_t kV4MappedPrefix = 96;

bool is_v4_mapped(const Ip6& addr) {
    static const Ip6 kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::equal(addr.begin(), addr.begin() + 12, kMapped.begin());
}

// "10.0.0.0/8", "fd00::/8"; a single address without a suffix.
std::string format_prefix(const Ip6& addr, uint8_t prefix_len) {
    std::string text = profile::format_ip(addr);
    if (prefix_len == 128) return text;
    bool v4 = is_v4_mapped(addr) && prefix_len >= kV4MappedPrefix;
    return text + "/" + std::to_string(v4 ? prefix_len - kV4MappedPrefix : prefix_len);
}

std::string format_ports(const profile::PortRange& ports) {
    std::string first = std::to_string(ports.first);
    return ports.first == ports.last ? first : first + "-" + std::to_string(ports.last);
}

json endpoint_json(const ResolvedEndpoint& resolved) {
    const profile::Endpoint& ep = resolved.endpoint;
    json addresses = json::array();
    for (const Ip6& addr : resolved.addresses) {
        addresses.push_back(format_prefix(addr, ep.hostname.empty() ? ep.prefix_len : 128));
    }
    json out{{"endpoint", ep.spec},
             {"protocol", ep.protocol == profile::Protocol::udp ? "udp" : "tcp"},
             {"ports", format_ports(ep.ports)},
             {"addresses", addresses}};
    if (!ep.hostname.empty()) {
        out["hostname"] = ep.hostname;
        json not_learned = json::array();
        for (const Ip6& addr : resolved.not_learned)
            not_learned.push_back(
                {{"address", profile::format_ip(addr)}, {"range", *special_range(addr)}});
        out["notLearned"] = not_learned;
    }
    return out;
}

json allowed_tool_json(const EffectivePolicy& policy, const profile::Tool& tool) {
    json endpoints = json::array();
    for (const ResolvedEndpoint& resolved : policy.endpoints) {
        if (resolved.tool == tool.name) endpoints.push_back(endpoint_json(resolved));
    }
    return {{"name", tool.name},
            {"risk", tool.risk},
            {"endpoints", endpoints},
            {"credentials", tool.credentials}};
}

json denied_json(const DeniedTool& tool) {
    return {{"name", tool.name}, {"reason", to_string(tool.reason)}};
}

json tools_json(const EffectivePolicy& policy, const profile::Profile& profile) {
    json allowed = json::array();
    for (const std::string& name : policy.allowed_tools) {
        allowed.push_back(allowed_tool_json(policy, profile.tools.at(name)));
    }
    json denied = json::array();
    for (const DeniedTool& tool : policy.denied_tools) {
        json entry = denied_json(tool);
        entry["risk"] = profile.tools.at(tool.name).risk;
        denied.push_back(entry);
    }
    return {{"allowed", allowed}, {"denied", denied}};
}

// Where a credential comes from, secrets left out: an OAuth source shows
// its endpoints, client, scope and resource, not its secret.
json source_json(const profile::CredentialSource& src) {
    using Kind = profile::CredentialSource::Kind;
    if (!src.issued()) return {{src.kind == Kind::file ? "file" : "env", src.ref}};
    const auto& o = src.oauth;
    auto or_null = [](const std::string& v) { return v.empty() ? json(nullptr) : json(v); };
    return {{src.kind == Kind::oauth ? "oauth" : "tokenExchange",
             {{"tokenUrl", or_null(o.token_url)},
              {"issuer", or_null(o.issuer)},
              {"revocationUrl", or_null(o.revocation_url)},
              {"caBundle", or_null(o.ca_bundle)},
              {"clientId", o.client_id},
              {"clientSecretFile", or_null(o.client_secret_file)},
              {"privateKeyFile", or_null(o.private_key_file)},
              {"keyId", or_null(o.key_id)},
              {"scope", o.scope},
              {"resource", o.resource},
              {"auth", o.auth}}}};
}

// Whether a token is refreshed while the session runs: only a file can
// change under the agent; its environment is fixed at exec.
json rotation_json(const profile::Credential& cred) {
    if (!cred.source.issued()) return nullptr;
    if (cred.deliver_env.empty())
        return "refreshed ahead of expiry: the file is replaced, the old token revoked";
    return "cannot rotate: delivered in the environment, the token is issued once and stops "
           "working when it expires; deliver it as a file to have it refreshed";
}

json credentials_json(const EffectivePolicy& policy, const profile::Profile& profile) {
    json out = json::array();
    for (const std::string& name : policy.credentials) {
        const profile::Credential& cred = profile.credentials.at(name);
        out.push_back({{"name", name},
                       {"source", source_json(cred.source)},
                       {"deliver", cred.deliver_env.empty() ? json{{"file", cred.deliver_file}}
                                                            : json{{"env", cred.deliver_env}}},
                       {"optional", cred.optional},
                       {"rotation", rotation_json(cred)}});
    }
    return out;
}

// The webhook's URL, or the file it is read from at launch (never its contents).
json webhook_json(const std::optional<profile::ApprovalWebhook>& hook) {
    if (!hook) return nullptr;
    if (!hook->url_file.empty()) return {{"urlFile", hook->url_file}};
    return {{"url", hook->url}};
}

// The tools that wait for a human, their gates and endpoints, and who
// decides: what an approver is asked to open.
json approval_json(const EffectivePolicy& policy, const profile::Profile& profile) {
    json tools = json::array();
    for (const GatedTool& tool : policy.gated_tools) {
        json endpoints = json::array();
        for (const ResolvedEndpoint& resolved : tool.endpoints)
            endpoints.push_back(endpoint_json(resolved));
        tools.push_back({{"name", tool.name},
                         {"gate", tool.gate},
                         {"risk", profile.tools.at(tool.name).risk},
                         {"endpoints", endpoints},
                         {"credentials", tool.credentials}});
    }
    const profile::ApprovalPolicy& a = profile.approval;
    return {{"tools", tools},
            {"approvers", {{"users", a.approvers.users}, {"groups", a.approvers.groups}}},
            {"allowSelfApproval", a.allow_self_approval},
            {"requestTimeout", a.request_timeout.count()},
            {"maxWindow", a.max_window.count()},
            {"denyCooldown", a.deny_cooldown.count()},
            {"webhook", webhook_json(a.webhook)},
            {"credentialsAtGrant", policy.gated_credentials}};
}

}  // namespace

nlohmann::json to_json(const EffectivePolicy& policy, const profile::Profile& profile) {
    const profile::Identity& id = profile.identity;
    json out = {
        {"agent",
         {{"agentId", id.agent_id},
          {"agentType", id.agent_type},
          {"version", id.version},
          {"expiresAt", profile::format_rfc3339(id.expires_at)}}},
        {"deadline", profile::format_rfc3339(policy.deadline)},
        {"tools", tools_json(policy, profile)},
        {"credentials", credentials_json(policy, profile)},
        {"syscalls",
         {{"baseline", profile.syscalls.baseline},
          {"allow", profile.syscalls.allow},
          {"deny", profile.syscalls.deny}}},
        {"ruleCount", policy.rules.size()},
        {"approval", approval_json(policy, profile)},
    };
    if (policy.egress_budget) out["egressBudget"] = policy.egress_budget;
    return out;
}

nlohmann::json start_fields(const EffectivePolicy& policy, pid_t pid) {
    json denied = json::array();
    for (const DeniedTool& tool : policy.denied_tools) denied.push_back(denied_json(tool));
    json gated = json::array();
    for (const GatedTool& tool : policy.gated_tools) gated.push_back(tool.name);
    return {{"pid", pid},
            {"deadline", profile::format_rfc3339(policy.deadline)},
            {"toolsAllowed", policy.allowed_tools},
            {"toolsDenied", denied},
            {"toolsAwaitingApproval", gated}};
}

}  // namespace cordon::policy
