// SPDX-License-Identifier: Apache-2.0
// The network layer on the real kernel: programs attached to a cgroup root
// of the test's own, sessions as map entries, probes as forked processes
// in session cgroups, each denial checked field by field in the session's
// ring buffer.
#include <linux/magic.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "netfilter_fixture.h"

namespace cordon::netfilter {
namespace {

using namespace cordon::testing;

using NetfilterTest = testing::NetfilterFixture;
using testing::rule;

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
    expect_denied(s, r, "sendmsg6", "::1", 53, "udp", "direct-dns");
    r = run_probe(s.path(), {}, [] { return udp_sendto("8.8.8.8", 53); });
    expect_denied(s, r, "sendmsg4", "8.8.8.8", 53, "udp", "direct-dns");
    r = run_probe(s.path(), {}, [] { return udp_connect("127.0.0.2", 5353); });
    expect_denied(s, r, "connect4", "127.0.0.2", 5353, "udp");
}

TEST_F(NetfilterTest, ProtocolMustMatch) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080, CORDON_PROTO_TCP)});
    auto r = run_probe(s.path(), {}, [] { return udp_sendto("127.0.0.1", 8080); });
    expect_denied(s, r, "sendmsg4", "127.0.0.1", 8080, "udp");
}

// glibc's getaddrinfo sorts addresses by UDP connect()s that send nothing:
// to an address the rules allow over TCP only, such a connect is refused
// quietly; to anything else it is a denial like any other.
TEST_F(NetfilterTest, UdpConnectToATcpOnlyEndpointIsRefusedWithoutAnEvent) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080, CORDON_PROTO_TCP)});
    auto r = run_probe(s.path(), {}, [] { return udp_connect("127.0.0.1", 8080); });
    EXPECT_EQ(r.status, EPERM);
    EXPECT_TRUE(drain(s.id()).empty()) << "a sorting probe was reported";
    r = run_probe(s.path(), {}, [] { return udp_connect("127.0.0.1", 8081); });
    expect_denied(s, r, "connect4", "127.0.0.1", 8081, "udp");
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
    auto st = nf_->add_session(cg.id(), rules, kNoResolver, 0);
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
    st = nf_->add_session(cg.id(), rules, kNoResolver, 0);
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
        make_session("open", {rule("0.0.0.0", 96, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP),
                              rule("::", 0, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP)});
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
    // More denials than the ring buffer holds (each record has a header too).
    constexpr int kAttempts = CORDON_EVENTS_RINGBUF_SIZE / sizeof(net_event) + 100;
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
    ASSERT_TRUE(nf_->add_session(s.id(), {rule("127.0.0.1", 128, 80, 80)}, kNoResolver, 0));
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

// ---------------------------------------------------------------- source routes, extension headers

