// SPDX-License-Identifier: Apache-2.0
// Which tool a denied destination belongs to, for the net.deny audit event.
// When several endpoints cover it, the longest prefix wins (10.1.2.3/32
// over 10.0.0.0/8), as in the kernel's trie; equal prefixes go to the tool
// whose name sorts first.
#include "policy/policy.h"

namespace cordon::policy {
namespace {

using profile::Ip6;

bool port_and_protocol_match(const profile::Endpoint& ep, uint16_t port,
                             profile::Protocol protocol) {
    return ep.protocol == protocol && ep.ports.first <= port && port <= ep.ports.last;
}

struct BestMatch {
    std::optional<std::string> tool;
    int prefix_len = -1;

    void offer(const std::string& name, uint8_t len) {
        if (len > prefix_len || (len == prefix_len && name < *tool)) {
            tool = name;
            prefix_len = len;
        }
    }
};

void match_literal_endpoints(const profile::Profile& profile, const Ip6& addr, uint16_t port,
                             profile::Protocol protocol, BestMatch& best) {
    for (const auto& [name, tool] : profile.tools) {
        for (const profile::Endpoint& ep : tool.endpoints) {
            if (!ep.hostname.empty() || !port_and_protocol_match(ep, port, protocol)) continue;
            if (prefix_covers(ep.address, ep.prefix_len, addr)) best.offer(name, ep.prefix_len);
        }
    }
}

}  // namespace

std::optional<std::string> tool_for(const profile::Profile& profile, const Ip6& addr, uint16_t port,
                                    profile::Protocol protocol) {
    BestMatch best;
    match_literal_endpoints(profile, addr, port, protocol, best);
    return best.tool;
}

std::optional<std::string> tool_for(const EffectivePolicy& policy, const profile::Profile& profile,
                                    const Ip6& addr, uint16_t port, profile::Protocol protocol) {
    BestMatch best;
    match_literal_endpoints(profile, addr, port, protocol, best);
    for (const ResolvedEndpoint& resolved : policy.endpoints) {
        const profile::Endpoint& ep = resolved.endpoint;
        if (ep.hostname.empty() || !port_and_protocol_match(ep, port, protocol)) continue;
        for (const Ip6& address : resolved.addresses) {
            if (address == addr) best.offer(resolved.tool, 128);
        }
    }
    return best.tool;
}

}  // namespace cordon::policy
