// SPDX-License-Identifier: Apache-2.0
// Folding rules into trie entries: what the kernel's longest-prefix lookup
// will find for each prefix.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include "netfilter/fold.h"

namespace cordon::netfilter::detail {
namespace {

profile::Ip6 ip(const std::string& text) {
    profile::Ip6 out{};
    if (inet_pton(AF_INET6, text.c_str(), out.data()) == 1) return out;
    out[10] = out[11] = 0xff;
    inet_pton(AF_INET, text.c_str(), &out[12]);
    return out;
}

Rule rule(const std::string& addr, uint8_t len, uint16_t first, uint16_t last,
          uint8_t protocols = CORDON_PROTO_TCP) {
    return {ip(addr), len, {first, last}, protocols};
}

TEST(Fold, ShorterPrefixesLendTheirPortsToLongerOnes) {
    auto folded = fold_rules({rule("10.0.0.0", 104, 443, 443), rule("10.1.2.3", 128, 8080, 8080)});
    ASSERT_TRUE(folded.ok()) << folded.error().message();
    const rule_value& host = folded->at({ip("10.1.2.3"), 128});
    ASSERT_EQ(host.count, 2u);
    EXPECT_EQ(host.port_first[0], 443);
    EXPECT_EQ(host.port_first[1], 8080);
    EXPECT_EQ(folded->at({ip("10.0.0.0"), 104}).count, 1u);
}

TEST(Fold, AnIpv6PrefixCoveringTheV4MappedRangeNeverOpensIpv4) {
    auto folded = fold_rules({rule("::", 0, 443, 443), rule("127.0.0.1", 128, 8080, 8080)});
    ASSERT_TRUE(folded.ok()) << folded.error().message();
    // A stop entry for ::ffff:0:0/96 with no ports: v4-mapped lookups end there.
    ASSERT_TRUE(folded->count({ip("::ffff:0.0.0.0"), 96}));
    EXPECT_EQ(folded->at({ip("::ffff:0.0.0.0"), 96}).count, 0u);
    // The IPv4 host keeps its own port and not the IPv6 rule's.
    const rule_value& host = folded->at({ip("127.0.0.1"), 128});
    ASSERT_EQ(host.count, 1u);
    EXPECT_EQ(host.port_first[0], 8080);
    EXPECT_EQ(folded->at({ip("::"), 0}).port_first[0], 443);
}

TEST(Fold, ZeroZeroSlashZeroIsTheIpv4WildcardAndStaysOpen) {
    auto folded = fold_rules({rule("::", 0, 443, 443), rule("0.0.0.0", 96, 80, 80)});
    ASSERT_TRUE(folded.ok()) << folded.error().message();
    const rule_value& v4 = folded->at({ip("::ffff:0.0.0.0"), 96});
    ASSERT_EQ(v4.count, 1u);
    EXPECT_EQ(v4.port_first[0], 80);
}

TEST(Fold, NarrowIpv6PrefixesNeedNoStopEntry) {
    auto folded = fold_rules({rule("fd00::", 8, 443, 443)});
    ASSERT_TRUE(folded.ok());
    EXPECT_EQ(folded->size(), 1u);
}

}  // namespace
}  // namespace cordon::netfilter::detail