// The sticky way to source-route a socket: the kernel accepts each option
// outside a session (root has CAP_NET_RAW), the setsockopt hook refuses it
// inside with EPERM and one event.
TEST_F(NetfilterTest, SetsockoptRefusesSourceRoutesAndExtensionHeaders) {
    const auto& s = make_session("s", {rule("::1", 128, 5353, 5353, CORDON_PROTO_UDP),
                                       rule("127.0.0.1", 128, 5353, 5353, CORDON_PROTO_UDP)});
    struct Case {
        const char* what;
        int family;
        int type;
        int level;
        int name;
        std::vector<uint8_t> value;
        const char* protocol;
    };
    const std::vector<Case> cases = {
        {"IPV6_RTHDR, segment routing", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_RTHDR,
         segment_routing_header("fd66::1"), "udp"},
        {"IPV6_RTHDR on TCP", AF_INET6, SOCK_STREAM, IPPROTO_IPV6, IPV6_RTHDR,
         segment_routing_header("fd66::1"), "tcp"},
        {"IPV6_HOPOPTS", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_HOPOPTS, padding_options_header(),
         "udp"},
        {"IPV6_DSTOPTS", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_DSTOPTS, padding_options_header(),
         "udp"},
        {"IPV6_RTHDRDSTOPTS", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_RTHDRDSTOPTS,
         padding_options_header(), "udp"},
        {"IPV6_2292PKTOPTIONS", AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_2292PKTOPTIONS, {}, "udp"},
        {"IP_OPTIONS, loose source route", AF_INET, SOCK_DGRAM, IPPROTO_IP, IP_OPTIONS,
         loose_source_route("10.66.0.1"), "udp"},
        {"IP_OPTIONS on TCP", AF_INET, SOCK_STREAM, IPPROTO_IP, IP_OPTIONS,
         loose_source_route("10.66.0.1"), "tcp"},
        {"IP_OPTIONS on an IPv6 socket", AF_INET6, SOCK_DGRAM, IPPROTO_IP, IP_OPTIONS,
         loose_source_route("10.66.0.1"), "udp"},
    };
    struct Record {
        int outside[16];
        int inside[16];
        int other_option;
    };
    Shared<Record> rec;
    ASSERT_TRUE(rec);
    auto set_each = [&cases](int* results) {
        for (size_t i = 0; i < cases.size(); i++) {
            const auto& c = cases[i];
            int fd = socket(c.family, c.type, 0);
            results[i] = fd < 0 ? errno : set_option(fd, c.level, c.name, c.value);
            close(fd);
        }
    };

    auto r = run_probe(
        s.path(), {},
        [&] {
            set_each(rec->inside);
            int fd = socket(AF_INET6, SOCK_DGRAM, 0);
            int one = 1;
            rec->other_option =
                errno_or_zero(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)));
            return 0;
        },
        [&] { set_each(rec->outside); });
    ASSERT_EQ(r.status, 0);

    auto events = drain(s.id());
    ASSERT_EQ(events.size(), cases.size());
    for (size_t i = 0; i < cases.size(); i++) {
        SCOPED_TRACE(cases[i].what);
        EXPECT_EQ(rec->outside[i], 0)
            << "the kernel itself refused it: " << strerror(rec->outside[i]);
        EXPECT_EQ(rec->inside[i], EPERM);
        const Denial& d = events[i];
        EXPECT_EQ(d.hook, "setsockopt");
        EXPECT_EQ(d.reason, "ip-options");
        EXPECT_EQ(d.protocol, cases[i].protocol);
        EXPECT_EQ(d.pid, static_cast<uint32_t>(r.pid));
        EXPECT_EQ(d.comm, kProbeComm);
        EXPECT_EQ(d.address, ip("::"));
        EXPECT_EQ(d.port, 0);
    }
    EXPECT_EQ(rec->other_option, 0) << "other socket options are not the hook's business";
}

// A segment routing header sends a packet first to its first segment, not
// to the address the sendmsg6 hook checked. Outside a session the kernel
// does exactly that; inside, the header cannot be set by setsockopt (see
// above), and as a control message the kernel takes routing type 2 only
// (Mobile IPv6, ip6_datagram_send_ctl), so it refuses type 4 with EINVAL
// before anything is sent. Were it ever accepted, egress would drop it
// (EPERM). Either way the first segment sees nothing.
TEST_F(NetfilterTest, RoutingHeaderNeverReachesItsFirstSegment) {
    const auto& s = make_session("s", {rule("::1", 128, 5353, 5353, CORDON_PROTO_UDP)});
    struct Record {
        int outside_send = -1;
        int outside_seen = -1;
        int inside_setsockopt = -1;
        int inside_send = -1;
        int inside_seen = -1;
    };
    Shared<Record> rec;
    ASSERT_TRUE(rec);
    Sniffer sniffer;
    SockAddr final_dest = sockaddr_of("::1", 5353);

    auto r = run_probe(
        s.path(), {{"::1", 5353, SOCK_DGRAM}},
        [&] {
            int fd = socket(AF_INET6, SOCK_DGRAM, 0);
            rec->inside_setsockopt =
                set_option(fd, IPPROTO_IPV6, IPV6_RTHDR, segment_routing_header("fd66::1"));
            sendto(fd, "x", 1, 0, final_dest.get(), final_dest.len);  // to ::1 itself, then
            rec->inside_send = sendmsg_with_cmsg(fd, final_dest, IPPROTO_IPV6, IPV6_RTHDR,
                                                 segment_routing_header("fd66::1"));
            rec->inside_seen = sniffer.count_to(ip("fd66::1"));
            return 0;
        },
        [&] {
            if (!add_lo_address("fd66::1", 128) || !sniffer.open()) _exit(kProbeSetupFailed);
            int fd = socket(AF_INET6, SOCK_DGRAM, 0);
            if (set_option(fd, IPPROTO_IPV6, IPV6_RTHDR, segment_routing_header("fd66::1")) != 0)
                _exit(kProbeSetupFailed);
            rec->outside_send =
                errno_or_zero(sendto(fd, "x", 1, 0, final_dest.get(), final_dest.len));
            rec->outside_seen = sniffer.count_to(ip("fd66::1"));
            close(fd);
        });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(rec->outside_send, 0);
    EXPECT_EQ(rec->outside_seen, 1) << "without Cordon the packet goes to the first segment";

    EXPECT_EQ(rec->inside_setsockopt, EPERM);
    EXPECT_TRUE(rec->inside_send == EINVAL || rec->inside_send == EPERM)
        << strerror(rec->inside_send);
    EXPECT_EQ(rec->inside_seen, 0);
    auto events = drain(s.id());
    ASSERT_EQ(events.size(), rec->inside_send == EINVAL ? 1u : 2u);
    EXPECT_EQ(events[0].hook, "setsockopt");
    if (rec->inside_send == EPERM) expect_egress(events[1], s, "fd66::1", 0, "", "ip-options", 1);
}

