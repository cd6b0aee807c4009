// SPDX-License-Identifier: Apache-2.0
// Folding of a session's rules into rules trie entries. An LPM lookup
// returns only the longest match, so without folding a /32 would hide the
// ports of the /8 that covers it: each entry carries the ports of every
// shorter prefix of the session that covers it.
#include "netfilter/fold.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace cordon::netfilter::detail {
namespace {

struct PortSpan {
    uint16_t first;
    uint16_t last;
    uint8_t protocols;
    uint16_t gate;  // 0: ungated
};

profile::Ip6 masked(const profile::Ip6& addr, unsigned prefix_len) {
    profile::Ip6 out{};
    for (unsigned i = 0; i < out.size(); i++) {
        unsigned bits = prefix_len > i * 8 ? std::min(8u, prefix_len - i * 8) : 0;
        out[i] = addr[i] & static_cast<uint8_t>(0xff00 >> bits);
    }
    return out;
}

using Range = std::pair<uint16_t, uint16_t>;

// Sorted ranges with the overlapping and adjacent ones merged.
std::vector<Range> merge_ranges(std::vector<Range> ranges) {
    std::sort(ranges.begin(), ranges.end());
    std::vector<Range> merged;
    for (const auto& r : ranges) {
        if (!merged.empty() && r.first <= merged.back().second + 1)
            merged.back().second = std::max(merged.back().second, r.second);
        else
            merged.push_back(r);
    }
    return merged;
}

// Merges overlapping and adjacent ranges per gate and protocol, then joins
// the protocols of identical ranges of one gate, so that entries use as few
// slots as they can. Ranges of different gates never merge: each passes
// only while its own gate is open. Ungated ranges (gate 0) come first.
std::vector<PortSpan> merge_spans(const std::vector<PortSpan>& spans) {
    std::set<uint16_t> gates;
    for (const auto& s : spans) gates.insert(s.gate);
    std::map<std::pair<uint16_t, Range>, uint8_t> joined;  // (gate, range) -> protocols
    for (uint16_t gate : gates) {
        for (uint8_t proto : {uint8_t{CORDON_PROTO_TCP}, uint8_t{CORDON_PROTO_UDP}}) {
            std::vector<Range> ranges;
            for (const auto& s : spans)
                if (s.gate == gate && (s.protocols & proto)) ranges.emplace_back(s.first, s.last);
            for (const auto& r : merge_ranges(std::move(ranges))) joined[{gate, r}] |= proto;
        }
    }
    std::vector<PortSpan> out;
    for (const auto& [key, protocols] : joined)
        out.push_back({key.second.first, key.second.second, protocols, key.first});
    return out;
}

Status check_rule(const Rule& r) {
    if (r.prefix_len > 128 || r.ports.first > r.ports.last ||
        (r.protocols & ~(CORDON_PROTO_TCP | CORDON_PROTO_UDP)) || r.protocols == 0)
        return plain_error("invalid rule for " + format_prefix(r.address, r.prefix_len),
                           "prefix length at most 128, first port <= last, tcp or udp");
    return ok_status();
}

Result<rule_value> to_value(const Prefix& prefix, const std::vector<PortSpan>& spans) {
    bool gated = std::any_of(spans.begin(), spans.end(), [](const auto& s) { return s.gate; });
    if (spans.size() > CORDON_MAX_PORT_RANGES)
        return plain_error(
            "too many port ranges for " + format_prefix(prefix.first, prefix.second) + ": " +
                std::to_string(spans.size()) + " with those of the prefixes covering it" +
                (gated ? ", each gate's apart" : ""),
            "at most " + std::to_string(CORDON_MAX_PORT_RANGES) +
                " per address; merge ranges or split the endpoints");
    rule_value value{};
    value.count = spans.size();
    for (size_t i = 0; i < spans.size(); i++) {
        value.port_first[i] = spans[i].first;
        value.port_last[i] = spans[i].last;
        value.protocols[i] = spans[i].protocols;
        value.gate[i] = spans[i].gate;
    }
    return value;
}

// Ranges where IPv6 addresses stand for IPv4 ones: v4-mapped (where the
// trie keeps IPv4), NAT64 (RFC 6052, RFC 8215) and 6to4. (IPv4-compatible
// ::/96 is deprecated, routes nowhere, and holds :: and ::1: not one.)
// A rule shorter than one of them ([::/0], [2000::/3]) never reaches into
// it: IPv4 is opened by IPv4 rules, or by a rule inside the range.
struct Enclave {
    profile::Ip6 base;
    unsigned len;
};
const Enclave kEnclaves[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96},
    {{0, 0x64, 0xff, 0x9b}, 96},
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48},
    {{0x20, 0x02}, 16},
};

