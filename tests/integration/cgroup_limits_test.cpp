// SPDX-License-Identifier: Apache-2.0
// apply_cgroup_limits on the real cgroup2 hierarchy: a controller enabled
// from the mount down to a session cgroup and its file set, and every
// failure an error. This host kind offers only hugetlb to cgroup v2, so
// the test drives the same path with it.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "cgroup/cgroup.h"
#include "launch/limits.h"

namespace cordon::launch {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

bool listed(const std::string& list, const std::string& name) {
    std::istringstream names(list);
    for (std::string n; names >> n;)
        if (n == name) return true;
    return false;
}

class CgroupLimitsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root: writes cgroup control files";
        auto mount = cgroup::find_cgroup2_mount();
        if (!mount) GTEST_SKIP() << "no cgroup2 mount on this host";
        mount_ = *mount;
        if (!listed(read_text(mount_ + "/cgroup.controllers"), "hugetlb") ||
            !fs::exists("/sys/kernel/mm/hugepages/hugepages-2048kB"))
            GTEST_SKIP() << "no cgroup v2 hugetlb controller with 2 MiB pages to drive the path";
        enabled_before_ = listed(read_text(mount_ + "/cgroup.subtree_control"), "hugetlb");
        root_ = mount_ + "/cordon-test-limits-" + std::to_string(::getpid());
        session_ = root_ + "/session";
        fs::create_directories(session_);
    }

    void TearDown() override {
        if (root_.empty()) return;
        ::rmdir(session_.c_str());
        ::rmdir(root_.c_str());
        // Leave the hierarchy's root as it was.
        if (!enabled_before_) std::ofstream(mount_ + "/cgroup.subtree_control") << "-hugetlb";
    }

    // One controller enabled and one of its files set, as a session's limit is.
    Status apply_one(const std::string& controller, const std::string& file,
                     const std::string& value) {
        LimitsPlan plan;
        plan.controllers = {controller};
        plan.cgroup_files = {{file, value}};
        return apply_cgroup_limits(plan, mount_, root_, session_);
    }

    std::string mount_, root_, session_;
    bool enabled_before_ = false;
};

TEST_F(CgroupLimitsTest, EnablesTheControllerDownToTheSessionAndSetsItsFile) {
    auto st = apply_one("hugetlb", "hugetlb.2MB.max", "4194304");

    ASSERT_TRUE(st.ok()) << st.error().message();
    EXPECT_TRUE(listed(read_text(root_ + "/cgroup.subtree_control"), "hugetlb"));
    EXPECT_EQ(read_text(session_ + "/hugetlb.2MB.max"), "4194304\n");
}

TEST_F(CgroupLimitsTest, AValueTheKernelRefusesIsAnError) {
    auto st = apply_one("hugetlb", "hugetlb.2MB.max", "lots");

    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().message(), "cannot write \"lots\" to " + session_ +
                                        "/hugetlb.2MB.max: Invalid argument (the session's "
                                        "limit cannot be set; nothing was started)");
}

TEST_F(CgroupLimitsTest, AControllerThatCannotBeEnabledIsAnError) {
    auto st = apply_one("nosuch", "nosuch.max", "1");

    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().message(),
              "cannot write \"+nosuch\" to " + mount_ +
                  "/cgroup.subtree_control: Invalid argument (the controller is listed but "
                  "cannot be enabled; nothing was started)");
}

}  // namespace
}  // namespace cordon::launch