// Extension headers sent per packet (control messages; hop-by-hop and
// destination options need CAP_NET_RAW, which the test has) pass the
// sendmsg6 hook and are dropped at egress: the UDP send fails with EPERM,
// the drops are counted, and only the 1st, 2nd, 4th, 8th are reported.
TEST_F(NetfilterTest, EgressDropsIpv6ExtensionHeadersAndReportsPowersOfTwo) {
    const auto& s = make_session("s", {rule("::1", 128, 5353, 5353, CORDON_PROTO_UDP)});
    constexpr int kSends = 10;
    struct Record {
        int sends[kSends];
        int plain_send = -1;
        int received = -1;
        int seen = -1;
    };
    Shared<Record> rec;
    ASSERT_TRUE(rec);
    Sniffer sniffer;
    int server = -1;
    SockAddr dest = sockaddr_of("::1", 5353);

    auto r = run_probe(
        s.path(), {},
        [&] {
            int fd = socket(AF_INET6, SOCK_DGRAM, 0);
            for (int i = 0; i < kSends; i++)
                rec->sends[i] =
                    sendmsg_with_cmsg(fd, dest, IPPROTO_IPV6, i % 2 ? IPV6_HOPOPTS : IPV6_DSTOPTS,
                                      padding_options_header());
            rec->plain_send = errno_or_zero(sendto(fd, "y", 1, 0, dest.get(), dest.len));
            rec->seen = sniffer.count_to(ip("::1"));
            rec->received = 0;
            char buf[16];
            while (wait_for(server, POLLIN, 100) && recv(server, buf, sizeof(buf), 0) > 0)
                rec->received++;
            return 0;
        },
        [&] {
            server = socket(AF_INET6, SOCK_DGRAM, 0);
            if (bind(server, dest.get(), dest.len) != 0 || !sniffer.open())
                _exit(kProbeSetupFailed);
        });
    ASSERT_EQ(r.status, 0);
    for (int i = 0; i < kSends; i++) EXPECT_EQ(rec->sends[i], EPERM) << "send " << i;
    EXPECT_EQ(rec->plain_send, 0) << "plain UDP to the same endpoint still goes";
    EXPECT_EQ(rec->seen, 1);
    EXPECT_EQ(rec->received, 1);

    auto events = drain(s.id());
    ASSERT_EQ(events.size(), 4u);
    for (size_t i = 0; i < events.size(); i++)
        expect_egress(events[i], s, "::1", 0, "", "ip-options", uint64_t{1} << i);
    auto c = counters(s);
    EXPECT_EQ(c.egress_dropped, static_cast<uint64_t>(kSends));
    EXPECT_EQ(c.events_lost, 0u);
}

