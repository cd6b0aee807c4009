// SPDX-License-Identifier: Apache-2.0
// The netfilter layer at work and at scale, on the real kernel: DNS only to
// the session's resolver, live rule changes, byte accounting per session
// and destination, the egress byte budget, map sizes and their overflow,
// and a thousand sessions beside one of ten thousand rules. Every probe
// runs in a network namespace of its own with only lo up.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "netfilter_fixture.h"

namespace cordon::netfilter {
namespace {

using namespace cordon::testing;
using testing::NetfilterFixture;
using testing::rule;

constexpr uint8_t kTcpUdp = CORDON_PROTO_TCP | CORDON_PROTO_UDP;

Resolver resolver_at(const std::string& addr) {
    return Resolver{ip(addr), 53};
}

// "a.b.c.d" of a host-order IPv4 address.
std::string v4(uint32_t host) {
    return std::to_string(host >> 24) + "." + std::to_string((host >> 16) & 255) + "." +
           std::to_string((host >> 8) & 255) + "." + std::to_string(host & 255);
}

// Sends count datagrams of size bytes to host:port from one socket; 0 or the first errno.
int udp_send_many(const std::string& host, uint16_t port, int count, size_t size) {
    SockAddr a = sockaddr_of(host, port);
    int fd = socket(a.family, SOCK_DGRAM, 0);
    if (fd < 0) return errno;
    std::vector<char> payload(size, 'x');
    for (int i = 0; i < count; i++) {
        if (sendto(fd, payload.data(), payload.size(), 0, a.get(), a.len) < 0) {
            int err = errno;
            close(fd);
            return err;
        }
    }
    close(fd);
    return 0;
}

// A socket bound outside the session (the probe's `before`), left open until the probe exits.
void bind_outside(const std::string& host, uint16_t port, int type) {
    SockAddr a = sockaddr_of(host, port);
    int fd = socket(a.family, type, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, a.get(), a.len) != 0 || (type == SOCK_STREAM && listen(fd, 64) != 0))
        _exit(kProbeSetupFailed);
}

class NetfilterScaleTest : public NetfilterFixture {
  protected:
    NetfilterScaleTest() { name_ = "cordon-test-nfscale"; }

    // Slots of the events map that hold a ring buffer.
    size_t ring_buffers() {
        UniqueFd fd = pinned_map("events");
        size_t n = 0;
        uint32_t map_id = 0;
        for (uint32_t slot = 0; slot < nf_->sizes().max_sessions; slot++)
            if (bpf_map_lookup_elem(fd.get(), &slot, &map_id) == 0) n++;
        return n;
    }

    // The session's policy entry as the programs read it.
    session_policy policy_of(uint64_t cgroup_id) {
        session_policy policy{};
        UniqueFd fd = pinned_map("sessions");
        EXPECT_EQ(bpf_map_lookup_elem(fd.get(), &cgroup_id, &policy), 0)
            << "no policy entry for " << cgroup_id;
        return policy;
    }

