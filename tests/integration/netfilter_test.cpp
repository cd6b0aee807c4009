// SPDX-License-Identifier: Apache-2.0
// The network layer on the real kernel: programs attached to a cgroup root
// of the test's own, sessions as map entries, probes as forked processes
// in session cgroups, each denial checked field by field in the session's
// ring buffer.
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bpf/netfilter/netfilter.h"
#include "cgroup/cgroup.h"
#include "netfilter/netfilter.h"
#include "netfilter_probe.h"

namespace cordon::netfilter {
namespace {

using cordon::testing::ip;
using cordon::testing::kProbeComm;
using cordon::testing::Listener;
using cordon::testing::run_probe;
using namespace cordon::testing;

Rule rule(const std::string& addr, uint8_t prefix_len, uint16_t first, uint16_t last,
          uint8_t protocols = CORDON_PROTO_TCP) {
    Rule r;
    r.address = ip(addr);
    r.prefix_len = prefix_len;
    r.ports = {first, last};
    r.protocols = protocols;
    return r;
}

// Where bpffs belongs. A host without it gets it mounted, as systemd does at boot.
bool ensure_bpffs() {
    struct statfs fs;
    if (statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC) return true;
    return mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") == 0;
}

class NetfilterTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs and make cgroups";
        ASSERT_TRUE(ensure_bpffs()) << "cannot mount bpffs at /sys/fs/bpf";
        auto mount = cgroup::find_cgroup2_mount();
        ASSERT_TRUE(mount) << mount.error().message();
        std::string name = "cordon-test-nf-" + std::to_string(getpid());
        root_ = mount.value() + "/" + name;
        pin_dir_ = "/sys/fs/bpf/" + name;
        ASSERT_TRUE(cgroup::ensure_dir(root_));
        auto nf = Netfilter::open_or_attach(root_, pin_dir_);
        ASSERT_TRUE(nf) << nf.error().message();
        nf_ = std::move(nf.value());
    }

    void TearDown() override {
        for (auto& cg : cgroups_) {
            if (nf_) {
                EXPECT_TRUE(nf_->remove_session(cg.id()));
            }
            EXPECT_TRUE(cg.destroy());
        }
        nf_.reset();
        if (!pin_dir_.empty()) {
            auto st = Netfilter::detach(pin_dir_);
            EXPECT_TRUE(st) << st.error().message();
            struct stat s;
            EXPECT_NE(stat(pin_dir_.c_str(), &s), 0) << pin_dir_ << " left behind";
        }
        if (!root_.empty()) rmdir(root_.c_str());
    }

    // A cgroup under the test root; with rules, a session too.
    const cgroup::SessionCgroup& make_cgroup(const std::string& name) {
        auto cg = cgroup::SessionCgroup::create(root_, name);
        EXPECT_TRUE(cg) << cg.error().message();
        cgroups_.push_back(std::move(cg.value()));
        return cgroups_.back();
    }

    const cgroup::SessionCgroup& make_session(const std::string& name,
                                              const std::vector<Rule>& rules) {
        const auto& cg = make_cgroup(name);
        auto st = nf_->add_session(cg.id(), rules);
        EXPECT_TRUE(st) << st.error().message();
        return cg;
    }

    std::vector<Denial> drain(uint64_t cgroup_id) {
        std::vector<Denial> out;
        auto stream = nf_->watch(cgroup_id);
        EXPECT_TRUE(stream) << stream.error().message();
        if (!stream) return out;
        auto n = stream.value()->drain([&](const Denial& d) { out.push_back(d); });
        EXPECT_TRUE(n) << n.error().message();
        return out;
    }

    // The probe was denied with EPERM, and exactly one event says so.
    void expect_denied(const cgroup::SessionCgroup& cg, const ProbeResult& r,
                       const std::string& hook, const std::string& addr, uint16_t port,
                       const std::string& protocol, const std::string& reason = "no-rule") {
        EXPECT_EQ(r.status, EPERM) << "pid " << r.pid;
        auto events = drain(cg.id());
        ASSERT_EQ(events.size(), 1u) << "denials reported for " << hook << " " << addr;
        const Denial& d = events[0];
        EXPECT_EQ(d.cgroup_id, cg.id());
        EXPECT_EQ(d.pid, static_cast<uint32_t>(r.pid));
        EXPECT_EQ(d.comm, kProbeComm);
        EXPECT_EQ(d.hook, hook);
        EXPECT_EQ(d.reason, reason);
        EXPECT_EQ(d.protocol, protocol);
        EXPECT_EQ(d.address, ip(addr)) << "expected " << addr;
        EXPECT_EQ(d.port, port);
    }