// An IPv4 loose source route as a control message (IP_RETOPTS) sends the
// packet to its first hop; the options make egress drop it.
TEST_F(NetfilterTest, EgressDropsIpv4SourceRoutes) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 5353, 5353, CORDON_PROTO_UDP)});
    struct Record {
        int outside_send = -1;
        int outside_seen = -1;
        int inside_send = -1;
        int inside_seen = -1;
    };
    Shared<Record> rec;
    ASSERT_TRUE(rec);
    Sniffer sniffer;
    SockAddr final_dest = sockaddr_of("127.0.0.1", 5353);
    auto send_routed = [&] {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        int rc = sendmsg_with_cmsg(fd, final_dest, IPPROTO_IP, IP_RETOPTS,
                                   loose_source_route("10.66.0.1"));
        close(fd);
        return rc;
    };

    auto r = run_probe(
        s.path(), {{"127.0.0.1", 5353, SOCK_DGRAM}},
        [&] {
            rec->inside_send = send_routed();
            rec->inside_seen = sniffer.count_to(ip("10.66.0.1"));
            return 0;
        },
        [&] {
            if (!add_lo_address("10.66.0.1", 32) || !sniffer.open()) _exit(kProbeSetupFailed);
            rec->outside_send = send_routed();
            rec->outside_seen = sniffer.count_to(ip("10.66.0.1"));
        });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(rec->outside_send, 0);
    EXPECT_EQ(rec->outside_seen, 1) << "without Cordon the packet goes to the first hop";
    EXPECT_EQ(rec->inside_send, EPERM);
    EXPECT_EQ(rec->inside_seen, 0);
    auto events = drain(s.id());
    ASSERT_EQ(events.size(), 1u);
    expect_egress(events[0], s, "10.66.0.1", 0, "", "ip-options", 1);
    EXPECT_EQ(counters(s).egress_dropped, 1u);
}

// ---------------------------------------------------------------- socket types

// Ping sockets (ICMP datagrams, sent without any sendmsg hook) work in the
// probe's netns once ping_group_range allows them, and are refused at
// socket() in a session.
TEST_F(NetfilterTest, PingSocketsAreRefused) {
    const auto& s =
        make_session("s", {rule("0.0.0.0", 96, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP),
                           rule("::", 0, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP)});
    struct Ping {
        int family;
        int protocol;
    };
    for (Ping p : {Ping{AF_INET, IPPROTO_ICMP}, Ping{AF_INET6, IPPROTO_ICMPV6}}) {
        SCOPED_TRACE(p.family == AF_INET ? "ICMP" : "ICMPv6");
        Shared<int> outside;
        ASSERT_TRUE(outside);
        auto r = run_probe(
            s.path(), {}, [p] { return open_socket(p.family, SOCK_DGRAM, p.protocol); },
            [&] {
                if (!write_sysctl("/proc/sys/net/ipv4/ping_group_range", "0 2147483647"))
                    _exit(kProbeSetupFailed);
                *outside = open_socket(p.family, SOCK_DGRAM, p.protocol);
            });
        EXPECT_EQ(*outside, 0) << "ping sockets unavailable: " << strerror(*outside);
        expect_denied(s, r, "sock_create", "::", 0, "", "socket-type");
    }
}

// Inet sockets other than TCP and UDP are refused at socket(), when the
// kernel has them at all (the probe tries each outside the session first).
TEST_F(NetfilterTest, OnlyTcpAndUdpSocketsAreCreated) {
    const auto& s =
        make_session("s", {rule("0.0.0.0", 96, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP),
                           rule("::", 0, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP)});
    struct Kind {
        const char* what;
        int family;
        int type;
        int protocol;
    };
    const Kind refused[] = {
        {"UDP-Lite", AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE},
        {"UDP-Lite over IPv6", AF_INET6, SOCK_DGRAM, IPPROTO_UDPLITE},
        {"MPTCP", AF_INET, SOCK_STREAM, IPPROTO_MPTCP},
        {"MPTCP over IPv6", AF_INET6, SOCK_STREAM, IPPROTO_MPTCP},
        {"SCTP", AF_INET, SOCK_STREAM, IPPROTO_SCTP},
        {"SCTP, one-to-many", AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP},
    };
    int exercised = 0;
    for (const auto& k : refused) {
        SCOPED_TRACE(k.what);
        Shared<int> outside;
        ASSERT_TRUE(outside);
        auto r = run_probe(
            s.path(), {}, [k] { return open_socket(k.family, k.type, k.protocol); },
            [&] { *outside = open_socket(k.family, k.type, k.protocol); });
        if (*outside != 0) {
            // Not in this kernel: refused before the hook runs, and not reported.
            EXPECT_EQ(r.status, *outside);
            EXPECT_TRUE(drain(s.id()).empty());
            continue;
        }
        exercised++;
        expect_denied(s, r, "sock_create", "::", 0, "", "socket-type");
    }
    EXPECT_GE(exercised, 2) << "fewer than two of UDP-Lite, MPTCP and SCTP in this kernel";

    const Kind allowed[] = {
        {"TCP by name", AF_INET, SOCK_STREAM, IPPROTO_TCP},
        {"UDP by name", AF_INET6, SOCK_DGRAM, IPPROTO_UDP},
        {"TCP by default", AF_INET6, SOCK_STREAM, 0},
        {"UDP by default", AF_INET, SOCK_DGRAM, 0},
    };
    for (const auto& k : allowed) {
        SCOPED_TRACE(k.what);
        auto r = run_probe(s.path(), {}, [k] { return open_socket(k.family, k.type, k.protocol); });
        expect_allowed(s, r);
    }
}