    std::vector<DestinationCounters> destinations(const cgroup::SessionCgroup& cg) {
        auto d = nf_->destinations(cg.id());
        EXPECT_TRUE(d) << d.error().message();
        return d ? d.value() : std::vector<DestinationCounters>{};
    }
};

// ---------------------------------------------------------------- DNS

TEST_F(NetfilterScaleTest, DnsGoesOnlyToTheSessionResolver) {
    // Rules that open every address and port, both families: DNS stays closed.
    const auto& s = make_session(
        "s", {rule("0.0.0.0", 96, 1, 65535, kTcpUdp), rule("::", 0, 1, 65535, kTcpUdp)},
        resolver_at("127.53.0.1"));
    auto before = [] {
        for (const char* host : {"127.53.0.1", "127.0.0.1"}) {
            bind_outside(host, 53, SOCK_STREAM);
            bind_outside(host, 53, SOCK_DGRAM);
            bind_outside(host, 853, SOCK_STREAM);
        }
        bind_outside("127.0.0.1", 54, SOCK_STREAM);
    };
    auto probe = [&](const std::function<int()>& attempt) {
        return run_probe(s.path(), {}, attempt, before);
    };

    expect_allowed(s, probe([] { return udp_sendto("127.53.0.1", 53); }));
    expect_allowed(s, probe([] { return udp_connect("127.53.0.1", 53); }));
    expect_allowed(s, probe([] { return tcp_connect("127.53.0.1", 53); }));
    expect_allowed(s, probe([] { return udp_sendto("::ffff:127.53.0.1", 53); }));
    expect_allowed(s, probe([] { return tcp_connect("127.0.0.1", 54); }));

    auto r = probe([] { return udp_sendto("127.0.0.1", 53); });
    expect_denied(s, r, "sendmsg4", "127.0.0.1", 53, "udp", "direct-dns");
    r = probe([] { return tcp_connect("127.0.0.1", 53); });
    expect_denied(s, r, "connect4", "127.0.0.1", 53, "tcp", "direct-dns");
    r = probe([] { return tcp_connect("127.0.0.1", 853); });
    expect_denied(s, r, "connect4", "127.0.0.1", 853, "tcp", "direct-dns");
    r = probe([] { return tcp_connect("127.53.0.1", 853); });
    expect_denied(s, r, "connect4", "127.53.0.1", 853, "tcp", "direct-dns");
    r = probe([] { return udp_connect("8.8.8.8", 53); });
    expect_denied(s, r, "connect4", "8.8.8.8", 53, "udp", "direct-dns");
    r = probe([] { return tcp_connect("::1", 53); });
    expect_denied(s, r, "connect6", "::1", 53, "tcp", "direct-dns");
    r = probe([] { return udp_sendto("2001:4860:4860::8888", 853); });
    expect_denied(s, r, "sendmsg6", "2001:4860:4860::8888", 853, "udp", "direct-dns");
    r = probe([] { return tcp_fastopen("9.9.9.9", 853); });
    expect_denied(s, r, "connect4", "9.9.9.9", 853, "tcp", "direct-dns");
}

TEST_F(NetfilterScaleTest, TheResolverNeedsNoRuleAndNoResolverMeansNoDns) {
    const auto& with = make_session("with", {}, resolver_at("127.53.0.9"));
    auto r = run_probe(with.path(), {}, [] { return udp_sendto("127.53.0.9", 53); });
    expect_allowed(with, r);
    r = run_probe(with.path(), {}, [] { return udp_sendto("127.53.0.9", 54); });
    expect_denied(with, r, "sendmsg4", "127.53.0.9", 54, "udp", "no-rule");

    const auto& without =
        make_session("without", {rule("127.0.0.0", 104, 1, 65535, kTcpUdp)}, kNoResolver);
    r = run_probe(without.path(), {}, [] { return udp_sendto("127.53.0.9", 53); });
    expect_denied(without, r, "sendmsg4", "127.53.0.9", 53, "udp", "direct-dns");

    EXPECT_FALSE(nf_->add_session(make_cgroup("bad").id(), {}, Resolver{ip("127.53.0.1"), 0}, 0))
        << "a resolver on port 0 was accepted";
}

// Runs change() on a thread of the test when the probe says so, then lets the probe go on.
struct Handshake {
    std::atomic<int> stage{0};  // 1: the probe is ready; 2: changed
};

void wait_stage(Handshake& h, int stage) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (h.stage.load() < stage && std::chrono::steady_clock::now() < until) usleep(1000);
}

// A socket connected to the resolver before the session's resolver changed:
// the connect hook saw an allowed destination, egress sees direct DNS.
TEST_F(NetfilterScaleTest, EgressDropsDnsToAFormerResolver) {
    const auto& s = make_session("s", {}, resolver_at("127.0.0.1"));
    uint64_t id = s.id();
    Shared<Handshake> h;
    ASSERT_TRUE(h);
    Shared<int> first_send;
    ASSERT_TRUE(first_send);
    std::thread changer([&] {
        wait_stage(*h, 1);
        bool ok = nf_->remove_session(id) &&
                  nf_->add_session(id, {rule("0.0.0.0", 96, 1, 65535, kTcpUdp)},
                                   resolver_at("127.53.0.2"), 0);
        h->stage = ok ? 2 : 3;
    });
    auto r = run_probe(
        s.path(), {},
        [&] {
            SockAddr a = sockaddr_of("127.0.0.1", 53);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            if (connect(fd, a.get(), a.len) != 0) return kProbeSetupFailed;
            *first_send = errno_or_zero(send(fd, "q", 1, 0));
            h->stage = 1;
            wait_stage(*h, 2);
            return errno_or_zero(send(fd, "q", 1, 0));
        },
        [] { bind_outside("127.0.0.1", 53, SOCK_DGRAM); });
    changer.join();
    ASSERT_EQ(h->stage.load(), 2) << "the policy change failed";
    EXPECT_EQ(*first_send, 0);
    EXPECT_EQ(r.status, EPERM);
    auto events = drain(s.id());
    ASSERT_EQ(events.size(), 1u);
    expect_egress(events[0], s, "127.0.0.1", 53, "udp", "direct-dns", 1);
}

// ---------------------------------------------------------------- live rule changes