// The enclave addr lies in, if any.
const Enclave* enclave_of(const profile::Ip6& addr) {
    for (const Enclave& e : kEnclaves)
        if (masked(addr, e.len) == e.base) return &e;
    return nullptr;
}

}  // namespace

Result<FoldedRules> fold_rules(const std::vector<Rule>& rules) {
    std::map<Prefix, std::vector<PortSpan>> prefixes;
    std::set<unsigned> lengths;
    for (const auto& r : rules) {
        if (auto st = check_rule(r); !st) return st.error();
        prefixes[{masked(r.address, r.prefix_len), r.prefix_len}].push_back(
            {r.ports.first, r.ports.last, r.protocols, r.gate});
        lengths.insert(r.prefix_len);
    }
    // A stop entry for each enclave a shorter rule covers: the lookup of an
    // address there ends at it, with the ports of rules inside only (none
    // unless one is the enclave itself, such as 0.0.0.0/0).
    std::vector<Prefix> stops;
    for (const auto& [prefix, spans] : prefixes)
        for (const Enclave& e : kEnclaves)
            if (prefix.second < e.len && masked(e.base, prefix.second) == prefix.first)
                stops.push_back({e.base, e.len});
    for (const Prefix& stop : stops) {
        prefixes.try_emplace(stop);
        lengths.insert(stop.second);
    }

    // The covering prefixes of each one are found by masking it to each
    // shorter length in use: O(rules x lengths), not O(rules^2).
    FoldedRules folded;
    for (const auto& [prefix, own] : prefixes) {
        std::vector<PortSpan> spans = own;
        for (unsigned len : lengths) {
            if (len >= prefix.second) break;
            if (!rule_reaches(masked(prefix.first, len), len, prefix.first)) continue;
            auto shorter = prefixes.find({masked(prefix.first, len), len});
            if (shorter != prefixes.end())
                spans.insert(spans.end(), shorter->second.begin(), shorter->second.end());
        }
        auto value = to_value(prefix, merge_spans(spans));
        if (!value) return value.error();
        folded.emplace(prefix, value.value());
    }
    return folded;
}

rule_key trie_key(uint64_t cgroup_id, const Prefix& prefix) {
    rule_key key{};
    key.prefixlen = 64 + prefix.second;
    key.cgroup_id = cgroup_id;
    std::memcpy(key.addr, prefix.first.data(), sizeof(key.addr));
    return key;
}

std::string format_prefix(const profile::Ip6& addr, unsigned prefix_len) {
    static constexpr uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN] = "?";
    if (prefix_len >= 96 && std::memcmp(addr.data(), kV4Mapped, 12) == 0) {
        ::inet_ntop(AF_INET, addr.data() + 12, text, sizeof(text));
        return std::string(text) + "/" + std::to_string(prefix_len - 96);
    }
    ::inet_ntop(AF_INET6, addr.data(), text, sizeof(text));
    return std::string(text) + "/" + std::to_string(prefix_len);
}

bool same_value(const rule_value& a, const rule_value& b) {
    return std::memcmp(&a, &b, sizeof(a)) == 0;
}

}  // namespace cordon::netfilter::detail

namespace cordon::netfilter {

bool rule_reaches(const profile::Ip6& network, unsigned prefix_len, const profile::Ip6& addr) {
    if (detail::masked(addr, prefix_len) != detail::masked(network, prefix_len)) return false;
    const detail::Enclave* e = detail::enclave_of(addr);
    return !e || prefix_len >= e->len;
}

}  // namespace cordon::netfilter