// ---------------------------------------------------------------- inbound, allowed traffic

// What happened when a peer outside the session connected to a listener
// inside it and the agent tried to answer.
struct Inbound {
    int peer_connected = 0;
    int peer_bytes = 0;
    int accepted = 0;
};

// The agent listens on 10.66.0.1:9000; a peer outside the session, on
// 10.66.0.2:40000, connects and waits for data; the agent accepts and
// sends "secret". With syncookies forced, the listener answers the SYN
// with a SYN-ACK that belongs to no socket, which no cgroup program sees.
ProbeResult run_inbound(const std::string& cgroup_dir, Inbound* out, bool syncookies) {
    auto peer_pid = std::make_shared<pid_t>(-1);
    auto go = std::make_shared<std::array<int, 2>>();
    auto peer = [go, out] {
        close((*go)[1]);
        char c;
        if (read((*go)[0], &c, 1) != 1) _exit(1);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        SockAddr self = sockaddr_of("10.66.0.2", 40000);
        SockAddr agent = sockaddr_of("10.66.0.1", 9000);
        if (bind(fd, self.get(), self.len) != 0) _exit(1);
        connect(fd, agent.get(), agent.len);
        int err = -1;
        socklen_t len = sizeof(err);
        if (!wait_for(fd, POLLOUT, 1500) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
            err != 0)
            _exit(0);
        out->peer_connected = 1;
        char buf[64];
        if (wait_for(fd, POLLIN, 1000)) {
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            out->peer_bytes = n > 0 ? static_cast<int>(n) : 0;
        }
        _exit(0);
    };
    return run_probe(
        cgroup_dir, {},
        [go, peer_pid, out] {
            close((*go)[0]);
            int listener = socket(AF_INET, SOCK_STREAM, 0);
            SockAddr self = sockaddr_of("10.66.0.1", 9000);
            if (listener < 0 || bind(listener, self.get(), self.len) != 0 ||
                listen(listener, 4) != 0)
                return kProbeSetupFailed;
            if (write((*go)[1], "g", 1) != 1) return kProbeSetupFailed;
            if (wait_for(listener, POLLIN, 2000)) {
                int conn = accept(listener, nullptr, nullptr);
                if (conn >= 0) {
                    out->accepted = 1;
                    send(conn, "secret", 6, 0);
                }
            }
            waitpid(*peer_pid, nullptr, 0);
            return 0;
        },
        [go, peer_pid, peer, syncookies] {
            if (!add_lo_address("10.66.0.1", 32) || !add_lo_address("10.66.0.2", 32) ||
                pipe(go->data()) != 0)
                _exit(kProbeSetupFailed);
            if (syncookies && !write_sysctl("/proc/sys/net/ipv4/tcp_syncookies", "2"))
                _exit(kProbeSetupFailed);
            *peer_pid = fork();  // outside the session: the probe joins it after this
            if (*peer_pid == 0) peer();
        });
}

// A peer no rule allows connects to an agent's listener: the SYN-ACK is
// dropped at egress, so the handshake never completes and nothing is
// accepted. With syncookies the SYN-ACK escapes (it has no socket), the
// agent accepts, and everything it sends on the accepted socket is dropped.
TEST_F(NetfilterTest, InboundPeerOutsideTheRulesGetsNoData) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    Shared<Inbound> in;
    ASSERT_TRUE(in);
    auto r = run_inbound(s.path(), &*in, false);
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(in->peer_connected, 0);
    EXPECT_EQ(in->accepted, 0);
    EXPECT_EQ(in->peer_bytes, 0);
    auto events = drain(s.id());
    ASSERT_GE(events.size(), 1u);
    expect_egress(events[0], s, "10.66.0.2", 40000, "tcp", "no-rule", 1);
    EXPECT_GE(counters(s).egress_dropped, 1u);

    const auto& cookies = make_session("cookies", {rule("127.0.0.1", 128, 8080, 8080)});
    Shared<Inbound> in2;
    ASSERT_TRUE(in2);
    r = run_inbound(cookies.path(), &*in2, true);
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(in2->peer_connected, 1) << "a SYN-ACK with a cookie has no socket and no cgroup";
    EXPECT_EQ(in2->accepted, 1);
    EXPECT_EQ(in2->peer_bytes, 0) << "the accepted socket's data reached the peer";
    events = drain(cookies.id());
    ASSERT_GE(events.size(), 1u);
    expect_egress(events[0], cookies, "10.66.0.2", 40000, "tcp", "no-rule", 1);
    EXPECT_GE(counters(cookies).egress_dropped, 1u);
}