TEST_F(NetfilterScaleTest, ReplaceRulesAppliesTheNewSet) {
    const auto& s =
        make_session("s", {rule("127.0.0.1", 128, 8000, 8000), rule("127.0.0.2", 128, 8000, 8000),
                           rule("10.0.0.0", 104, 443, 443)});
    EXPECT_EQ(policy_of(s.id()).rule_count, 3u);
    std::vector<Listener> all = {
        {"127.0.0.1", 8000}, {"127.0.0.2", 8000}, {"127.0.0.3", 8000}, {"127.0.0.5", 7000}};

    ASSERT_TRUE(nf_->replace_rules(
        s.id(), {rule("127.0.0.1", 128, 8000, 8000), rule("127.0.0.3", 128, 8000, 8000),
                 rule("127.0.0.0", 104, 7000, 7000), rule("10.0.0.0", 104, 443, 444)}));
    EXPECT_EQ(nf_->rule_count(s.id()), 4u);
    EXPECT_EQ(policy_of(s.id()).rule_count, 4u);
    expect_allowed(s, run_probe(s.path(), all, [] { return tcp_connect("127.0.0.1", 8000); }));
    expect_allowed(s, run_probe(s.path(), all, [] { return tcp_connect("127.0.0.3", 8000); }));
    // Folded: the /32 of .3 carries the /8's port too.
    expect_allowed(s, run_probe(s.path(), all, [] { return tcp_connect("127.0.0.5", 7000); }));
    auto r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.2", 8000); });
    expect_denied(s, r, "connect4", "127.0.0.2", 8000, "tcp");

    ASSERT_TRUE(nf_->replace_rules(s.id(), {}));
    EXPECT_EQ(nf_->rule_count(s.id()), 0u);
    EXPECT_EQ(policy_of(s.id()).rule_count, 0u);
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.1", 8000); });
    expect_denied(s, r, "connect4", "127.0.0.1", 8000, "tcp");
}

// A connection the old rules allowed and the new ones do not stops at
// egress as soon as replace_rules returns, while one both allow goes on.
TEST_F(NetfilterScaleTest, ReplaceRulesCutsAConnectionItNoLongerAllows) {
    const auto& s =
        make_session("s", {rule("127.0.0.1", 128, 8080, 8080), rule("127.0.0.1", 128, 8081, 8081)});
    uint64_t id = s.id();
    Shared<Handshake> h;
    ASSERT_TRUE(h);
    struct Record {
        int kept_before = -1, cut_before = -1, kept_after = -1, cut_after = -1;
    };
    Shared<Record> rec;
    ASSERT_TRUE(rec);
    std::thread changer([&] {
        wait_stage(*h, 1);
        h->stage = nf_->replace_rules(id, {rule("127.0.0.1", 128, 8081, 8081)}) ? 2 : 3;
    });
    int listeners[2] = {-1, -1};
    auto r = run_probe(
        s.path(), {},
        [&] {
            int client[2], server[2];
            for (int i = 0; i < 2; i++) {
                SockAddr a = sockaddr_of("127.0.0.1", 8080 + i);
                client[i] = socket(AF_INET, SOCK_STREAM, 0);
                if (connect(client[i], a.get(), a.len) != 0) return kProbeSetupFailed;
                server[i] = accept(listeners[i], nullptr, nullptr);
            }
            auto echo = [&](int i) {
                char buf[8];
                send(client[i], "a", 1, 0);
                return wait_for(server[i], POLLIN, 1000)
                           ? static_cast<int>(recv(server[i], buf, 8, 0))
                           : 0;
            };
            rec->cut_before = echo(0);
            rec->kept_before = echo(1);
            h->stage = 1;
            wait_stage(*h, 2);
            rec->cut_after = echo(0);
            rec->kept_after = echo(1);
            return 0;
        },
        [&] {
            for (int i = 0; i < 2; i++) {
                SockAddr a = sockaddr_of("127.0.0.1", 8080 + i);
                listeners[i] = socket(AF_INET, SOCK_STREAM, 0);
                if (bind(listeners[i], a.get(), a.len) != 0 || listen(listeners[i], 4) != 0)
                    _exit(kProbeSetupFailed);
            }
        });
    changer.join();
    ASSERT_EQ(h->stage.load(), 2) << "replace_rules failed";
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(rec->cut_before, 1);
    EXPECT_EQ(rec->kept_before, 1);
    EXPECT_EQ(rec->cut_after, 0) << "data passed after the rules stopped allowing it";
    EXPECT_EQ(rec->kept_after, 1) << "the connection both rule sets allow was cut";
    auto events = drain(s.id());
    ASSERT_GE(events.size(), 1u);
    expect_egress(events[0], s, "127.0.0.1", 8080, "tcp", "no-rule", 1);
}

TEST_F(NetfilterScaleTest, ReplaceRulesOfASessionNotAddedHereIsAnError) {
    const auto& cg = make_cgroup("none");
    auto st = nf_->replace_rules(cg.id(), {rule("127.0.0.1", 128, 80, 80)});
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message().find("this supervisor did not add it"), std::string::npos)
        << st.error().message();
    EXPECT_EQ(nf_->rule_count(cg.id()), 0u);
}

