// SPDX-License-Identifier: Apache-2.0
#include "dns/dns.h"

namespace cordon::dns {

bool LearnedSet::learn(const policy::DnsName& name, const profile::Ip6& addr, SteadyTime expires) {
    Key key{addr, name.endpoint.spec, name.tool};
    auto [it, inserted] = entries_.try_emplace(key, Entry{name.endpoint, expires});
    if (!inserted) it->second.expires = std::max(it->second.expires, expires);
    return inserted;
}

std::vector<profile::Ip6> LearnedSet::expire(SteadyTime now) {
    std::vector<profile::Ip6> removed;
    for (auto it = entries_.begin(); it != entries_.end();) {
        if (it->second.expires <= now) {
            removed.push_back(it->first.address);
            it = entries_.erase(it);
        } else {
            ++it;
        }
    }
    return removed;
}

std::optional<SteadyTime> LearnedSet::next_expiry() const {
    std::optional<SteadyTime> next;
    for (const auto& [key, entry] : entries_)
        if (!next || entry.expires < *next) next = entry.expires;
    return next;
}

std::vector<netfilter::Rule> LearnedSet::rules() const {
    std::vector<netfilter::Rule> out;
    for (const auto& [key, entry] : entries_) {
        out.push_back({key.address, 128, entry.endpoint.ports,
                       static_cast<uint8_t>(entry.endpoint.protocol)});
    }
    return out;
}

std::string audit_name(const std::string& name) {
    if (name.size() <= kAuditNameMax) return name;
    return name.substr(0, kAuditNameMax) + "...";
}

}  // namespace cordon::dns