// A peer the rules allow (any of its ports) is served.
TEST_F(NetfilterTest, InboundPeerTheRulesAllowIsServed) {
    const auto& s = make_session("s", {rule("10.66.0.2", 128, 1, 65535)});
    Shared<Inbound> in;
    ASSERT_TRUE(in);
    auto r = run_inbound(s.path(), &*in, false);
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(in->peer_connected, 1);
    EXPECT_EQ(in->accepted, 1);
    EXPECT_EQ(in->peer_bytes, 6);
    EXPECT_TRUE(drain(s.id()).empty());
    EXPECT_EQ(counters(s).egress_dropped, 0u);
}

// Moves n bytes from one socket to another in one thread, interleaving
// non-blocking writes and reads so that neither side's buffer stalls it.
bool pump(int from, int to, size_t n) {
    std::vector<char> buf(16384, 'x');
    size_t sent = 0, got = 0;
    while (got < n) {
        if (sent < n) {
            ssize_t w = send(from, buf.data(), std::min(buf.size(), n - sent), MSG_DONTWAIT);
            if (w > 0)
                sent += w;
            else if (errno != EAGAIN)
                return false;
        }
        if (!wait_for(to, POLLIN, 2000)) return false;
        ssize_t r = recv(to, buf.data(), buf.size(), MSG_DONTWAIT);
        if (r <= 0) return false;
        got += r;
    }
    return true;
}

// A TCP request and response between a client in the session and a server
// outside it, then both FINs. Returns what failed, or "".
std::string tcp_exchange(int listener, const std::string& host, uint16_t port) {
    SockAddr a = sockaddr_of(host, port);
    int client = socket(a.family, SOCK_STREAM, 0);
    if (client < 0 || connect(client, a.get(), a.len) != 0) return "connect";
    int server = accept(listener, nullptr, nullptr);
    if (server < 0) return "accept";
    if (!pump(client, server, 200000)) return "request";
    if (!pump(server, client, 300000)) return "response";
    char c;
    if (shutdown(client, SHUT_WR) != 0 || !wait_for(server, POLLIN, 2000) ||
        recv(server, &c, 1, 0) != 0)
        return "client FIN";
    if (shutdown(server, SHUT_WR) != 0 || !wait_for(client, POLLIN, 2000) ||
        recv(client, &c, 1, 0) != 0)
        return "server FIN";
    close(client);
    close(server);
    return "";
}

// A UDP request by sendto and by a connected socket, each answered.
std::string udp_exchange(int server, const std::string& host, uint16_t port) {
    SockAddr a = sockaddr_of(host, port);
    for (bool connected : {false, true}) {
        int client = socket(a.family, SOCK_DGRAM, 0);
        if (client < 0) return "socket";
        ssize_t w = connected
                        ? (connect(client, a.get(), a.len) == 0 ? send(client, "ping", 4, 0) : -1)
                        : sendto(client, "ping", 4, 0, a.get(), a.len);
        if (w != 4) return connected ? "connected send" : "sendto";
        sockaddr_storage from{};
        socklen_t len = sizeof(from);
        char buf[8];
        if (!wait_for(server, POLLIN, 1000) ||
            recvfrom(server, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len) != 4)
            return "request";
        if (sendto(server, "pong", 4, 0, reinterpret_cast<sockaddr*>(&from), len) != 4)
            return "response send";
        if (!wait_for(client, POLLIN, 1000) || recv(client, buf, sizeof(buf), 0) != 4)
            return "response";
        close(client);
    }
    return "";
}