// An address both the old and the new rules allow stays allowed while the
// rules change under a probe that keeps sending to it, from another thread
// than the one that reads the denials.
TEST_F(NetfilterScaleTest, ReplaceRulesNeverDropsWhatBothSetsAllow) {
    auto keep = rule("127.0.0.1", 128, 5353, 5353, CORDON_PROTO_UDP);
    const std::vector<std::vector<Rule>> sets = {
        {keep, rule("127.0.0.2", 128, 5353, 5353, CORDON_PROTO_UDP)},
        {keep, rule("127.0.0.3", 128, 6000, 6010, CORDON_PROTO_UDP)},
        {keep, rule("127.0.0.1", 128, 7000, 7000, CORDON_PROTO_UDP)},  // changes keep's entry
        {keep, rule("127.0.0.0", 104, 9000, 9000, CORDON_PROTO_UDP)},  // folds into keep's
    };
    constexpr int kChanges = 4000;
    const auto& s = make_session("s", sets[0]);
    struct Record {
        std::atomic<bool> started{false};
        std::atomic<int> changes{0};
        std::atomic<bool> failed{false};
        int sends = 0;
        int refused = 0;
    };
    Shared<Record> rec;
    ASSERT_TRUE(rec);
    std::thread changer([&] {
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!rec->started && std::chrono::steady_clock::now() < until) usleep(100);
        for (int i = 1; i <= kChanges && !rec->failed; i++) {
            if (!nf_->replace_rules(s.id(), sets[i % sets.size()])) rec->failed = true;
            rec->changes = i;
        }
    });
    auto r = run_probe(
        s.path(), {},
        [&] {
            SockAddr a = sockaddr_of("127.0.0.1", 5353);
            int fd = socket(AF_INET, SOCK_DGRAM, 0);
            rec->started = true;
            while (rec->changes < kChanges && !rec->failed) {
                rec->sends++;
                if (sendto(fd, "x", 1, 0, a.get(), a.len) != 1) rec->refused++;
            }
            return 0;
        },
        [] { bind_outside("127.0.0.1", 5353, SOCK_DGRAM); });
    changer.join();
    ASSERT_EQ(r.status, 0);
    ASSERT_FALSE(rec->failed) << "replace_rules failed";
    EXPECT_GT(rec->sends, kChanges / 10) << "the probe sent too little to overlap the changes";
    EXPECT_EQ(rec->refused, 0) << "sends refused while the rules changed";
    EXPECT_TRUE(drain(s.id()).empty());
    EXPECT_EQ(counters(s).egress_dropped, 0u);
    EXPECT_EQ(nf_->rule_count(s.id()), sets[kChanges % sets.size()].size());
}

// ---------------------------------------------------------------- accounting

TEST_F(NetfilterScaleTest, CountersMatchWhatWasSent) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 5353, 5353, CORDON_PROTO_UDP),
                                       rule("::1", 128, 5353, 5353, CORDON_PROTO_UDP)});
    auto r = run_probe(
        s.path(), {},
        [] {
            int a = udp_send_many("127.0.0.1", 5353, 10, 100);
            int b = udp_send_many("::1", 5353, 5, 200);
            int denied = udp_send_many("127.0.0.1", 5354, 3, 100);
            return a != 0 ? a : b != 0 ? b : denied == EPERM ? 0 : kProbeSetupFailed;
        },
        [] {
            bind_outside("127.0.0.1", 5353, SOCK_DGRAM);
            bind_outside("::1", 5353, SOCK_DGRAM);
        });
    ASSERT_EQ(r.status, 0);
    // IPv4 and UDP headers are 28 bytes, IPv6 and UDP 48.
    constexpr uint64_t kV4Bytes = 10 * (100 + 28), kV6Bytes = 5 * (200 + 48);
    auto c = counters(s);
    EXPECT_EQ(c.packets_sent, 15u);
    EXPECT_EQ(c.bytes_sent, kV4Bytes + kV6Bytes);
    EXPECT_EQ(c.unattributed_bytes, 0u);
    EXPECT_EQ(c.unattributed_packets, 0u);
    EXPECT_EQ(c.egress_dropped, 0u) << "the denied sends stopped at sendmsg, not egress";

    auto d = destinations(s);
    ASSERT_EQ(d.size(), 2u);
    EXPECT_EQ(d[0].address, ip("127.0.0.1"));
    EXPECT_EQ(d[0].port, 5353);
    EXPECT_EQ(d[0].protocol, "udp");
    EXPECT_EQ(d[0].bytes, kV4Bytes);
    EXPECT_EQ(d[0].packets, 10u);
    EXPECT_EQ(d[1].address, ip("::1"));
    EXPECT_EQ(d[1].bytes, kV6Bytes);
    EXPECT_EQ(d[1].packets, 5u);
    EXPECT_EQ(drain(s.id()).size(), 1u) << "the denied sender stops at its first EPERM";
}

