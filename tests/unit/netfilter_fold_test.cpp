// SPDX-License-Identifier: Apache-2.0
// Folding of rules into rules trie entries (supervisor/netfilter/fold.h):
// each entry must carry the ports of every shorter prefix covering it,
// since an LPM lookup returns only the longest match.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>

#include "netfilter/fold.h"

namespace cordon::netfilter::detail {
namespace {

profile::Ip6 v4(const char* text) {
    profile::Ip6 out{};
    out[10] = out[11] = 0xff;
    inet_pton(AF_INET, text, &out[12]);
    return out;
}

Rule rule(const char* addr, unsigned v4_prefix, uint16_t first, uint16_t last,
          uint8_t protocols = CORDON_PROTO_TCP) {
    return {v4(addr), static_cast<uint8_t>(96 + v4_prefix), {first, last}, protocols};
}

profile::Ip6 ip6(const char* text) {
    profile::Ip6 out{};
    inet_pton(AF_INET6, text, out.data());
    return out;
}

Rule rule6(const char* addr, uint8_t prefix, uint16_t first, uint16_t last,
           uint8_t protocols = CORDON_PROTO_TCP) {
    return {ip6(addr), prefix, {first, last}, protocols};
}

// The entry's ranges as "first-last/protocols" strings, in slot order,
// with "@gate" for a gated range.
std::vector<std::string> ranges(const rule_value& v) {
    std::vector<std::string> out;
    for (uint32_t i = 0; i < v.count; i++)
        out.push_back(std::to_string(v.port_first[i]) + "-" + std::to_string(v.port_last[i]) + "/" +
                      std::to_string(v.protocols[i]) +
                      (v.gate[i] ? "@" + std::to_string(v.gate[i]) : ""));
    return out;
}

Rule gated(Rule r, uint16_t gate) {
    r.gate = gate;
    return r;
}

TEST(FoldRules, LongerPrefixesCarryTheirCoveringPrefixesPorts) {
    auto folded = fold_rules({rule("10.0.0.0", 8, 443, 443), rule("10.1.0.0", 16, 8080, 8080),
                              rule("10.1.2.3", 32, 22, 22), rule("192.168.0.0", 16, 80, 80)});
    ASSERT_TRUE(folded) << folded.error().message();
    ASSERT_EQ(folded->size(), 4u);
    EXPECT_EQ(ranges(folded->at({v4("10.0.0.0"), 104})), std::vector<std::string>{"443-443/1"});
    EXPECT_EQ(ranges(folded->at({v4("10.1.0.0"), 112})),
              (std::vector<std::string>{"443-443/1", "8080-8080/1"}));
    EXPECT_EQ(ranges(folded->at({v4("10.1.2.3"), 128})),
              (std::vector<std::string>{"22-22/1", "443-443/1", "8080-8080/1"}));
    EXPECT_EQ(ranges(folded->at({v4("192.168.0.0"), 112})), std::vector<std::string>{"80-80/1"});
}

TEST(FoldRules, HostBitsAreMaskedAndDuplicatesJoin) {
    auto folded = fold_rules({rule("10.9.9.9", 8, 443, 443, CORDON_PROTO_TCP),
                              rule("10.0.0.0", 8, 443, 443, CORDON_PROTO_UDP),
                              rule("10.0.0.0", 8, 444, 450, CORDON_PROTO_TCP)});
    ASSERT_TRUE(folded);
    ASSERT_EQ(folded->size(), 1u);
    // TCP 443 and 444-450 merge; UDP keeps 443 alone.
    EXPECT_EQ(ranges(folded->begin()->second),
              (std::vector<std::string>{"443-443/2", "443-450/1"}));
}

TEST(FoldRules, TooManyRangesAndInvalidRulesAreErrors) {
    std::vector<Rule> rules;
    for (uint16_t i = 0; i <= CORDON_MAX_PORT_RANGES; i++)
        rules.push_back(rule("10.0.0.1", 32, 1000 + 2 * i, 1000 + 2 * i));
    auto folded = fold_rules(rules);
    ASSERT_FALSE(folded);
    EXPECT_EQ(folded.error().message(),
              "too many port ranges for 10.0.0.1/32: 9 with those of the prefixes covering it "
              "(at most 8 per address; merge ranges or split the endpoints)");

    auto bad = fold_rules({rule("10.0.0.1", 32, 90, 80)});
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message(),
              "invalid rule for 10.0.0.1/32 (prefix length at most 128, first port <= last, tcp "
              "or udp)");
}

TEST(FoldRules, TenThousandHostsUnderOnePrefixEachGetItsPorts) {
    std::vector<Rule> rules = {rule("10.0.0.0", 8, 443, 443)};
    for (int k = 0; k < 10000; k++) {
        std::string host = "10.1." + std::to_string(k / 256) + "." + std::to_string(k % 256);
        rules.push_back(rule(host.c_str(), 32, 8000, 8000));
    }
    auto folded = fold_rules(rules);
    ASSERT_TRUE(folded);
    EXPECT_EQ(folded->size(), 10001u);
    EXPECT_EQ(ranges(folded->at({v4("10.1.39.15"), 128})),
              (std::vector<std::string>{"443-443/1", "8000-8000/1"}));
}

TEST(FoldRules, AnIpv6PrefixCoveringTheV4MappedRangeNeverOpensIpv4) {
    auto folded = fold_rules({rule6("::", 0, 443, 443), rule("127.0.0.1", 32, 8080, 8080)});
    ASSERT_TRUE(folded.ok()) << folded.error().message();
    // A stop entry for ::ffff:0:0/96 with no ports: v4-mapped lookups end there.
    ASSERT_TRUE(folded->count({v4("0.0.0.0"), 96}));
    EXPECT_EQ(folded->at({v4("0.0.0.0"), 96}).count, 0u);
    // The IPv4 host keeps its own port and not the IPv6 rule's.
    const rule_value& host = folded->at({v4("127.0.0.1"), 128});
    ASSERT_EQ(host.count, 1u);
    EXPECT_EQ(host.port_first[0], 8080);
    EXPECT_EQ(folded->at({ip6("::"), 0}).port_first[0], 443);
}

TEST(FoldRules, ZeroZeroSlashZeroIsTheIpv4WildcardAndStaysOpen) {
    auto folded = fold_rules({rule6("::", 0, 443, 443), rule("0.0.0.0", 0, 80, 80)});
    ASSERT_TRUE(folded.ok()) << folded.error().message();
    const rule_value& any4 = folded->at({v4("0.0.0.0"), 96});
    ASSERT_EQ(any4.count, 1u);
    EXPECT_EQ(any4.port_first[0], 80);
}

TEST(FoldRules, NarrowIpv6PrefixesNeedNoStopEntry) {
    auto folded = fold_rules({rule6("fd00::", 8, 443, 443)});
    ASSERT_TRUE(folded.ok());
    EXPECT_EQ(folded->size(), 1u);
}

TEST(FoldRules, AWideIpv6RuleReachesNoRangeThatCarriesIpv4) {
    auto folded = fold_rules({rule6("::", 0, 443, 443), rule6("2002:c633:6407::", 48, 80, 80)});
    ASSERT_TRUE(folded.ok()) << folded.error().message();
    for (auto [base, len] : {std::pair{"::ffff:0.0.0.0", 96}, std::pair{"64:ff9b::", 96},
                             std::pair{"64:ff9b:1::", 48}, std::pair{"2002::", 16}}) {
        ASSERT_TRUE(folded->count({ip6(base), static_cast<unsigned>(len)})) << base;
        EXPECT_EQ(folded->at({ip6(base), static_cast<unsigned>(len)}).count, 0u) << base;
    }
    // A rule inside 6to4 keeps its own ports, not those of ::/0.
    EXPECT_EQ(ranges(folded->at({ip6("2002:c633:6407::"), 48})),
              std::vector<std::string>{"80-80/1"});
    EXPECT_FALSE(rule_reaches(ip6("::"), 0, ip6("64:ff9b::7f00:1")));
    EXPECT_FALSE(rule_reaches(ip6("::"), 0, ip6("2002:7f00:1::1")));
    EXPECT_FALSE(rule_reaches(ip6("::"), 0, v4("127.0.0.1")));
    EXPECT_TRUE(rule_reaches(ip6("::"), 0, ip6("2001:db8::1")));
    EXPECT_TRUE(rule_reaches(ip6("64:ff9b::"), 96, ip6("64:ff9b::7f00:1")));
}

// ---------------------------------------------------------------- gates

TEST(FoldRules, RangesOfDifferentGatesNeverMerge) {
    // Overlapping and adjacent: merged within a gate, kept apart across gates.
    auto folded = fold_rules(
        {rule("10.0.0.1", 32, 443, 443), gated(rule("10.0.0.1", 32, 443, 443), 2),
         gated(rule("10.0.0.1", 32, 444, 450), 2), gated(rule("10.0.0.1", 32, 440, 445), 1),
         gated(rule("10.0.0.1", 32, 451, 451), 3)});
    ASSERT_TRUE(folded) << folded.error().message();
    ASSERT_EQ(folded->size(), 1u);
    // Ungated first, then by gate.
    EXPECT_EQ(ranges(folded->begin()->second),
              (std::vector<std::string>{"443-443/1", "440-445/1@1", "443-450/1@2", "451-451/1@3"}));
}

TEST(FoldRules, GatedAndUngatedProtocolsJoinOnlyWithinAGate) {
    auto folded = fold_rules({gated(rule("10.0.0.1", 32, 53000, 53000, CORDON_PROTO_TCP), 4),
                              gated(rule("10.0.0.1", 32, 53000, 53000, CORDON_PROTO_UDP), 4),
                              rule("10.0.0.1", 32, 53000, 53000, CORDON_PROTO_UDP)});
    ASSERT_TRUE(folded);
    EXPECT_EQ(ranges(folded->begin()->second),
              (std::vector<std::string>{"53000-53000/2", "53000-53000/3@4"}));
}

TEST(FoldRules, ALongerPrefixCarriesTheGatesOfItsCoveringPrefixes) {
    auto folded =
        fold_rules({gated(rule("10.0.0.0", 8, 443, 443), 7), rule("10.1.2.3", 32, 443, 443),
                    gated(rule("10.1.2.3", 32, 8443, 8443), 1)});
    ASSERT_TRUE(folded);
    ASSERT_EQ(folded->size(), 2u);
    EXPECT_EQ(ranges(folded->at({v4("10.0.0.0"), 104})), std::vector<std::string>{"443-443/1@7"});
    EXPECT_EQ(ranges(folded->at({v4("10.1.2.3"), 128})),
              (std::vector<std::string>{"443-443/1", "8443-8443/1@1", "443-443/1@7"}));
    // Unused slots stay ungated and zero, so that equal entries compare equal.
    const rule_value& host = folded->at({v4("10.1.2.3"), 128});
    for (uint32_t i = host.count; i < CORDON_MAX_PORT_RANGES; i++) EXPECT_EQ(host.gate[i], 0);
}

TEST(FoldRules, GatedRangesCountTowardsTheLimit) {
    std::vector<Rule> rules;
    for (uint16_t gate = 1; gate <= CORDON_MAX_PORT_RANGES; gate++)
        rules.push_back(gated(rule("10.0.0.1", 32, 443, 443), gate));
    ASSERT_TRUE(fold_rules(rules)) << "one slot per gate: exactly the limit";
    rules.push_back(rule("10.0.0.1", 32, 443, 443));
    auto folded = fold_rules(rules);
    ASSERT_FALSE(folded);
    EXPECT_EQ(folded.error().message(),
              "too many port ranges for 10.0.0.1/32: 9 with those of the prefixes covering it, "
              "each gate's apart (at most 8 per address; merge ranges or split the endpoints)");
}

TEST(SameValue, AChangedGateIsAChange) {
    auto a = fold_rules({gated(rule("10.0.0.1", 32, 443, 443), 1)});
    auto b = fold_rules({gated(rule("10.0.0.1", 32, 443, 443), 2)});
    ASSERT_TRUE(a && b);
    EXPECT_FALSE(same_value(a->begin()->second, b->begin()->second));
}

TEST(TrieKey, CountsTheCgroupIdInThePrefix) {
    rule_key key = trie_key(42, {v4("10.0.0.0"), 104});
    EXPECT_EQ(key.prefixlen, 64u + 104);
    EXPECT_EQ(key.cgroup_id, 42u);
    EXPECT_EQ(format_prefix(v4("10.0.0.0"), 104), "10.0.0.0/8");
    EXPECT_EQ(std::memcmp(key.addr, v4("10.0.0.0").data(), 16), 0);
}

}  // namespace
}  // namespace cordon::netfilter::detail