// Allowed endpoints work both ways through the egress program: handshake,
// data in segments larger than one, ACKs, FINs, UDP answers.
TEST_F(NetfilterTest, AllowedTcpAndUdpFlowBothWays) {
    const auto& s =
        make_session("s", {rule("127.0.0.1", 128, 8080, 8080), rule("::1", 128, 8080, 8080),
                           rule("127.0.0.1", 128, 5353, 5353, CORDON_PROTO_UDP),
                           rule("::1", 128, 5353, 5353, CORDON_PROTO_UDP)});
    struct Endpoint {
        const char* host;
        uint16_t port;
        int type;
    };
    for (Endpoint e :
         {Endpoint{"127.0.0.1", 8080, SOCK_STREAM}, Endpoint{"::1", 8080, SOCK_STREAM},
          Endpoint{"127.0.0.1", 5353, SOCK_DGRAM}, Endpoint{"::1", 5353, SOCK_DGRAM}}) {
        SCOPED_TRACE(std::string(e.host) + (e.type == SOCK_STREAM ? " tcp" : " udp"));
        struct Record {
            char failed[32];
        };
        Shared<Record> rec;
        ASSERT_TRUE(rec);
        int server = -1;
        auto r = run_probe(
            s.path(), {},
            [&] {
                std::string failed = e.type == SOCK_STREAM ? tcp_exchange(server, e.host, e.port)
                                                           : udp_exchange(server, e.host, e.port);
                std::snprintf(rec->failed, sizeof(rec->failed), "%s", failed.c_str());
                return failed.empty() ? 0 : 1;
            },
            [&] {
                SockAddr a = sockaddr_of(e.host, e.port);
                server = socket(a.family, e.type, 0);
                int one = 1;
                setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(server, a.get(), a.len) != 0 ||
                    (e.type == SOCK_STREAM && listen(server, 4) != 0))
                    _exit(kProbeSetupFailed);
            });
        EXPECT_EQ(r.status, 0) << "failed at " << rec->failed;
        EXPECT_TRUE(drain(s.id()).empty());
        EXPECT_EQ(counters(s).egress_dropped, 0u);
    }
}

// A connection opened while the rules allowed it: after a policy change
// that no longer does, its data stops at egress.
TEST_F(NetfilterTest, ConnectionOpenedBeforeAPolicyChangeIsCut) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    struct Record {
        int before_change = -1;
        int after_change = -1;
    };
    Shared<Record> rec;
    ASSERT_TRUE(rec);
    int listener = -1;
    uint64_t id = s.id();
    auto r = run_probe(
        s.path(), {},
        [&] {
            SockAddr a = sockaddr_of("127.0.0.1", 8080);
            int client = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(client, a.get(), a.len) != 0) return kProbeSetupFailed;
            int server = accept(listener, nullptr, nullptr);
            char buf[8];
            send(client, "a", 1, 0);
            rec->before_change = wait_for(server, POLLIN, 1000) ? recv(server, buf, 8, 0) : 0;
            // What a supervisor does to change a live session's rules.
            if (!nf_->remove_session(id) ||
                !nf_->add_session(id, {rule("127.0.0.1", 128, 9999, 9999)}, kNoResolver, 0))
                return kProbeSetupFailed;
            send(client, "b", 1, 0);
            rec->after_change = wait_for(server, POLLIN, 1000) ? recv(server, buf, 8, 0) : 0;
            return 0;
        },
        [&] {
            SockAddr a = sockaddr_of("127.0.0.1", 8080);
            listener = socket(AF_INET, SOCK_STREAM, 0);
            if (bind(listener, a.get(), a.len) != 0 || listen(listener, 4) != 0)
                _exit(kProbeSetupFailed);
        });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(rec->before_change, 1);
    EXPECT_EQ(rec->after_change, 0) << "data passed after the rules stopped allowing it";
    auto events = drain(s.id());
    ASSERT_GE(events.size(), 1u);
    expect_egress(events[0], s, "127.0.0.1", 8080, "tcp", "no-rule", 1);
    EXPECT_GE(counters(s).egress_dropped, 1u);
}

TEST_F(NetfilterTest, CountersOfAnUnknownSessionAreAnError) {
    const auto& cg = make_cgroup("no-session");
    auto c = nf_->counters(cg.id());
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message().find("add the session first"), std::string::npos)
        << c.error().message();
}

}  // namespace
}  // namespace cordon::netfilter