TEST_F(NetfilterScaleTest, TcpBytesAreCountedPerDestination) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    constexpr size_t kPayload = 200000;
    Shared<size_t> received;
    ASSERT_TRUE(received);
    int listener = -1;
    auto r = run_probe(
        s.path(), {},
        [&] {
            SockAddr a = sockaddr_of("127.0.0.1", 8080);
            int client = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(client, a.get(), a.len) != 0) return errno;
            int server = accept(listener, nullptr, nullptr);
            std::vector<char> buf(kPayload, 'x');
            size_t sent = 0;
            while (sent < kPayload) {
                ssize_t w = send(client, buf.data() + sent, kPayload - sent, MSG_DONTWAIT);
                if (w > 0) sent += w;
                while (wait_for(server, POLLIN, 0)) {
                    ssize_t n = recv(server, buf.data(), buf.size(), MSG_DONTWAIT);
                    if (n <= 0) break;
                    *received += n;
                }
            }
            while (*received < kPayload && wait_for(server, POLLIN, 1000)) {
                ssize_t n = recv(server, buf.data(), buf.size(), 0);
                if (n <= 0) break;
                *received += n;
            }
            return 0;
        },
        [&] {
            SockAddr a = sockaddr_of("127.0.0.1", 8080);
            listener = socket(AF_INET, SOCK_STREAM, 0);
            if (bind(listener, a.get(), a.len) != 0 || listen(listener, 4) != 0)
                _exit(kProbeSetupFailed);
        });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(*received, kPayload);
    // A last ACK of the closing connection may still leave between two reads.
    auto before = counters(s);
    auto d = destinations(s);
    auto after = counters(s);
    EXPECT_GE(before.bytes_sent, kPayload);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].address, ip("127.0.0.1"));
    EXPECT_EQ(d[0].port, 8080);
    EXPECT_EQ(d[0].protocol, "tcp");
    EXPECT_GE(d[0].bytes, before.bytes_sent);
    EXPECT_LE(d[0].bytes, after.bytes_sent);
    EXPECT_GE(d[0].packets, before.packets_sent);
    EXPECT_LE(d[0].packets, after.packets_sent);
}

TEST_F(NetfilterScaleTest, RemoveSessionRemovesItsDestinations) {
    const auto& s = make_session("s", {rule("127.0.0.0", 104, 5353, 5353, CORDON_PROTO_UDP)});
    const auto& other =
        make_session("other", {rule("127.0.0.1", 128, 5353, 5353, CORDON_PROTO_UDP)});
    auto send_three = [] {
        for (const char* host : {"127.0.0.1", "127.0.0.2", "127.0.0.3"})
            if (int err = udp_send_many(host, 5353, 1, 10); err != 0) return err;
        return 0;
    };
    ASSERT_EQ(run_probe(s.path(), {}, send_three).status, 0);
    ASSERT_EQ(
        run_probe(other.path(), {}, [] { return udp_send_many("127.0.0.1", 5353, 1, 10); }).status,
        0);
    EXPECT_EQ(destinations(s).size(), 3u);
    EXPECT_EQ(count_entries("destinations"), 4u);

    ASSERT_TRUE(nf_->remove_session(s.id()));
    EXPECT_EQ(count_entries("destinations"), 1u) << "the other session's entry must stay";
    EXPECT_EQ(destinations(other).size(), 1u);
    EXPECT_FALSE(nf_->destinations(s.id()));
    EXPECT_FALSE(nf_->counters(s.id()));
}

// ---------------------------------------------------------------- egress budget

struct Transfer {
    size_t sent = 0;
    size_t received = 0;
};

// Streams total bytes from a client in the session to a server accepted
// from a listener outside it, until all arrived or nothing did for a second.
int stream(int listener, size_t total, Transfer* out) {
    SockAddr a = sockaddr_of("127.0.0.1", 8080);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    if (client < 0 || connect(client, a.get(), a.len) != 0) return errno;
    int server = accept(listener, nullptr, nullptr);
    if (server < 0) return kProbeSetupFailed;
    std::vector<char> buf(65536, 'x');
    auto idle_since = std::chrono::steady_clock::now();
    while (out->received < total &&
           std::chrono::steady_clock::now() - idle_since < std::chrono::seconds(1)) {
        if (out->sent < total) {
            ssize_t w =
                send(client, buf.data(), std::min(buf.size(), total - out->sent), MSG_DONTWAIT);
            if (w > 0) out->sent += w;
        }
        if (!wait_for(server, POLLIN, 50)) continue;
        ssize_t n = recv(server, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n == 0) break;
        if (n > 0) {
            out->received += n;
            idle_since = std::chrono::steady_clock::now();
        }
    }
    return 0;
}