    void expect_allowed(const cgroup::SessionCgroup& cg, const ProbeResult& r, int status = 0) {
        EXPECT_EQ(r.status, status) << "pid " << r.pid;
        EXPECT_TRUE(drain(cg.id()).empty());
    }

    std::string root_;
    std::string pin_dir_;
    std::unique_ptr<Netfilter> nf_;
    std::deque<cgroup::SessionCgroup> cgroups_;  // deque: references stay valid
};

TEST_F(NetfilterTest, AllowedTcpConnectSucceeds) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    auto r =
        run_probe(s.path(), {{"127.0.0.1", 8080}}, [] { return tcp_connect("127.0.0.1", 8080); });
    expect_allowed(s, r);
}

TEST_F(NetfilterTest, DeniedIpv4AndIpv6ConnectsFailWithEperm) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    std::vector<Listener> all = {{"127.0.0.2", 8080}, {"::1", 8080}};

    auto r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.2", 8080); });
    expect_denied(s, r, "connect4", "127.0.0.2", 8080, "tcp");

    r = run_probe(s.path(), all, [] { return tcp_connect("::1", 8080); });
    expect_denied(s, r, "connect6", "::1", 8080, "tcp");

    // Outside loopback: the probe's own netns has nowhere to send it anyway.
    r = run_probe(s.path(), {}, [] { return tcp_connect("10.1.2.3", 443); });
    expect_denied(s, r, "connect4", "10.1.2.3", 443, "tcp");
    r = run_probe(s.path(), {}, [] { return tcp_connect("2001:db8::1", 443); });
    expect_denied(s, r, "connect6", "2001:db8::1", 443, "tcp");
}

TEST_F(NetfilterTest, V4MappedIpv6ObeysIpv4Rules) {
    const auto& s = make_session(
        "s", {rule("127.0.0.1", 128, 8080, 8080, CORDON_PROTO_TCP | CORDON_PROTO_UDP)});
    std::vector<Listener> all = {{"127.0.0.1", 8080}, {"127.0.0.2", 8080}};

    auto r = run_probe(s.path(), all, [] { return tcp_connect("::ffff:127.0.0.1", 8080); });
    expect_allowed(s, r);

    r = run_probe(s.path(), all, [] { return tcp_connect("::ffff:127.0.0.2", 8080); });
    expect_denied(s, r, "connect6", "127.0.0.2", 8080, "tcp");

    // udpv6_sendmsg hands v4-mapped destinations to udp_sendmsg, whose hook is sendmsg4.
    r = run_probe(s.path(), {}, [] { return udp_sendto("::ffff:127.0.0.1", 8080); });
    expect_allowed(s, r);
    r = run_probe(s.path(), {}, [] { return udp_sendto("::ffff:127.0.0.2", 8080); });
    expect_denied(s, r, "sendmsg4", "127.0.0.2", 8080, "udp");
}

TEST_F(NetfilterTest, UdpSendtoAndConnect) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 5353, 5353, CORDON_PROTO_UDP),
                                       rule("::1", 128, 5353, 5353, CORDON_PROTO_UDP)});

    auto r = run_probe(s.path(), {}, [] { return udp_sendto("127.0.0.1", 5353); });
    expect_allowed(s, r);
    r = run_probe(s.path(), {}, [] { return udp_sendto("::1", 5353); });
    expect_allowed(s, r);
    r = run_probe(s.path(), {}, [] { return udp_connect("127.0.0.1", 5353); });
    expect_allowed(s, r);

    r = run_probe(s.path(), {}, [] { return udp_sendto("127.0.0.1", 5354); });
    expect_denied(s, r, "sendmsg4", "127.0.0.1", 5354, "udp");
    r = run_probe(s.path(), {}, [] { return udp_sendto("::1", 53); });
    expect_denied(s, r, "sendmsg6", "::1", 53, "udp");
    r = run_probe(s.path(), {}, [] { return udp_sendto("8.8.8.8", 53); });
    expect_denied(s, r, "sendmsg4", "8.8.8.8", 53, "udp");
    r = run_probe(s.path(), {}, [] { return udp_connect("127.0.0.2", 5353); });
    expect_denied(s, r, "connect4", "127.0.0.2", 5353, "udp");
}

