// SPDX-License-Identifier: Apache-2.0
// The learned addresses of a session's resolver: expiry, and the grace an
// address still carrying traffic gets.
#include <gtest/gtest.h>

#include "dns/dns.h"

namespace cordon::dns {
namespace {

using std::chrono::seconds;

policy::DnsName name(const std::string& spec, uint16_t port) {
    policy::DnsName n;
    n.tool = "api";
    n.endpoint = profile::parse_endpoint(spec);
    n.endpoint.ports = {port, port};
    return n;
}

profile::Ip6 addr(uint8_t last) {
    profile::Ip6 a{};
    a[10] = a[11] = 0xff;
    a[12] = 198;
    a[13] = 51;
    a[14] = 100;
    a[15] = last;
    return a;
}

TEST(LearnedSet, AnAddressIsARuleUntilItsTtlRunsOut) {
    LearnedSet set;
    SteadyTime t0{};
    auto api = name("api.example:443", 443);
    EXPECT_TRUE(set.learn(api, addr(7), t0, seconds(30)));
    EXPECT_FALSE(set.learn(api, addr(7), t0 + seconds(10), seconds(30)));  // only later
    ASSERT_EQ(set.rules().size(), 1u);
    EXPECT_EQ(set.rules()[0].ports.first, 443);
    EXPECT_EQ(set.rules()[0].prefix_len, 128);
    EXPECT_TRUE(set.expire(t0 + seconds(39)).empty());
    EXPECT_EQ(set.expire(t0 + seconds(40)), std::vector<profile::Ip6>{addr(7)});
    EXPECT_EQ(set.size(), 0u);
}

// A gated tool's address stays behind its gate for the session: were it
// to expire, an allowed name answered with it later would open it.
TEST(LearnedSet, AGatedToolsAddressNeverExpires) {
    LearnedSet set;
    SteadyTime t0{};
    auto refund = name("refund.example:443", 443);
    refund.gate = 1;
    auto api = name("api.example:443", 443);
    set.learn(refund, addr(7), t0, seconds(5));
    set.learn(api, addr(8), t0, seconds(5));
    EXPECT_EQ(set.next_expiry(), t0 + seconds(5));
    EXPECT_EQ(set.expire(t0 + seconds(3600)), std::vector<profile::Ip6>{addr(8)});
    ASSERT_EQ(set.rules().size(), 1u);
    EXPECT_EQ(set.rules()[0].gate, 1);
    EXPECT_FALSE(set.next_expiry());
}

TEST(LearnedSet, AnAddressInUseGetsItsTtlAgainAndLeavesOnceIdle) {
    LearnedSet set;
    SteadyTime t0{};
    set.learn(name("api.example:443", 443), addr(7), t0, seconds(5));
    set.learn(name("api.example:443", 443), addr(8), t0, seconds(5));
    int asked = 0;
    auto busy_7 = [&](const profile::Ip6& a) {
        ++asked;
        return a == addr(7);
    };
    EXPECT_EQ(set.expire(t0 + seconds(5), busy_7), std::vector<profile::Ip6>{addr(8)});
    EXPECT_EQ(asked, 2);
    EXPECT_EQ(set.next_expiry(), t0 + seconds(10));
    EXPECT_EQ(set.expire(t0 + seconds(10), [](const profile::Ip6&) { return false; }),
              std::vector<profile::Ip6>{addr(7)});
}

TEST(LearnedSet, AZeroTtlInUseIsKeptASecondNotSpunOn) {
    LearnedSet set;
    SteadyTime t0{};
    set.learn(name("api.example:443", 443), addr(7), t0, seconds(0));
    EXPECT_TRUE(set.expire(t0, [](const profile::Ip6&) { return true; }).empty());
    EXPECT_EQ(set.next_expiry(), t0 + seconds(1));
}

TEST(AuditName, LongNamesAreCut) {
    EXPECT_EQ(audit_name("short.example"), "short.example");
    std::string long_name(150, 'a');
    EXPECT_EQ(audit_name(long_name), long_name.substr(0, kAuditNameMax) + "...");
}

}  // namespace
}  // namespace cordon::dns