TEST_F(NetfilterScaleTest, EgressBudgetCutsATransfer) {
    constexpr uint64_t kBudget = 64 * 1024;
    constexpr size_t kTotal = 1024 * 1024;
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)}, kNoResolver, kBudget);
    EXPECT_EQ(policy_of(s.id()).egress_budget, kBudget);
    Shared<Transfer> t;
    ASSERT_TRUE(t);
    int listener = -1;
    auto r = run_probe(
        s.path(), {}, [&] { return stream(listener, kTotal, &*t); },
        [&] {
            SockAddr a = sockaddr_of("127.0.0.1", 8080);
            listener = socket(AF_INET, SOCK_STREAM, 0);
            if (bind(listener, a.get(), a.len) != 0 || listen(listener, 4) != 0)
                _exit(kProbeSetupFailed);
        });
    ASSERT_EQ(r.status, 0);
    EXPECT_GT(t->received, 0u);
    EXPECT_LT(t->received, kTotal);
    auto c = counters(s);
    EXPECT_GE(c.bytes_sent, kBudget);
    EXPECT_GE(c.budget_dropped, 1u);
    EXPECT_GE(c.egress_dropped, c.budget_dropped);

    auto events = drain(s.id());
    ASSERT_GE(events.size(), 1u);
    expect_egress(events[0], s, "127.0.0.1", 8080, "tcp", "budget", 1);
    for (size_t i = 1; i < events.size(); i++) {
        EXPECT_EQ(events[i].reason, "budget");
        EXPECT_EQ(events[i].drops & (events[i].drops - 1), 0u) << "not a power of two";
    }
}

TEST_F(NetfilterScaleTest, NoBudgetNoCut) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)}, kNoResolver, 0);
    Shared<Transfer> t;
    ASSERT_TRUE(t);
    int listener = -1;
    auto r = run_probe(
        s.path(), {}, [&] { return stream(listener, 1024 * 1024, &*t); },
        [&] {
            SockAddr a = sockaddr_of("127.0.0.1", 8080);
            listener = socket(AF_INET, SOCK_STREAM, 0);
            if (bind(listener, a.get(), a.len) != 0 || listen(listener, 4) != 0)
                _exit(kProbeSetupFailed);
        });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(t->received, 1024u * 1024u);
    EXPECT_EQ(counters(s).budget_dropped, 0u);
}

// ---------------------------------------------------------------- map sizes

class TinyMapsTest : public NetfilterScaleTest {
  protected:
    TinyMapsTest() {
        name_ = "cordon-test-nftiny";
        config_.max_sessions = 3;
        config_.max_rules = 4;
        config_.max_destinations = 2;
    }
};

TEST_F(TinyMapsTest, MapsHaveTheConfiguredSizesAndPinnedSizesWin) {
    NetfilterConfig sizes = nf_->sizes();
    EXPECT_EQ(sizes.max_sessions, 3u);
    EXPECT_EQ(sizes.max_rules, 4u);
    EXPECT_EQ(sizes.max_destinations, 2u);
    auto again = Netfilter::open_or_attach(root_, pin_dir_, NetfilterConfig{});
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(again.value()->sizes().max_rules, 4u) << "the pinned size must win";
    EXPECT_EQ(again.value()->sizes().max_sessions, 3u);

    auto zero = Netfilter::open_or_attach(root_, pin_dir_ + "-zero", NetfilterConfig{0, 1, 1});
    ASSERT_FALSE(zero);
    EXPECT_NE(zero.error().message().find("--max-sessions"), std::string::npos)
        << zero.error().message();
}

TEST_F(TinyMapsTest, TooManyRulesIsAnErrorNamingTheMapNotAnAllow) {
    const auto& cg = make_cgroup("s");
    std::vector<Rule> five;
    for (int i = 1; i <= 5; i++) five.push_back(rule("127.0.0." + std::to_string(i), 128, 80, 80));
    auto st = nf_->add_session(cg.id(), five, kNoResolver, 0);
    ASSERT_FALSE(st);
    const std::string message = st.error().message();
    EXPECT_NE(message.find("to the rules map"), std::string::npos) << message;
    EXPECT_NE(message.find("rules map is full (size 4)"), std::string::npos) << message;
    EXPECT_NE(message.find("raise --max-rules"), std::string::npos) << message;
    EXPECT_EQ(count_entries("rules"), 0u);
    EXPECT_EQ(count_entries("sessions"), 0u);
    EXPECT_EQ(count_entries("counters"), 0u);
    EXPECT_EQ(count_entries("event_slots"), 0u);
    auto r = run_probe(cg.path(), {{"127.0.0.1", 80}}, [] { return tcp_connect("127.0.0.1", 80); });
    EXPECT_EQ(r.status, EPERM) << "a session that did not fit got network";
}

TEST_F(TinyMapsTest, ReplaceThatDoesNotFitKeepsTheOldRules) {
    const auto& s =
        make_session("s", {rule("127.0.0.1", 128, 80, 80), rule("127.0.0.2", 128, 80, 80)});
    std::vector<Listener> all = {{"127.0.0.1", 80}, {"127.0.0.3", 80}};
    // Old and new together would need five entries.
    auto st =
        nf_->replace_rules(s.id(), {rule("127.0.0.3", 128, 80, 80), rule("127.0.0.4", 128, 80, 80),
                                    rule("127.0.0.5", 128, 80, 80)});
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message().find("raise --max-rules"), std::string::npos)
        << st.error().message();
    EXPECT_EQ(nf_->rule_count(s.id()), 2u);
    EXPECT_EQ(policy_of(s.id()).rule_count, 2u);
    expect_allowed(s, run_probe(s.path(), all, [] { return tcp_connect("127.0.0.1", 80); }));
    auto r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.3", 80); });
    expect_denied(s, r, "connect4", "127.0.0.3", 80, "tcp");

    // Three at the peak fit.
    ASSERT_TRUE(nf_->replace_rules(
        s.id(), {rule("127.0.0.1", 128, 80, 80), rule("127.0.0.3", 128, 80, 80)}));
    EXPECT_EQ(nf_->rule_count(s.id()), 2u);
    expect_allowed(s, run_probe(s.path(), all, [] { return tcp_connect("127.0.0.3", 80); }));
}

