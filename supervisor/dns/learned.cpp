// SPDX-License-Identifier: Apache-2.0
#include "dns/dns.h"

namespace cordon::dns {

bool LearnedSet::learn(const policy::DnsName& name, const profile::Ip6& addr, SteadyTime now,
                       std::chrono::seconds ttl) {
    Key key{addr, name.endpoint.spec, name.tool};
    auto [it, inserted] =
        entries_.try_emplace(key, Entry{name.endpoint, now + ttl, ttl, name.gate});
    if (!inserted) {
        it->second.expires = std::max(it->second.expires, now + ttl);
        it->second.ttl = std::max(it->second.ttl, ttl);
    }
    return inserted;
}

std::vector<profile::Ip6> LearnedSet::expire(
    SteadyTime now, const std::function<bool(const profile::Ip6&)>& in_use) {
    std::vector<profile::Ip6> removed;
    std::map<profile::Ip6, bool> busy;  // asked once per address
    for (auto it = entries_.begin(); it != entries_.end();) {
        Entry& e = it->second;
        if (e.gate || e.expires > now) {
            ++it;
            continue;
        }
        const profile::Ip6& addr = it->first.address;
        if (in_use && !busy.count(addr)) busy[addr] = in_use(addr);
        if (in_use && busy[addr]) {
            e.expires = now + std::max(e.ttl, std::chrono::seconds(1));
            ++it;
            continue;
        }
        removed.push_back(addr);
        it = entries_.erase(it);
    }
    return removed;
}

std::optional<SteadyTime> LearnedSet::next_expiry() const {
    std::optional<SteadyTime> next;
    for (const auto& [key, entry] : entries_)
        if (!entry.gate && (!next || entry.expires < *next)) next = entry.expires;
    return next;
}

std::vector<netfilter::Rule> LearnedSet::rules() const {
    std::vector<netfilter::Rule> out;
    for (const auto& [key, entry] : entries_) {
        netfilter::Rule rule{key.address, 128, entry.endpoint.ports,
                             static_cast<uint8_t>(entry.endpoint.protocol)};
        rule.gate = entry.gate;  // a gated tool's address stays behind its gate
        out.push_back(rule);
    }
    return out;
}

std::string audit_name(const std::string& name) {
    if (name.size() <= kAuditNameMax) return name;
    return name.substr(0, kAuditNameMax) + "...";
}

}  // namespace cordon::dns
