// SPDX-License-Identifier: Apache-2.0
// What the session's resolver may answer and learn: the names of allowed
// tools, and the public addresses their answers carry. Ranges follow the
// IANA special-purpose address registries (RFC 6890 and its updates).
#include <array>

#include "policy/policy.h"

namespace cordon::policy {
namespace {

using profile::Ip6;

struct Range {
    std::array<uint8_t, 4> network;
    uint8_t prefix_len;  // of the IPv4 form
    const char* kind;
};

// special_v4 tries the single addresses first, so that 169.254.169.254 is
// "cloud-metadata" rather than "link-local".
constexpr std::array<Range, 15> kIpv4Ranges{{
    {{0, 0, 0, 0}, 8, "unspecified"},
    {{10, 0, 0, 0}, 8, "private"},
    {{100, 64, 0, 0}, 10, "shared"},
    {{127, 0, 0, 0}, 8, "loopback"},
    {{169, 254, 169, 254}, 32, "cloud-metadata"},
    {{169, 254, 0, 0}, 16, "link-local"},
    {{172, 16, 0, 0}, 12, "private"},
    {{192, 0, 0, 0}, 24, "reserved"},
    {{192, 168, 0, 0}, 16, "private"},
    {{198, 18, 0, 0}, 15, "reserved"},
    {{224, 0, 0, 0}, 4, "multicast"},
    {{240, 0, 0, 0}, 4, "reserved"},
    {{100, 100, 100, 200}, 32, "cloud-metadata"},  // Alibaba Cloud; inside "shared" too
    {{192, 0, 0, 192}, 32, "cloud-metadata"},      // Oracle Cloud; inside "reserved" too
    {{255, 255, 255, 255}, 32, "reserved"},
}};

bool v4_in(const uint8_t* v4, const Range& r) {
    for (unsigned bit = 0; bit < r.prefix_len; ++bit) {
        uint8_t mask = 0x80 >> (bit % 8);
        if ((v4[bit / 8] & mask) != (r.network[bit / 8] & mask)) return false;
    }
    return true;
}

std::optional<std::string> special_v4(const uint8_t* v4) {
    // The single-address entries win over the ranges that contain them.
    for (const Range& r : kIpv4Ranges)
        if (r.prefix_len == 32 && v4_in(v4, r)) return r.kind;
    for (const Range& r : kIpv4Ranges)
        if (v4_in(v4, r)) return r.kind;
    return std::nullopt;
}

bool starts_with(const Ip6& addr, std::initializer_list<uint8_t> bytes) {
    size_t i = 0;
    for (uint8_t b : bytes)
        if (addr[i++] != b) return false;
    return true;
}

// The IPv4 address an IPv6 one carries for translation or tunnelling, or null.
const uint8_t* embedded_v4(const Ip6& addr) {
    if (starts_with(addr, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})) return &addr[12];
    if (starts_with(addr, {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0})) return &addr[12];  // SIIT
    if (starts_with(addr, {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0})) return &addr[12];
    // RFC 8215 local-use NAT64: the IPv4 address in the last 32 bits (a /96 within it).
    if (starts_with(addr, {0, 0x64, 0xff, 0x9b, 0, 1})) return &addr[12];
    if (starts_with(addr, {0x20, 0x02})) return &addr[2];
    return nullptr;
}

std::optional<std::string> special_v6(const Ip6& addr) {
    static const Ip6 kUnspecified{};
    static const Ip6 kLoopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const Ip6 kAwsMetadata{0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
    if (addr == kUnspecified) return "unspecified";
    if (addr == kLoopback) return "loopback";
    if (addr == kAwsMetadata) return "cloud-metadata";
    if ((addr[0] & 0xfe) == 0xfc) return "private";                        // fc00::/7, unique local
    if (addr[0] == 0xfe && (addr[1] & 0xc0) == 0x80) return "link-local";  // fe80::/10
    if (addr[0] == 0xff) return "multicast";
    if (addr[0] == 0xfe && (addr[1] & 0xc0) == 0xc0) return "reserved";  // fec0::/10, site-local
    if (starts_with(addr, {0x20, 0x01, 0, 0})) return "tunnel";  // Teredo 2001::/32, IPv4 inside
    // ORCHID and ORCHIDv2 (2001:10::/28, 2001:20::/28): identifiers, not locations.
    if (addr[0] == 0x20 && addr[1] == 0x01 && addr[2] == 0 &&
        ((addr[3] & 0xf0) == 0x10 || (addr[3] & 0xf0) == 0x20))
        return "reserved";
    // ::/96 (IPv4-compatible, deprecated) and the discard prefix 100::/64.
    if (starts_with(addr, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})) return "reserved";
    if (starts_with(addr, {0x01, 0, 0, 0, 0, 0, 0, 0})) return "reserved";
    return std::nullopt;
}

}  // namespace

bool name_matches(const std::string& pattern, const std::string& qname) {
    if (pattern.rfind("*.", 0) != 0) return pattern == qname;
    std::string suffix = pattern.substr(1);  // ".example.com"
    return qname.size() > suffix.size() &&
           qname.compare(qname.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool names_overlap(const std::string& a, const std::string& b) {
    bool a_wild = a.rfind("*.", 0) == 0, b_wild = b.rfind("*.", 0) == 0;
    if (!a_wild || !b_wild) return name_matches(a, b) || name_matches(b, a);
    // Two suffixes share every name below the longer one.
    std::string sa = a.substr(1), sb = b.substr(1);  // ".example.com"
    const std::string& longer = sa.size() >= sb.size() ? sa : sb;
    const std::string& shorter = sa.size() >= sb.size() ? sb : sa;
    return longer.compare(longer.size() - shorter.size(), shorter.size(), shorter) == 0;
}

std::optional<std::string> special_range(const Ip6& addr) {
    if (const uint8_t* v4 = embedded_v4(addr)) return special_v4(v4);
    return special_v6(addr);
}

bool endpoint_covers(const profile::Endpoint& ep, const Ip6& addr) {
    return ep.hostname.empty() && netfilter::rule_reaches(ep.address, ep.prefix_len, addr);
}

bool literal_covers(const EffectivePolicy& policy, const Ip6& addr) {
    for (const ResolvedEndpoint& resolved : policy.endpoints)
        if (endpoint_covers(resolved.endpoint, addr)) return true;
    return false;
}

bool learnable(const EffectivePolicy& policy, const Ip6& addr) {
    return !special_range(addr) || literal_covers(policy, addr);
}

std::vector<const DnsName*> match_name(const EffectivePolicy& policy, const std::string& qname) {
    std::vector<const DnsName*> matches;
    for (const DnsName& name : policy.dns_names)
        if (name_matches(name.endpoint.hostname, qname)) matches.push_back(&name);
    return matches;
}

}  // namespace cordon::policy