TEST_F(TinyMapsTest, TooManySessionsIsAnError) {
    make_session("a", {});
    make_session("b", {});
    make_session("c", {});
    const auto& d = make_cgroup("d");
    auto st = nf_->add_session(d.id(), {}, kNoResolver, 0);
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message().find("raise --max-sessions"), std::string::npos)
        << st.error().message();
    EXPECT_EQ(count_entries("sessions"), 3u);
    EXPECT_EQ(count_entries("counters"), 3u);
    EXPECT_EQ(count_entries("event_slots"), 3u);
}

TEST_F(TinyMapsTest, RingBuffersServeLaterSessionsWhichSeeOnlyTheirOwnDenials) {
    const auto& a = make_session("a", {});
    auto r = run_probe(a.path(), {}, [] { return tcp_connect("127.0.0.1", 80); });
    ASSERT_EQ(r.status, EPERM);
    ASSERT_TRUE(nf_->remove_session(a.id()));  // its denial was never read
    EXPECT_EQ(count_entries("event_slots"), 0u);
    EXPECT_EQ(ring_buffers(), 1u) << "the slot keeps its ring buffer";

    const auto& b = make_session("b", {});
    EXPECT_EQ(ring_buffers(), 1u) << "b reuses a's ring buffer rather than adding one";
    EXPECT_TRUE(drain(b.id()).empty()) << "b was shown a's denial";
    r = run_probe(b.path(), {}, [] { return tcp_connect("127.0.0.2", 81); });
    expect_denied(b, r, "connect4", "127.0.0.2", 81, "tcp");
}

TEST_F(TinyMapsTest, DestinationsBeyondTheMapAreUnattributedNotDenied) {
    const auto& s = make_session("s", {rule("127.0.0.0", 104, 5353, 5353, CORDON_PROTO_UDP)});
    auto r = run_probe(s.path(), {}, [] {
        for (const char* host : {"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"})
            if (int err = udp_send_many(host, 5353, 1, 100); err != 0) return err;
        return 0;
    });
    ASSERT_EQ(r.status, 0) << "a full destinations map denied a send";
    auto c = counters(s);
    EXPECT_EQ(c.packets_sent, 4u);
    EXPECT_EQ(c.bytes_sent, 4u * 128);
    EXPECT_EQ(c.unattributed_packets, 2u);
    EXPECT_EQ(c.unattributed_bytes, 2u * 128);
    EXPECT_EQ(destinations(s).size(), 2u);
    EXPECT_EQ(c.egress_dropped, 0u);
}

// ---------------------------------------------------------------- scale

// Runs fn(0) ... fn(n - 1) on a few threads.
void on_threads(size_t n, const std::function<void(int)>& fn) {
    constexpr size_t kThreads = 16;
    std::atomic<size_t> next{0};
    std::vector<std::thread> threads;
    for (size_t t = 0; t < kThreads; t++)
        threads.emplace_back([&] {
            for (size_t i = next++; i < n; i = next++) fn(static_cast<int>(i));
        });
    for (auto& t : threads) t.join();
}

// Cgroups made for the scale test, removed however it ends.
struct ScaleCgroups {
    std::vector<std::string> dirs;
    std::vector<uint64_t> ids;
    ~ScaleCgroups() {
        for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) rmdir(it->c_str());
    }
};

constexpr int kSessions = 1000;
constexpr int kBigRules = 10000;
constexpr uint32_t kLoopback = 127u << 24;

// Session i allows TCP 127.(1+i/256).(i%256).0/24 on 9000 and its .7 on 9001;
// the big session allows 127.128.0.0 + 2k on 9000, each a /32 of its own.
uint32_t session_net(int i) {
    return kLoopback | (static_cast<uint32_t>(1 + i / 256) << 16) |
           (static_cast<uint32_t>(i % 256) << 8);
}
uint32_t big_addr(int k) {
    return kLoopback | (128u << 16) | static_cast<uint32_t>(2 * k);
}

std::vector<Rule> small_rules(int i) {
    return {rule(v4(session_net(i)), 96 + 24, 9000, 9000),
            rule(v4(session_net(i) | 7), 128, 9001, 9001),
            rule("fd00:" + std::to_string(i) + "::", 32, 443, 443)};
}

// One attempt of the scale probe: from the cgroup, to host:port, expecting status.
struct Check {
    int cgroup;  // index into ScaleCgroups
    uint32_t host;
    uint16_t port;
    int expected;
};

struct ScaleRecord {
    int status[256];
};

