// SPDX-License-Identifier: Apache-2.0
// Pinned BPF programs serve the cgroup they were attached to: opening them
// for another root fails instead of leaving that root unfiltered.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "cgroup/cgroup.h"
#include "netfilter/netfilter.h"

namespace cordon::netfilter {
namespace {

TEST(NetfilterPins, PinsAttachedToAnotherRootAreRefused) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: attaches BPF programs";
    auto mount = cgroup::find_cgroup2_mount();
    if (!mount) GTEST_SKIP() << "no cgroup2 mount on this host";
    std::string tag = "cordon-test-pins-" + std::to_string(::getpid());
    std::string a = *mount + "/" + tag + "-a", b = *mount + "/" + tag + "-b";
    std::string pins = "/sys/fs/bpf/" + tag;
    ASSERT_TRUE(cgroup::ensure_dir(a));
    ASSERT_TRUE(cgroup::ensure_dir(b));

    auto first = Netfilter::open_or_attach(a, pins);
    ASSERT_TRUE(first) << first.error().message();
    auto again = Netfilter::open_or_attach(a, pins);
    EXPECT_TRUE(again) << again.error().message();
    auto other = Netfilter::open_or_attach(b, pins);

    ASSERT_FALSE(other);
    EXPECT_NE(other.error().message().find("are attached to cgroup id"), std::string::npos)
        << other.error().message();
    EXPECT_NE(other.error().message().find("its sessions would not be filtered"),
              std::string::npos);
    first = Error{};
    again = Error{};
    EXPECT_TRUE(Netfilter::detach(pins));
    ::rmdir(a.c_str());
    ::rmdir(b.c_str());
}

}  // namespace
}  // namespace cordon::netfilter
