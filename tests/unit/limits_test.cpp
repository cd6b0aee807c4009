// SPDX-License-Identifier: Apache-2.0
// The profile's limits: parsing, with the exact error a user reads, and how
// each limit is routed (cgroup controller or rlimit fallback).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "launch/limits.h"
#include "profile/profile.h"
#include "profile_doc.h"

namespace cordon {
namespace {

using nlohmann::json;
using profile::parse_profile;
using profile::ProfileError;

const profile::TimePoint kNow = test_support::kProfileNow;

json with_limits(json section) {
    return test_support::minimal_profile("limits", std::move(section));
}

void expect_error(json limits, const std::string& path, const std::string& reason) {
    try {
        parse_profile(with_limits(std::move(limits)), kNow);
        ADD_FAILURE() << "no error, expected " << path << ": " << reason;
    } catch (const ProfileError& e) {
        EXPECT_EQ(e.path(), path);
        EXPECT_EQ(e.reason(), reason);
    }
}

TEST(ProfileLimits, ParsesPidsMemoryAndCpu) {
    auto p = parse_profile(with_limits({{"pids", 256}, {"memory", "2G"}, {"cpu", "150%"}}), kNow);
    EXPECT_EQ(p.limits.pids, 256u);
    EXPECT_EQ(p.limits.memory, 2ull << 30);
    EXPECT_EQ(p.limits.cpu_percent, 150u);
    EXPECT_EQ(parse_profile(with_limits({{"memory", 1048576}}), kNow).limits.memory, 1048576u);
    auto none = parse_profile(with_limits(json::object()), kNow);
    EXPECT_FALSE(none.limits.any());
}

TEST(ProfileLimits, BadValuesNameThePathAndTheForm) {
    const std::string pids_range =
        " (expected a number of tasks from 2 to 4194304, the session's init and the agent "
        "included)";
    expect_error({{"pids", 1}}, "limits.pids", "is 1" + pids_range);
    expect_error({{"pids", -3}}, "limits.pids", "is -3" + pids_range);
    expect_error({{"pids", 5000000}}, "limits.pids", "is 5000000" + pids_range);
    expect_error({{"pids", "256"}}, "limits.pids",
                 "expected a number of tasks such as 256, got string");
    expect_error({{"memory", "0M"}}, "limits.memory",
                 "is zero (expected a positive size; leave memory out for no limit)");
    expect_error(
        {{"memory", "2GB"}}, "limits.memory",
        "\"2GB\" is not a size: only one unit letter may follow the number (expected "
        "bytes or a number and a unit K, M, G or T, powers of 1024: 65536, 512K, 10M, 1G)");
    const std::string cpu_form =
        " (expected a share of one CPU in percent, such as \"50%\" (half a CPU) or \"200%\" "
        "(two), from 1% to 102400%)";
    expect_error({{"cpu", "0.5"}}, "limits.cpu", "\"0.5\" is not a CPU share" + cpu_form);
    expect_error({{"cpu", "0%"}}, "limits.cpu", "\"0%\" is not a CPU share" + cpu_form);
    expect_error({{"cpu", "%"}}, "limits.cpu", "\"%\" is not a CPU share" + cpu_form);
    expect_error({{"cpu", "200000%"}}, "limits.cpu", "\"200000%\" is not a CPU share" + cpu_form);
    expect_error({{"cpu", 50}}, "limits.cpu",
                 "expected a share of one CPU in percent, such as \"50%\" (half a CPU) or "
                 "\"200%\" (two), got number");
    expect_error({{"files", 10}}, "limits.files",
                 "unknown key (expected one of: pids, memory, cpu)");
}

profile::Limits all_three() {
    profile::Limits l;
    l.pids = 64;
    l.memory = 512ull << 20;
    l.cpu_percent = 50;
    return l;
}

TEST(LimitsPlan, ControllersWhereAvailable) {
    auto plan = launch::plan_limits(all_three(), {"cpuset", "cpu", "memory", "pids"},
                                    std::chrono::seconds(600));
    EXPECT_EQ(plan.controllers, (std::vector<std::string>{"pids", "memory", "cpu"}));
    using Files = std::vector<std::pair<std::string, std::string>>;
    EXPECT_EQ(plan.cgroup_files, (Files{{"pids.max", "64"},
                                        {"memory.max", "536870912"},
                                        {"memory.swap.max", "0"},
                                        {"cpu.max", "50000 100000"}}));
    EXPECT_TRUE(plan.rlimits.empty());
    EXPECT_TRUE(plan.warnings.empty());
    EXPECT_EQ(plan.fields["pids"]["enforcedBy"], "cgroup pids controller");
    EXPECT_EQ(plan.fields["cpu"]["percentOfOneCpu"], 50);
}

TEST(LimitsPlan, RlimitsWithAWarningEachWhereNot) {
    // A hybrid host: the cgroup2 root has only hugetlb.
    auto plan = launch::plan_limits(all_three(), {"hugetlb"}, std::chrono::seconds(601));
    EXPECT_TRUE(plan.cgroup_files.empty());
    ASSERT_EQ(plan.rlimits.size(), 3u);
    EXPECT_EQ(plan.rlimits[0].resource, RLIMIT_NPROC);
    EXPECT_EQ(plan.rlimits[0].value, 64u);
    EXPECT_EQ(plan.rlimits[1].resource, RLIMIT_AS);
    EXPECT_EQ(plan.rlimits[1].value, 512u << 20);
    EXPECT_EQ(plan.rlimits[2].resource, RLIMIT_CPU);
    EXPECT_EQ(plan.rlimits[2].value, 301u) << "half of 601 s, rounded up";
    ASSERT_EQ(plan.warnings.size(), 3u);
    EXPECT_NE(plan.warnings[0].find("limits.pids: the cgroup pids controller is not available"),
              std::string::npos);
    EXPECT_NE(plan.warnings[0].find("counts every process of the agent's account on the whole "
                                    "host"),
              std::string::npos);
    EXPECT_NE(plan.warnings[1].find("caps each process's address space"), std::string::npos);
    EXPECT_NE(plan.warnings[2].find("it caps no rate"), std::string::npos);
    EXPECT_EQ(plan.fields["memory"]["enforcedBy"], "RLIMIT_AS");
    EXPECT_EQ(plan.fields["cpu"]["rlimit"], 301);
}

TEST(LimitsPlan, NoLimitsNoPlan) {
    auto plan = launch::plan_limits({}, {"pids"}, std::chrono::seconds(60));
    EXPECT_TRUE(plan.cgroup_files.empty());
    EXPECT_TRUE(plan.rlimits.empty());
    EXPECT_EQ(plan.fields, json::object());
}

}  // namespace
}  // namespace cordon