TEST_F(NetfilterTest, ProtocolMustMatch) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080, CORDON_PROTO_TCP)});
    auto r = run_probe(s.path(), {}, [] { return udp_sendto("127.0.0.1", 8080); });
    expect_denied(s, r, "sendmsg4", "127.0.0.1", 8080, "udp");
}

TEST_F(NetfilterTest, RawSocketsAreRefused) {
    const auto& s =
        make_session("s", {rule("127.0.0.1", 128, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP)});

    auto r = run_probe(s.path(), {}, [] { return open_socket(AF_INET, SOCK_RAW, IPPROTO_ICMP); });
    expect_denied(s, r, "sock_create", "::", 0, "", "raw-socket");
    r = run_probe(s.path(), {}, [] { return open_socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6); });
    expect_denied(s, r, "sock_create", "::", 0, "", "raw-socket");
    r = run_probe(s.path(), {}, [] { return open_socket(AF_INET, SOCK_RAW, IPPROTO_RAW); });
    expect_denied(s, r, "sock_create", "::", 0, "", "raw-socket");

    r = run_probe(s.path(), {}, [] { return open_socket(AF_INET, SOCK_STREAM, 0); });
    expect_allowed(s, r);
}

TEST_F(NetfilterTest, PortOutsideRangeIsDenied) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8000, 8010)});
    std::vector<Listener> all = {{"127.0.0.1", 7999},
                                 {"127.0.0.1", 8000},
                                 {"127.0.0.1", 8005},
                                 {"127.0.0.1", 8010},
                                 {"127.0.0.1", 8011}};
    for (uint16_t port : {8000, 8005, 8010}) {
        auto r = run_probe(s.path(), all, [port] { return tcp_connect("127.0.0.1", port); });
        expect_allowed(s, r);
    }
    for (uint16_t port : {7999, 8011}) {
        auto r = run_probe(s.path(), all, [port] { return tcp_connect("127.0.0.1", port); });
        expect_denied(s, r, "connect4", "127.0.0.1", port, "tcp");
    }
}

TEST_F(NetfilterTest, OverlappingPrefixesKeepBothPorts) {
    // 127.0.0.0/8 on 7000 and 127.0.0.5/32 on 8000: the /32 is the longest
    // match for .5 and must still allow the /8's port.
    const auto& s = make_session(
        "s", {rule("127.0.0.0", 96 + 8, 7000, 7000), rule("127.0.0.5", 128, 8000, 8000)});
    EXPECT_EQ(nf_->rule_count(s.id()), 2u);
    std::vector<Listener> all = {
        {"127.0.0.5", 7000}, {"127.0.0.5", 8000}, {"127.0.0.6", 7000}, {"127.0.0.6", 8000}};

    auto r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.5", 7000); });
    expect_allowed(s, r);
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.5", 8000); });
    expect_allowed(s, r);
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.6", 7000); });
    expect_allowed(s, r);
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.6", 8000); });
    expect_denied(s, r, "connect4", "127.0.0.6", 8000, "tcp");
}

