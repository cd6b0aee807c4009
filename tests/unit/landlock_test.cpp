// SPDX-License-Identifier: Apache-2.0
// The filesystem section: how the profile reads it, and what a kernel's
// Landlock ABI makes of it (the kernel itself is tested in
// tests/integration/agent_run_landlock_test.cpp).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cerrno>

#include "landlock/landlock.h"
#include "profile/profile.h"
#include "profile_doc.h"

namespace cordon::landlock {
namespace {

using nlohmann::json;

const profile::TimePoint kNow = test_support::kProfileNow;

json profile_with_filesystem(json section) {
    return test_support::minimal_profile("filesystem", std::move(section));
}

// Parses a profile with this filesystem section and returns "PATH: REASON".
std::string error_of(json filesystem) {
    try {
        profile::parse_profile(profile_with_filesystem(std::move(filesystem)), kNow);
    } catch (const profile::ProfileError& e) {
        return e.what();
    }
    return "no error";
}

TEST(ProfileFilesystem, ReadsTheThreeLists) {
    auto p = profile::parse_profile(profile_with_filesystem({{"read", {"/srv/data"}},
                                                             {"write", {"/srv/ws", "/var/tmp"}},
                                                             {"execute", json::array()}}),
                                    kNow);
    ASSERT_TRUE(p.filesystem.has_value());
    EXPECT_EQ(p.filesystem->read, std::vector<std::string>{"/srv/data"});
    EXPECT_EQ(p.filesystem->write, (std::vector<std::string>{"/srv/ws", "/var/tmp"}));
    EXPECT_TRUE(p.filesystem->execute.empty());
}

TEST(ProfileFilesystem, AbsentSectionMeansNoLandlock) {
    auto doc = profile_with_filesystem(json::object());
    doc.erase("filesystem");
    EXPECT_FALSE(profile::parse_profile(doc, kNow).filesystem.has_value());
    // An empty section is Landlock with the defaults only.
    EXPECT_TRUE(profile::parse_profile(profile_with_filesystem(json::object()), kNow)
                    .filesystem.has_value());
}

TEST(ProfileFilesystem, RefusesRelativeEmptyAndRepeatedPaths) {
    EXPECT_EQ(error_of({{"read", {"data"}}}),
              "filesystem.read[0]: \"data\" is not an absolute path (write it from /, such as "
              "\"/srv/workspace\")");
    EXPECT_EQ(error_of({{"write", {""}}}),
              "filesystem.write[0]: \"\" is not an absolute path (write it from /, such as "
              "\"/srv/workspace\")");
    EXPECT_EQ(error_of({{"execute", {"/usr/bin/git", "/usr/bin/git"}}}),
              "filesystem.execute[1]: \"/usr/bin/git\" is listed twice (list it once)");
}

TEST(ProfileFilesystem, RefusesUnknownKeysAndWrongTypes) {
    EXPECT_EQ(error_of({{"exec", {"/bin"}}}),
              "filesystem.exec: unknown key (expected one of: read, write, execute)");
    EXPECT_EQ(error_of({{"read", "/srv"}}),
              "filesystem.read: expected an array of absolute paths, got string");
    EXPECT_EQ(error_of({{"read", {7}}}),
              "filesystem.read[0]: expected an absolute path such as \"/usr/bin\", got number");
    EXPECT_EQ(error_of(json::array()),
              "filesystem: expected an object with keys read, write, execute, got array");
}

// The example is documentation: the real parser reads it too.
TEST(ProfileFilesystem, CodingAgentExampleParses) {
    auto p = profile::load_profile(
        std::string(CORDON_SOURCE_DIR) + "/profiles/examples/coding-agent.json", kNow);
    ASSERT_TRUE(p.filesystem.has_value());
    EXPECT_EQ(p.filesystem->write, std::vector<std::string>{"/srv/agent-workspace"});
    EXPECT_EQ(p.filesystem->execute.front(), "/usr/bin/git");
}

TEST(LandlockSupport, MissingLandlockRefusesTheLaunchAndSaysWhy) {
    auto disabled = support_for(-EOPNOTSUPP);
    ASSERT_FALSE(disabled);
    EXPECT_EQ(disabled.error().message(),
              "Landlock: the profile's filesystem section needs Landlock, and this kernel has "
              "Landlock built in but not enabled at boot; nothing was started (boot Linux 5.13 "
              "or later with landlock in its lsm= list (see /sys/kernel/security/lsm), or remove "
              "filesystem from the profile)");
    auto absent = support_for(-ENOSYS);
    ASSERT_FALSE(absent);
    EXPECT_NE(absent.error().message().find("this kernel was built without Landlock"),
              std::string::npos)
        << absent.error().message();
    EXPECT_FALSE(support_for(0));
}

TEST(LandlockSupport, RightsGrowWithTheAbi) {
    auto abi1 = support_for(1);
    ASSERT_TRUE(abi1);
    EXPECT_EQ(right_names(abi1->fs_rights).size(), 13u);
    EXPECT_EQ(right_names(abi1->fs_rights).back(), "make_sym");
    EXPECT_EQ(abi1->scopes, 0u);

    auto abi3 = support_for(3);
    ASSERT_TRUE(abi3);
    auto names3 = right_names(abi3->fs_rights);
    EXPECT_EQ(names3.size(), 15u);
    EXPECT_EQ(names3.back(), "truncate");

    auto abi5 = support_for(5);
    ASSERT_TRUE(abi5);
    EXPECT_EQ(right_names(abi5->fs_rights).back(), "ioctl_dev");
    EXPECT_TRUE(scope_names(abi5->scopes).empty());

    auto abi7 = support_for(7);
    ASSERT_TRUE(abi7);
    EXPECT_EQ(right_names(abi7->fs_rights).size(), 16u);
    EXPECT_EQ(scope_names(abi7->scopes),
              (std::vector<std::string>{"abstract_unix_socket", "signal"}));
}

}  // namespace
}  // namespace cordon::landlock