// Joins each check's cgroup in turn and connects; connections the kernel
// completed are accepted and closed so that the listeners' queues stay short.
int run_checks(const std::vector<Check>& checks, const std::vector<std::string>& dirs,
               const int* listeners, ScaleRecord* rec) {
    for (size_t i = 0; i < checks.size(); i++) {
        if (!cordon::testing::detail::join_cgroup(dirs[checks[i].cgroup])) return kProbeSetupFailed;
        rec->status[i] = tcp_connect(v4(checks[i].host), checks[i].port);
        for (int l = 0; l < 2; l++) {
            int fd = accept4(listeners[l], nullptr, nullptr, SOCK_NONBLOCK);
            if (fd >= 0) close(fd);
        }
    }
    return 0;
}

std::vector<Check> scale_checks(int big) {
    std::vector<Check> checks;
    for (int i : {0, 1, 255, 256, 511, 600, 777, 998, 999}) {
        int other = (i + 1) % kSessions;
        checks.push_back({i, session_net(i) | 5, 9000, 0});
        checks.push_back({i, session_net(i) | 7, 9001, 0});
        checks.push_back({i, session_net(i) | 8, 9001, EPERM});
        checks.push_back({i, session_net(other) | 5, 9000, EPERM});
        checks.push_back({i, big_addr(i), 9000, EPERM});
    }
    for (int k : {0, 1, 4999, 9998, 9999}) {
        checks.push_back({big, big_addr(k), 9000, 0});
        checks.push_back({big, big_addr(k) + 1, 9000, EPERM});
    }
    checks.push_back({big, big_addr(kBigRules), 9000, EPERM});
    checks.push_back({big, session_net(0) | 5, 9000, EPERM});
    return checks;
}

TEST_F(NetfilterScaleTest, ThousandSessionsAndTenThousandRulesDecideCorrectly) {
    ScaleCgroups cgs;
    for (int i = 0; i <= kSessions; i++) {
        std::string dir = root_ + "/scale-" + std::to_string(i);
        ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << dir << ": " << strerror(errno);
        cgs.dirs.push_back(dir);
        auto id = cgroup::cgroup_id(dir);
        ASSERT_TRUE(id) << id.error().message();
        cgs.ids.push_back(id.value());
    }
    // Each add and remove waits for an RCU grace period (the ring buffer
    // goes into a map of maps); threads let the waits overlap.
    std::atomic<int> failures{0};
    on_threads(kSessions, [&](int i) {
        auto st = nf_->add_session(cgs.ids[i], small_rules(i), resolver_at("127.53.0.1"), 0);
        if (!st) {
            ADD_FAILURE() << "session " << i << ": " << st.error().message();
            failures++;
        }
    });
    ASSERT_EQ(failures.load(), 0);
    std::vector<Rule> big_rules;
    for (int k = 0; k < kBigRules; k++) big_rules.push_back(rule(v4(big_addr(k)), 128, 9000, 9000));
    auto st = nf_->add_session(cgs.ids[kSessions], big_rules, kNoResolver, 0);
    ASSERT_TRUE(st) << st.error().message();
    EXPECT_EQ(count_entries("sessions"), static_cast<size_t>(kSessions + 1));
    EXPECT_EQ(count_entries("rules"), static_cast<size_t>(3 * kSessions + kBigRules));
    EXPECT_EQ(nf_->rule_count(cgs.ids[kSessions]), static_cast<size_t>(kBigRules));

    auto checks = scale_checks(kSessions);
    ASSERT_LE(checks.size(), std::size(ScaleRecord{}.status));
    Shared<ScaleRecord> rec;
    ASSERT_TRUE(rec);
    int listeners[2] = {-1, -1};
    auto r = run_probe(
        cgs.dirs[0], {}, [&] { return run_checks(checks, cgs.dirs, listeners, &*rec); },
        [&] {
            for (int l = 0; l < 2; l++) {
                SockAddr a = sockaddr_of("0.0.0.0", 9000 + l);
                listeners[l] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                if (bind(listeners[l], a.get(), a.len) != 0 || listen(listeners[l], 1024) != 0)
                    _exit(kProbeSetupFailed);
            }
        });
    ASSERT_EQ(r.status, 0);
    for (size_t i = 0; i < checks.size(); i++) {
        const Check& c = checks[i];
        EXPECT_EQ(rec->status[i], c.expected)
            << "cgroup " << c.cgroup << " to " << v4(c.host) << ":" << c.port;
    }

    on_threads(cgs.ids.size(), [&](int i) {
        auto st = nf_->remove_session(cgs.ids[i]);
        EXPECT_TRUE(st) << st.error().message();
    });
    // The events map keeps its ring buffers for later sessions; their slots are free.
    for (const char* map : {"sessions", "counters", "rules", "destinations", "event_slots"})
        EXPECT_EQ(count_entries(map), 0u) << "entries left in " << map;
}

}  // namespace
}  // namespace cordon::netfilter