TEST_F(NetfilterTest, TooManyPortRangesIsAnErrorNotAnAllow) {
    const auto& cg = make_cgroup("s");
    std::vector<Rule> rules = {rule("127.0.0.0", 96 + 8, 1000, 1000)};
    for (uint16_t i = 1; i <= CORDON_MAX_PORT_RANGES; i++)
        rules.push_back(rule("127.0.0.1", 128, 1000 + 2 * i, 1000 + 2 * i));
    auto st = nf_->add_session(cg.id(), rules);
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message().find("too many port ranges for 127.0.0.1/32"), std::string::npos)
        << st.error().message();
    EXPECT_EQ(nf_->rule_count(cg.id()), 0u);
    auto ids = nf_->session_ids();
    EXPECT_EQ(std::count(ids.begin(), ids.end(), cg.id()), 0);

    // Adjacent ranges merge instead of taking slots of their own.
    rules.resize(1);
    for (uint16_t i = 1; i <= 2 * CORDON_MAX_PORT_RANGES; i++)
        rules.push_back(rule("127.0.0.1", 128, 1000 + i, 1000 + i));
    st = nf_->add_session(cg.id(), rules);
    EXPECT_TRUE(st) << st.error().message();
}

TEST_F(NetfilterTest, CgroupWithoutSessionIsDeniedEverything) {
    const auto& none = make_cgroup("no-session");
    std::vector<Listener> all = {{"127.0.0.1", 8080}};

    EXPECT_EQ(run_probe(none.path(), all, [] { return tcp_connect("127.0.0.1", 8080); }).status,
              EPERM);
    EXPECT_EQ(
        run_probe(none.path(), {}, [] { return open_socket(AF_INET6, SOCK_DGRAM, 0); }).status,
        EPERM);

    // connect and sendmsg are reached with sockets made in a session that
    // allows everything, then carried into the cgroup without one. (The
    // programs run for the cgroup the socket was created in, which must be
    // in the subtree; the decision is for the cgroup of the caller.)
    const auto& open =
        make_session("open", {rule("::", 0, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP)});
    std::string none_dir = none.path();
    auto carry = [none_dir](int family, int type, const std::string& host, uint16_t port) {
        int fd = socket(family, type, 0);
        if (fd < 0 || !detail::join_cgroup(none_dir)) return kProbeSetupFailed;
        SockAddr a = sockaddr_of(host, port);
        if (type == SOCK_DGRAM) return errno_or_zero(sendto(fd, "x", 1, 0, a.get(), a.len));
        return errno_or_zero(connect(fd, a.get(), a.len));
    };
    auto r =
        run_probe(open.path(), all, [&] { return carry(AF_INET, SOCK_STREAM, "127.0.0.1", 8080); });
    EXPECT_EQ(r.status, EPERM);
    r = run_probe(open.path(), all, [&] { return carry(AF_INET6, SOCK_STREAM, "::1", 8080); });
    EXPECT_EQ(r.status, EPERM);
    r = run_probe(open.path(), all, [&] { return carry(AF_INET, SOCK_DGRAM, "127.0.0.1", 53); });
    EXPECT_EQ(r.status, EPERM);
    r = run_probe(open.path(), all, [&] { return carry(AF_INET6, SOCK_DGRAM, "::1", 53); });
    EXPECT_EQ(r.status, EPERM);
    EXPECT_TRUE(drain(open.id()).empty()) << "the cgroup without a session has no ring buffer";

    // The session those sockets came from still connects.
    r = run_probe(open.path(), all, [] { return tcp_connect("127.0.0.1", 8080); });
    EXPECT_EQ(r.status, 0);

    // Deeper in the subtree too.
    std::string nested = none.path() + "/deeper";
    ASSERT_EQ(mkdir(nested.c_str(), 0755), 0);
    EXPECT_EQ(run_probe(nested, all, [] { return tcp_connect("127.0.0.1", 8080); }).status, EPERM);
    EXPECT_EQ(rmdir(nested.c_str()), 0);
}

TEST_F(NetfilterTest, EventsGoToTheirOwnSession) {
    const auto& a = make_session("a", {rule("127.0.0.1", 128, 80, 80)});
    const auto& b = make_session("b", {rule("127.0.0.1", 128, 80, 80)});
    auto r = run_probe(a.path(), {}, [] { return tcp_connect("127.0.0.1", 81); });
    EXPECT_TRUE(drain(b.id()).empty());
    expect_denied(a, r, "connect4", "127.0.0.1", 81, "tcp");
}

