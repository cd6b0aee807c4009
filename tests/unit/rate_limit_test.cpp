// SPDX-License-Identifier: Apache-2.0
// The denial budget with a clock the test moves by hand.
#include "audit/rate_limit.h"

#include <gtest/gtest.h>

namespace cordon::audit {
namespace {

using std::chrono::milliseconds;
using Clock = DenialLimiter::Clock;

// How many of n denials at one instant are admitted.
int admitted(DenialLimiter& l, Clock::time_point at, int n) {
    int yes = 0;
    for (int i = 0; i < n; ++i) yes += l.admit(at);
    return yes;
}

TEST(DenialLimiter, AdmitsTheBurstAtOnceThenHoldsBack) {
    Clock::time_point t0{};
    DenialLimiter l(50, 20, t0);
    EXPECT_EQ(admitted(l, t0, 50), 50);
    EXPECT_FALSE(l.admit(t0));
    EXPECT_EQ(l.pending(), 1u);
    EXPECT_EQ(l.total_suppressed(), 1u);
}

TEST(DenialLimiter, RefillsAtTheRate) {
    Clock::time_point t0{};
    DenialLimiter l(50, 20, t0);
    ASSERT_EQ(admitted(l, t0, 60), 50);
    // 20 a second: one token every 50 ms, none before.
    EXPECT_FALSE(l.admit(t0 + milliseconds(49)));
    EXPECT_TRUE(l.admit(t0 + milliseconds(50)));
    EXPECT_FALSE(l.admit(t0 + milliseconds(50)));
    // One second later: 20 more, and the 21st waits.
    EXPECT_EQ(admitted(l, t0 + milliseconds(1050), 25), 20);
    EXPECT_EQ(l.total_suppressed(), 10u + 1 + 1 + 5);
}

TEST(DenialLimiter, NeverHoldsMoreThanTheBurst) {
    Clock::time_point t0{};
    DenialLimiter l(50, 20, t0);
    ASSERT_EQ(admitted(l, t0, 50), 50);
    // An hour idle refills to the burst, not to 72,000.
    EXPECT_EQ(admitted(l, t0 + std::chrono::hours(1), 100), 50);
}

TEST(DenialLimiter, TakeSuppressedResetsThePendingCountOnly) {
    Clock::time_point t0{};
    DenialLimiter l(2, 1, t0);
    ASSERT_EQ(admitted(l, t0, 7), 2);
    EXPECT_EQ(l.take_suppressed(), 5u);
    EXPECT_EQ(l.pending(), 0u);
    EXPECT_EQ(l.take_suppressed(), 0u);
    ASSERT_EQ(admitted(l, t0, 3), 0);
    EXPECT_EQ(l.take_suppressed(), 3u);
    EXPECT_EQ(l.total_suppressed(), 8u);
}

TEST(DenialLimiter, AdmittedPlusSuppressedIsEveryDenial) {
    Clock::time_point t0{};
    DenialLimiter l(50, 20, t0);
    uint64_t yes = 0;
    // 2,000 denials over 10 seconds: the burst plus 20 a second.
    for (int i = 0; i < 2000; ++i) yes += l.admit(t0 + milliseconds(5 * i));
    EXPECT_EQ(yes + l.total_suppressed(), 2000u);
    EXPECT_LE(yes, 50u + 20 * 10);
    EXPECT_GE(yes, 50u + 20 * 10 - 1);
}

TEST(DenialLimiter, AClockThatStandsStillOrGoesBackRefillsNothing) {
    Clock::time_point t0 = Clock::time_point{} + std::chrono::seconds(10);
    DenialLimiter l(1, 1, t0);
    ASSERT_TRUE(l.admit(t0));
    EXPECT_FALSE(l.admit(t0 - std::chrono::seconds(5)));
    EXPECT_FALSE(l.admit(t0));
    EXPECT_TRUE(l.admit(t0 + std::chrono::seconds(1)));
}

TEST(DenialLimiter, ARateOfZeroIsTakenAsOne) {
    Clock::time_point t0{};
    DenialLimiter l(1, 0, t0);
    ASSERT_TRUE(l.admit(t0));
    EXPECT_FALSE(l.admit(t0 + milliseconds(999)));
    EXPECT_TRUE(l.admit(t0 + milliseconds(1000)));
}

}  // namespace
}  // namespace cordon::audit