TEST_F(NetfilterTest, AFullRingBufferCountsWhatItLoses) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 80, 80)});
    // More denials than the ring buffer holds (64-byte records with headers).
    constexpr int kAttempts = CORDON_EVENTS_RINGBUF_SIZE / 64 + 100;
    auto r = run_probe(s.path(), {}, [] {
        SockAddr a = sockaddr_of("127.0.0.1", 81);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        for (int i = 0; i < kAttempts; i++)
            if (connect(fd, a.get(), a.len) == 0 || errno != EPERM) return kProbeSetupFailed;
        return 0;
    });
    ASSERT_EQ(r.status, 0);
    auto stream = nf_->watch(s.id());
    ASSERT_TRUE(stream) << stream.error().message();
    int seen = 0;
    auto n = stream.value()->drain([&](const Denial&) { seen++; });
    ASSERT_TRUE(n);
    EXPECT_EQ(n.value(), seen);
    EXPECT_GT(stream.value()->lost(), 0u);
    EXPECT_EQ(seen + stream.value()->lost(), static_cast<uint64_t>(kAttempts));
}

TEST_F(NetfilterTest, TcpFastOpenIsFilteredLikeConnect) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    auto r = run_probe(s.path(), {}, [] { return tcp_fastopen("127.0.0.2", 8080); });
    expect_denied(s, r, "connect4", "127.0.0.2", 8080, "tcp");
}

TEST_F(NetfilterTest, RemoveSessionLeavesNoEntries) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 80, 80), rule("::1", 128, 80, 80),
                                       rule("10.0.0.0", 96 + 8, 443, 443)});
    EXPECT_EQ(nf_->rule_count(s.id()), 3u);
    auto ids = nf_->session_ids();
    EXPECT_EQ(std::count(ids.begin(), ids.end(), s.id()), 1);

    ASSERT_TRUE(nf_->remove_session(s.id()));
    EXPECT_EQ(nf_->rule_count(s.id()), 0u);
    ids = nf_->session_ids();
    EXPECT_EQ(std::count(ids.begin(), ids.end(), s.id()), 0);
    EXPECT_FALSE(nf_->watch(s.id()));
    EXPECT_TRUE(nf_->remove_session(s.id())) << "removing twice is not an error";

    // Without its entry the cgroup is a cgroup without a session.
    auto r = run_probe(s.path(), {{"127.0.0.1", 80}}, [] { return tcp_connect("127.0.0.1", 80); });
    EXPECT_EQ(r.status, EPERM);
}

TEST_F(NetfilterTest, SecondOpenUsesThePinsAndDetachLetsGo) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 80, 80)});
    auto again = Netfilter::open_or_attach(root_, pin_dir_);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(again.value()->rule_count(s.id()), 1u);

    // Programs attached twice would report twice.
    auto r = run_probe(s.path(), {}, [] { return tcp_connect("127.0.0.1", 81); });
    expect_denied(s, r, "connect4", "127.0.0.1", 81, "tcp");

    again.value().reset();
    nf_.reset();
    ASSERT_TRUE(Netfilter::detach(pin_dir_));
    r = run_probe(s.path(), {}, [] { return tcp_connect("127.0.0.1", 81); });
    EXPECT_EQ(r.status, ECONNREFUSED) << "still filtered after detach";

    // TearDown detaches once more: that must be harmless.
    auto reopened = Netfilter::open_or_attach(root_, pin_dir_);
    ASSERT_TRUE(reopened) << reopened.error().message();
    nf_ = std::move(reopened.value());
    ASSERT_TRUE(nf_->add_session(s.id(), {rule("127.0.0.1", 128, 80, 80)}));
}

TEST_F(NetfilterTest, ErrorsNameTheStepAndAHint) {
    auto bad = Netfilter::open_or_attach(root_, "/tmp/not-bpffs/cordon");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("mount -t bpf"), std::string::npos)
        << bad.error().message();

    std::string other_pins = pin_dir_ + "-x";
    auto no_cgroup = Netfilter::open_or_attach("/nonexistent/cgroup", other_pins);
    ASSERT_FALSE(no_cgroup);
    EXPECT_NE(no_cgroup.error().message().find("cannot open cgroup /nonexistent/cgroup"),
              std::string::npos)
        << no_cgroup.error().message();
    EXPECT_TRUE(Netfilter::detach(other_pins));
}

}  // namespace
}  // namespace cordon::netfilter
