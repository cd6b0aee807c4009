// SPDX-License-Identifier: Apache-2.0
// Approval gates on the real kernel: rules that pass only while their
// gate is open, uses taken one per connection (exactly, under
// concurrency), connections cut at egress when the gate closes, and the
// one Unix socket a session may reach, the approval broker's. Probes run
// in network namespaces of their own with only lo up.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "netfilter_fixture.h"

namespace cordon::netfilter {
namespace {

using namespace cordon::testing;
using testing::gated;
using testing::rule;

class NetfilterGateTest : public testing::NetfilterFixture {
  protected:
    NetfilterGateTest() { name_ = "cordon-test-nfgate"; }

    // One use of gate by the probe r: a connect or send that went through.
    void expect_gate_use(const Denial& d, const cgroup::SessionCgroup& cg, const ProbeResult& r,
                         const std::string& hook, const std::string& addr, uint16_t port,
                         const std::string& protocol, uint16_t gate,
                         std::optional<uint32_t> uses_left) {
        EXPECT_EQ(d.cgroup_id, cg.id());
        EXPECT_EQ(d.pid, static_cast<uint32_t>(r.pid));
        EXPECT_EQ(d.comm, kProbeComm);
        EXPECT_EQ(d.hook, hook);
        EXPECT_EQ(d.reason, "gate-use");
        EXPECT_EQ(d.protocol, protocol);
        EXPECT_EQ(d.address, ip(addr)) << "expected " << addr;
        EXPECT_EQ(d.port, port);
        EXPECT_EQ(d.gate, gate);
        EXPECT_EQ(d.uses_left, uses_left);
        EXPECT_EQ(d.drops, 0u);
    }

    // The probe went through gate, and exactly one event says so.
    void expect_one_use(const cgroup::SessionCgroup& cg, const ProbeResult& r,
                        const std::string& hook, const std::string& addr, uint16_t port,
                        const std::string& protocol, uint16_t gate,
                        std::optional<uint32_t> uses_left) {
        EXPECT_EQ(r.status, 0) << "pid " << r.pid << ": " << strerror(r.status);
        auto events = drain(cg.id());
        ASSERT_EQ(events.size(), 1u) << "events for " << hook << " " << addr;
        expect_gate_use(events[0], cg, r, hook, addr, port, protocol, gate, uses_left);
    }

    GateState state(const cgroup::SessionCgroup& cg, uint16_t gate) {
        auto st = nf_->gate_state(cg.id(), gate);
        EXPECT_TRUE(st) << st.error().message();
        return st ? st.value() : GateState{};
    }
};

// ---------------------------------------------------------------- closed, open, closed

TEST_F(NetfilterGateTest, AGatedRulePassesOnlyWhileItsGateIsOpen) {
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 7),
                                       gated(rule("::1", 128, 8080, 8080), 7)});
    std::vector<Listener> all = {{"127.0.0.1", 8080}, {"::1", 8080}};
    auto connect4 = [] { return tcp_connect("127.0.0.1", 8080); };
    auto connect6 = [] { return tcp_connect("::1", 8080); };
    EXPECT_FALSE(state(s, 7).open);

    auto r = run_probe(s.path(), all, connect4);
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "tcp", "approval-required", 7);
    r = run_probe(s.path(), all, connect6);
    expect_denied(s, r, "connect6", "::1", 8080, "tcp", "approval-required", 7);

    ASSERT_TRUE(nf_->open_gate(s.id(), 7, std::nullopt));
    GateState open = state(s, 7);
    EXPECT_TRUE(open.open);
    EXPECT_FALSE(open.uses_left) << "opened without a count";
    for (int i = 0; i < 3; i++) {
        r = run_probe(s.path(), all, connect4);
        expect_one_use(s, r, "connect4", "127.0.0.1", 8080, "tcp", 7, std::nullopt);
    }
    r = run_probe(s.path(), all, connect6);
    expect_one_use(s, r, "connect6", "::1", 8080, "tcp", 7, std::nullopt);

    ASSERT_TRUE(nf_->close_gate(s.id(), 7));
    EXPECT_FALSE(state(s, 7).open);
    r = run_probe(s.path(), all, connect4);
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "tcp", "approval-required", 7);
    EXPECT_TRUE(nf_->close_gate(s.id(), 7)) << "closing a closed gate is not an error";

    // Another port of the same address is no gate's: a plain denial.
    r = run_probe(s.path(), {}, [] { return tcp_connect("127.0.0.1", 8081); });
    expect_denied(s, r, "connect4", "127.0.0.1", 8081, "tcp");
}

// Addressed UDP sends take a use each, like connects.
TEST_F(NetfilterGateTest, EachAddressedUdpSendTakesAUse) {
    const auto& s =
        make_session("s", {gated(rule("127.0.0.1", 128, 5353, 5353, CORDON_PROTO_UDP), 2)});
    auto send = [] { return udp_sendto("127.0.0.1", 5353); };
    auto r = run_probe(s.path(), {}, send);
    expect_denied(s, r, "sendmsg4", "127.0.0.1", 5353, "udp", "approval-required", 2);

    ASSERT_TRUE(nf_->open_gate(s.id(), 2, 2));
    r = run_probe(s.path(), {}, send);
    expect_one_use(s, r, "sendmsg4", "127.0.0.1", 5353, "udp", 2, 1);
    r = run_probe(s.path(), {}, send);
    expect_one_use(s, r, "sendmsg4", "127.0.0.1", 5353, "udp", 2, 0);
    r = run_probe(s.path(), {}, send);
    expect_denied(s, r, "sendmsg4", "127.0.0.1", 5353, "udp", "approval-required", 2);
    GateState spent = state(s, 2);
    EXPECT_TRUE(spent.open) << "a gate with no uses left stays open for its connections";
    EXPECT_EQ(spent.uses_left, 0u);
    EXPECT_EQ(spent.used, 2u) << "a refused send is no use";
}

// What a connection opened through a gate managed, before and after.
struct Exchange {
    int first_connect = -1;
    int second_connect = -1;
    int before = -1;  // bytes the server got while the gate was open
    int after = -1;   // bytes it got after the change
};

// Connects to 127.0.0.1:8080 (served by `listener`, outside the session),
// sends "a", then makes `change`, tries a second connect, and sends "b".
int exchange_around(int listener, Exchange* out, const std::function<bool()>& change) {
    SockAddr a = sockaddr_of("127.0.0.1", 8080);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    out->first_connect = errno_or_zero(connect(client, a.get(), a.len));
    if (out->first_connect != 0) return 0;
    int server = accept(listener, nullptr, nullptr);
    char buf[8];
    send(client, "a", 1, 0);
    out->before = wait_for(server, POLLIN, 1000) ? recv(server, buf, 8, 0) : 0;
    if (!change()) return kProbeSetupFailed;
    int second = socket(AF_INET, SOCK_STREAM, 0);
    out->second_connect = errno_or_zero(connect(second, a.get(), a.len));
    send(client, "b", 1, 0);
    out->after = wait_for(server, POLLIN, 1000) ? recv(server, buf, 8, 0) : 0;
    return 0;
}

void listen_outside(int* listener) {
    SockAddr a = sockaddr_of("127.0.0.1", 8080);
    *listener = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(*listener, a.get(), a.len) != 0 || listen(*listener, 16) != 0)
        _exit(kProbeSetupFailed);
}

// What a connection did across `change`, run in session s by a probe
// whose server listens outside the session.
struct Exchanged {
    ProbeResult probe;
    Exchange exchange;
};

Exchanged exchange_in(const cgroup::SessionCgroup& s, const std::function<bool()>& change) {
    Shared<Exchange> ex;
    if (!ex) {
        ADD_FAILURE() << "no shared memory for the probe's exchange";
        return {};
    }
    int listener = -1;
    ProbeResult r = run_probe(
        s.path(), {}, [&] { return exchange_around(listener, &*ex, change); },
        [&] { listen_outside(&listener); });
    return {r, *ex};
}

// Closing the gate refuses new connections and cuts the open one at
// egress: the peer receives nothing more, and the drops are counted.
TEST_F(NetfilterGateTest, ClosingTheGateCutsAConnectionOpenedThroughIt) {
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 3)});
    ASSERT_TRUE(nf_->open_gate(s.id(), 3, std::nullopt));
    uint64_t id = s.id();
    auto [r, ex] = exchange_in(s, [&] { return bool(nf_->close_gate(id, 3)); });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(ex.first_connect, 0);
    EXPECT_EQ(ex.before, 1);
    EXPECT_EQ(ex.second_connect, EPERM);
    EXPECT_EQ(ex.after, 0) << "data passed after the gate closed";

    auto events = drain(s.id());
    ASSERT_GE(events.size(), 3u);
    expect_gate_use(events[0], s, r, "connect4", "127.0.0.1", 8080, "tcp", 3, std::nullopt);
    EXPECT_EQ(events[1].reason, "approval-required");
    EXPECT_EQ(events[1].hook, "connect4");
    EXPECT_EQ(events[1].gate, 3);
    expect_egress(events[2], s, "127.0.0.1", 8080, "tcp", "approval-required", 1);
    EXPECT_EQ(events[2].gate, 3);
    EXPECT_GE(counters(s).egress_dropped, 1u);
}

// A connection kept through a closed window does not come back with the
// next one, where it took no use: only a connect of the new window passes.
TEST_F(NetfilterGateTest, AConnectionOfAnEarlierWindowStaysCutInTheNext) {
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 2)});
    ASSERT_TRUE(nf_->open_gate(s.id(), 2, std::nullopt));
    uint64_t id = s.id();
    auto [r, ex] =
        exchange_in(s, [&] { return nf_->close_gate(id, 2) && nf_->open_gate(id, 2, 1); });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(ex.first_connect, 0);
    EXPECT_EQ(ex.before, 1);
    EXPECT_EQ(ex.second_connect, 0) << "the new window's connect";
    EXPECT_EQ(ex.after, 0) << "the earlier window's connection passed in the next";
    EXPECT_EQ(state(s, 2).uses_left, 0u);
}

// Granting again while a gate is open keeps its connections going.
TEST_F(NetfilterGateTest, ReopeningAnOpenGateKeepsItsConnections) {
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 2)});
    ASSERT_TRUE(nf_->open_gate(s.id(), 2, std::nullopt));
    uint64_t id = s.id();
    auto [r, ex] = exchange_in(s, [&] { return bool(nf_->open_gate(id, 2, 3)); });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(ex.second_connect, 0);
    EXPECT_EQ(ex.after, 1) << "a grant renewed while open cut its connection";
}

// A gate opened until a time closes by itself then, in every hook, with
// nobody calling close_gate: a grant's window holds even when the
// supervisor that would close it was killed.
TEST_F(NetfilterGateTest, AGateOpenedUntilATimeClosesByItselfThen) {
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 4)});
    auto closes_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(800);
    ASSERT_TRUE(nf_->open_gate(s.id(), 4, std::nullopt, closes_at));
    EXPECT_TRUE(state(s, 4).open);
    auto [r, ex] = exchange_in(s, [&] {
        std::this_thread::sleep_until(closes_at + std::chrono::milliseconds(200));
        return true;
    });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(ex.first_connect, 0);
    EXPECT_EQ(ex.before, 1);
    EXPECT_EQ(ex.second_connect, EPERM);
    EXPECT_EQ(ex.after, 0) << "data passed after the gate's time";
    EXPECT_FALSE(state(s, 4).open);

    auto events = drain(s.id());
    ASSERT_GE(events.size(), 3u);
    expect_gate_use(events[0], s, r, "connect4", "127.0.0.1", 8080, "tcp", 4, std::nullopt);
    EXPECT_EQ(events[1].reason, "approval-required");
    EXPECT_EQ(events[1].gate, 4);
    expect_egress(events[2], s, "127.0.0.1", 8080, "tcp", "approval-required", 1);
}

// ---------------------------------------------------------------- counted uses

// One use: one connection, which keeps working after the use is spent;
// the next connect is refused.
TEST_F(NetfilterGateTest, OneUseLetsOneConnectionThroughAndItKeepsWorking) {
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 1)});
    ASSERT_TRUE(nf_->open_gate(s.id(), 1, 1));
    EXPECT_EQ(state(s, 1).uses_left, 1u);
    auto [r, ex] = exchange_in(s, [] { return true; });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(ex.first_connect, 0);
    EXPECT_EQ(ex.before, 1);
    EXPECT_EQ(ex.second_connect, EPERM);
    EXPECT_EQ(ex.after, 1) << "the connection that took the use was cut";

    auto events = drain(s.id());
    ASSERT_EQ(events.size(), 2u);
    expect_gate_use(events[0], s, r, "connect4", "127.0.0.1", 8080, "tcp", 1, 0);
    EXPECT_EQ(events[1].reason, "approval-required");
    EXPECT_EQ(events[1].gate, 1);
    EXPECT_FALSE(events[1].uses_left);
    EXPECT_EQ(counters(s).egress_dropped, 0u);
    GateState spent = state(s, 1);
    EXPECT_TRUE(spent.open);
    EXPECT_EQ(spent.uses_left, 0u);

    // Opening it again replaces the uses.
    ASSERT_TRUE(nf_->open_gate(s.id(), 1, 5));
    EXPECT_EQ(state(s, 1).uses_left, 5u);
}

// Connects from several processes and threads at once, released together:
// exactly `uses` of them pass, and their events count the uses down.
TEST_F(NetfilterGateTest, ConcurrentConnectsTakeExactlyTheUsesGiven) {
    constexpr int kProcesses = 4;
    constexpr int kThreads = 8;
    constexpr int kAttempts = kProcesses * kThreads;
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 9)});
    struct Record {
        int results[kAttempts];
    };
    for (uint32_t uses : {1u, 5u}) {
        SCOPED_TRACE("uses " + std::to_string(uses));
        ASSERT_TRUE(nf_->open_gate(s.id(), 9, uses));
        Shared<Record> rec;
        ASSERT_TRUE(rec);
        std::fill(std::begin(rec->results), std::end(rec->results), -1);
        auto r = run_probe(s.path(), {{"127.0.0.1", 8080}}, [&] {
            int go[2];
            if (pipe(go) != 0) return kProbeSetupFailed;
            std::vector<pid_t> children;
            for (int p = 0; p < kProcesses; p++) {
                pid_t pid = fork();
                if (pid == 0) {
                    close(go[1]);
                    std::vector<std::thread> threads;
                    for (int t = 0; t < kThreads; t++)
                        threads.emplace_back([&, t] {
                            char c;
                            (void)!read(go[0], &c, 1);  // returns 0 for all once go[1] closes
                            rec->results[p * kThreads + t] = tcp_connect("127.0.0.1", 8080);
                        });
                    for (auto& t : threads) t.join();
                    _exit(0);
                }
                children.push_back(pid);
            }
            usleep(100 * 1000);  // let every thread reach its read
            close(go[1]);
            for (pid_t pid : children) waitpid(pid, nullptr, 0);
            return 0;
        });
        ASSERT_EQ(r.status, 0);
        int passed = std::count(std::begin(rec->results), std::end(rec->results), 0);
        int refused = std::count(std::begin(rec->results), std::end(rec->results), EPERM);
        EXPECT_EQ(passed, static_cast<int>(uses));
        EXPECT_EQ(refused, kAttempts - static_cast<int>(uses));

        auto events = drain(s.id());
        std::vector<uint32_t> left;
        std::vector<uint64_t> used;
        int denied = 0;
        for (const auto& d : events) {
            EXPECT_EQ(d.gate, 9);
            if (d.reason == "gate-use" && d.uses_left) left.push_back(*d.uses_left);
            if (d.reason == "gate-use") used.push_back(d.used);
            if (d.reason == "approval-required") denied++;
        }
        std::sort(left.begin(), left.end());
        std::sort(used.begin(), used.end());
        std::vector<uint32_t> want(uses);
        std::vector<uint64_t> want_used(uses);
        for (uint32_t i = 0; i < uses; i++) {
            want[i] = i;
            want_used[i] = i + 1;
        }
        EXPECT_EQ(left, want) << "each use took one, none twice";
        EXPECT_EQ(used, want_used) << "each use counted once, from 0 at each opening";
        EXPECT_EQ(denied, kAttempts - static_cast<int>(uses));
        EXPECT_EQ(state(s, 9).uses_left, 0u);
        EXPECT_EQ(state(s, 9).used, uses);
    }
}

// The kernel counts the uses of a gate itself: an agent that fills its ring
// buffer with denials hides the events of its uses, not the uses.
TEST_F(NetfilterGateTest, TheKernelCountsEveryUseWhenTheRingBufferIsFull) {
    constexpr int kFlood = 3000;
    constexpr int kConnects = 10;  // fewer than the listener's backlog: nothing accepts
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 3)});
    ASSERT_TRUE(nf_->open_gate(s.id(), 3, std::nullopt));
    auto r = run_probe(s.path(), {{"127.0.0.1", 8080}}, [] {
        for (int i = 0; i < kFlood; i++)
            if (udp_sendto("127.0.0.9", 9) != EPERM) return kProbeSetupFailed;
        for (int i = 0; i < kConnects; i++)
            if (int rc = tcp_connect("127.0.0.1", 8080); rc != 0) return rc;
        return 0;
    });
    ASSERT_EQ(r.status, 0) << strerror(r.status);
    GateState after = state(s, 3);
    EXPECT_TRUE(after.open);
    EXPECT_EQ(after.used, static_cast<uint64_t>(kConnects));
    EXPECT_GT(counters(s).events_lost, 0u) << "the flood did not fill the ring buffer";
    size_t reported = 0;
    for (auto events = drain(s.id()); !events.empty(); events = drain(s.id()))
        reported += std::count_if(events.begin(), events.end(),
                                  [](const Denial& d) { return d.reason == "gate-use"; });
    EXPECT_LT(reported, static_cast<size_t>(kConnects)) << "no use event was lost";

    // A new opening counts from 0; its count is read until the gate is closed.
    ASSERT_TRUE(nf_->open_gate(s.id(), 3, 2));
    EXPECT_EQ(state(s, 3).used, 0u);
    ASSERT_TRUE(nf_->close_gate(s.id(), 3));
    EXPECT_EQ(state(s, 3).used, 0u);
}

// ---------------------------------------------------------------- rules together

// A gated range wins over an ungated one covering the same destination
// (an address an allowed tool's DNS answer shares with a gated tool stays
// behind the gate); an ungated destination no gate covers takes no use.
// Gates on one prefix with different ports stay apart.
TEST_F(NetfilterGateTest, AGatedRangeWinsOverAnUngatedOneAndGatesStayApart) {
    const auto& s =
        make_session("s", {rule("127.0.0.1", 128, 8080, 8080), rule("127.0.0.1", 128, 8095, 8095),
                           gated(rule("127.0.0.0", 96 + 8, 8080, 8090), 3),
                           gated(rule("127.0.0.2", 128, 9001, 9001), 1),
                           gated(rule("127.0.0.2", 128, 9002, 9002), 2)});
    std::vector<Listener> all = {{"127.0.0.1", 8080},
                                 {"127.0.0.1", 8081},
                                 {"127.0.0.1", 8095},
                                 {"127.0.0.2", 9001},
                                 {"127.0.0.2", 9002}};
    auto r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.1", 8080); });
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "tcp", "approval-required", 3);

    ASSERT_TRUE(nf_->open_gate(s.id(), 3, 2));
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.1", 8095); });
    expect_allowed(s, r);
    EXPECT_EQ(state(s, 3).uses_left, 2u) << "a destination no gate covers took a use";
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.1", 8080); });
    expect_one_use(s, r, "connect4", "127.0.0.1", 8080, "tcp", 3, 1);
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.1", 8081); });
    expect_one_use(s, r, "connect4", "127.0.0.1", 8081, "tcp", 3, 0);
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.1", 8080); });
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "tcp", "approval-required", 3);

    ASSERT_TRUE(nf_->open_gate(s.id(), 1, std::nullopt));
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.2", 9001); });
    expect_one_use(s, r, "connect4", "127.0.0.2", 9001, "tcp", 1, std::nullopt);
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.2", 9002); });
    expect_denied(s, r, "connect4", "127.0.0.2", 9002, "tcp", "approval-required", 2);
    ASSERT_TRUE(nf_->open_gate(s.id(), 2, std::nullopt));
    ASSERT_TRUE(nf_->close_gate(s.id(), 1));
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.2", 9002); });
    expect_one_use(s, r, "connect4", "127.0.0.2", 9002, "tcp", 2, std::nullopt);
    r = run_probe(s.path(), all, [] { return tcp_connect("127.0.0.2", 9001); });
    expect_denied(s, r, "connect4", "127.0.0.2", 9001, "tcp", "approval-required", 1);
}

// Two gates over one destination: the first open one passes; a denial names the first.
TEST_F(NetfilterGateTest, AnyOpenGateOfTheCoveringOnesPasses) {
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 4),
                                       gated(rule("127.0.0.0", 96 + 8, 8000, 9000), 6)});
    std::vector<Listener> all = {{"127.0.0.1", 8080}};
    auto connect = [] { return tcp_connect("127.0.0.1", 8080); };
    auto r = run_probe(s.path(), all, connect);
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "tcp", "approval-required", 4);
    ASSERT_TRUE(nf_->open_gate(s.id(), 6, 1));
    r = run_probe(s.path(), all, connect);
    expect_one_use(s, r, "connect4", "127.0.0.1", 8080, "tcp", 6, 0);
    r = run_probe(s.path(), all, connect);
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "tcp", "approval-required", 4);
}

// glibc's sorting probe (a UDP connect that sends nothing) to a gated TCP
// endpoint: refused quietly, gate open or closed, and it takes no use.
TEST_F(NetfilterGateTest, TheUdpProbeOfAGatedTcpEndpointTakesNoUseAndReportsNothing) {
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 5)});
    auto probe = [] { return udp_connect("127.0.0.1", 8080); };
    auto r = run_probe(s.path(), {}, probe);
    EXPECT_EQ(r.status, EPERM);
    EXPECT_TRUE(drain(s.id()).empty()) << "a sorting probe of a closed gate was reported";

    ASSERT_TRUE(nf_->open_gate(s.id(), 5, 1));
    r = run_probe(s.path(), {}, probe);
    EXPECT_EQ(r.status, EPERM);
    EXPECT_TRUE(drain(s.id()).empty()) << "a sorting probe of an open gate was reported";
    EXPECT_EQ(state(s, 5).uses_left, 1u) << "the sorting probe took a use";

    r = run_probe(s.path(), {{"127.0.0.1", 8080}}, [] { return tcp_connect("127.0.0.1", 8080); });
    expect_one_use(s, r, "connect4", "127.0.0.1", 8080, "tcp", 5, 0);
}

// A UDP connect that a gated UDP rule covers is no sorting probe to hide,
// even where TCP is allowed: with its gate closed it is reported, so that
// the broker hears of it; open, it takes a use.
TEST_F(NetfilterGateTest, AUdpConnectToAClosedUdpGateIsReportedWhereTcpIsAllowed) {
    const auto& s =
        make_session("s", {rule("127.0.0.1", 128, 8080, 8080),
                           gated(rule("127.0.0.1", 128, 8080, 8080, CORDON_PROTO_UDP), 5)});
    auto probe = [] { return udp_connect("127.0.0.1", 8080); };
    auto r = run_probe(s.path(), {}, probe);
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "udp", "approval-required", 5);

    ASSERT_TRUE(nf_->open_gate(s.id(), 5, 1));
    r = run_probe(s.path(), {}, probe);
    expect_one_use(s, r, "connect4", "127.0.0.1", 8080, "udp", 5, 0);
    r = run_probe(s.path(), {}, probe);
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "udp", "approval-required", 5);
}

// No gate opens DNS: port 53 stays the resolver's.
TEST_F(NetfilterGateTest, AGatedRuleNeverOpensDns) {
    const auto& s = make_session(
        "s", {gated(rule("127.0.0.1", 128, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP), 1)});
    ASSERT_TRUE(nf_->open_gate(s.id(), 1, std::nullopt));
    auto r = run_probe(s.path(), {}, [] { return udp_sendto("127.0.0.1", 53); });
    expect_denied(s, r, "sendmsg4", "127.0.0.1", 53, "udp", "direct-dns");
    EXPECT_FALSE(state(s, 1).uses_left);
}

// ---------------------------------------------------------------- lifecycle, errors

// replace_rules takes gated rules like any: an endpoint it puts behind a
// gate closes, and opens with the gate.
TEST_F(NetfilterGateTest, ReplaceRulesPutsAnEndpointBehindAGate) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    std::vector<Listener> all = {{"127.0.0.1", 8080}};
    auto connect = [] { return tcp_connect("127.0.0.1", 8080); };
    expect_allowed(s, run_probe(s.path(), all, connect));

    ASSERT_TRUE(nf_->replace_rules(s.id(), {gated(rule("127.0.0.1", 128, 8080, 8080), 2)}));
    EXPECT_EQ(nf_->rule_count(s.id()), 1u);
    auto r = run_probe(s.path(), all, connect);
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "tcp", "approval-required", 2);
    ASSERT_TRUE(nf_->open_gate(s.id(), 2, 1));
    r = run_probe(s.path(), all, connect);
    expect_one_use(s, r, "connect4", "127.0.0.1", 8080, "tcp", 2, 0);

    ASSERT_TRUE(nf_->replace_rules(s.id(), {rule("127.0.0.1", 128, 8080, 8080)}));
    expect_allowed(s, run_probe(s.path(), all, connect));
}

// Pins of a build that had no gates map (links beside a missing map) are
// an older build's programs still enforcing: refused, never replaced.
TEST_F(NetfilterGateTest, PinsOfABuildWithoutAGatesMapAreRefusedNotReplaced) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    std::string pin = pin_dir_ + "/maps/gates";
    UniqueFd gates = pinned_map("gates");
    ASSERT_TRUE(gates.valid());
    ASSERT_EQ(unlink(pin.c_str()), 0);

    auto again = Netfilter::open_or_attach(root_, pin_dir_);
    EXPECT_EQ(bpf_obj_pin(gates.get(), pin.c_str()), 0) << "cannot restore " << pin;
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().message(),
              "the BPF programs pinned in " + pin_dir_ +
                  " come from an older build of Cordon (no gates map) (end their sessions, then "
                  "detach them (rm -r " +
                  pin_dir_ + ") and start again)");
    // Its programs still hold.
    auto r = run_probe(s.path(), {}, [] { return tcp_connect("127.0.0.1", 8081); });
    expect_denied(s, r, "connect4", "127.0.0.1", 8081, "tcp");
}

TEST_F(NetfilterGateTest, RemoveSessionRemovesItsGates) {
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 1)});
    const auto& other = make_session("other", {gated(rule("127.0.0.1", 128, 8080, 8080), 1)});
    ASSERT_TRUE(nf_->open_gate(s.id(), 1, 3));
    ASSERT_TRUE(nf_->open_gate(s.id(), 2, std::nullopt));
    ASSERT_TRUE(nf_->open_gate(other.id(), 1, std::nullopt));
    EXPECT_EQ(count_entries("gates"), 3u);

    ASSERT_TRUE(nf_->remove_session(s.id()));
    EXPECT_EQ(count_entries("gates"), 1u) << "the other session's gate must stay";
    EXPECT_TRUE(state(other, 1).open);
    auto gone = nf_->gate_state(s.id(), 1);
    ASSERT_FALSE(gone);
    EXPECT_NE(gone.error().message().find("add the session first"), std::string::npos)
        << gone.error().message();

    // Added again, the session starts with its gates closed.
    ASSERT_TRUE(
        nf_->add_session(s.id(), {gated(rule("127.0.0.1", 128, 8080, 8080), 1)}, kNoResolver, 0));
    EXPECT_FALSE(state(s, 1).open);
}

TEST_F(NetfilterGateTest, OpeningAGateOfNoSessionOrGateZeroIsAnError) {
    const auto& none = make_cgroup("none");
    auto st = nf_->open_gate(none.id(), 1, std::nullopt);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message(), "cannot open gate 1 of session " + std::to_string(none.id()) +
                                        ": no such session (add the session first)");
    EXPECT_EQ(count_entries("gates"), 0u);

    const auto& s = make_session("s", {});
    st = nf_->open_gate(s.id(), 0, std::nullopt);
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message().find("gates are numbered from 1"), std::string::npos)
        << st.error().message();
    st = nf_->open_gate(s.id(), 1, CORDON_GATE_UNLIMITED);
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message().find("no count for unlimited uses"), std::string::npos)
        << st.error().message();
    EXPECT_FALSE(nf_->close_gate(s.id(), 0));
    EXPECT_TRUE(nf_->close_gate(none.id(), 1)) << "nothing to close is not an error";
}

class TinyGatesTest : public NetfilterGateTest {
  protected:
    TinyGatesTest() {
        name_ = "cordon-test-nfgtiny";
        config_.max_gates = 2;
    }
};

TEST_F(TinyGatesTest, AFullGatesMapIsAnErrorNamingItAndTheGateStaysClosed) {
    EXPECT_EQ(nf_->sizes().max_gates, 2u);
    const auto& s = make_session("s", {gated(rule("127.0.0.1", 128, 8080, 8080), 3)});
    ASSERT_TRUE(nf_->open_gate(s.id(), 1, std::nullopt));
    ASSERT_TRUE(nf_->open_gate(s.id(), 2, std::nullopt));
    auto st = nf_->open_gate(s.id(), 3, std::nullopt);
    ASSERT_FALSE(st);
    const std::string message = st.error().message();
    EXPECT_NE(message.find("cannot open gate 3 of session " + std::to_string(s.id()) +
                           " in the gates map"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("gates map is full (size 2)"), std::string::npos) << message;
    EXPECT_NE(message.find("raise --max-gates"), std::string::npos) << message;
    EXPECT_FALSE(state(s, 3).open);
    auto r =
        run_probe(s.path(), {{"127.0.0.1", 8080}}, [] { return tcp_connect("127.0.0.1", 8080); });
    expect_denied(s, r, "connect4", "127.0.0.1", 8080, "tcp", "approval-required", 3);

    // An open gate's uses can still be replaced.
    EXPECT_TRUE(nf_->open_gate(s.id(), 2, 4));
    EXPECT_EQ(state(s, 2).uses_left, 4u);
}

// ---------------------------------------------------------------- the approval socket

// A listening socket at kApprovalSocket, seen only in the probe's own
// mount namespace: a tmpfs over /run hides the host's. Run as `before`.
void serve_approval_socket(int* listener) {
    if (unshare(CLONE_NEWNS) != 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0 ||
        mkdir("/run/cordon-approval", 0755) != 0)
        _exit(kProbeSetupFailed);
    for (const char* path : {kApprovalSocket, "/run/cordon-approval/other"}) {
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path, sizeof(a.sun_path) - 1);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
            listen(fd, 8) != 0)
            _exit(kProbeSetupFailed);
        if (path == kApprovalSocket) *listener = fd;
    }
}

// connect() of a new Unix stream socket to path (address length len: the
// whole sockaddr_un when 0); 0 or the errno.
int unix_connect(const std::string& path, socklen_t len = 0) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), std::min(path.size(), sizeof(a.sun_path)));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return errno;
    int rc = errno_or_zero(connect(fd, reinterpret_cast<sockaddr*>(&a), len ? len : sizeof(a)));
    close(fd);
    return rc;
}

int unix_sendto(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0) return errno;
    int rc = errno_or_zero(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
    close(fd);
    return rc;
}

class ApprovalSocketTest : public NetfilterGateTest {
  protected:
    void SetUp() override {
        NetfilterGateTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        struct stat st;
        if (stat((pin_dir_ + "/links/connect_unix").c_str(), &st) != 0)
            GTEST_SKIP() << "this kernel has no cgroup/connect_unix hook (Linux 6.7): Unix "
                            "sockets are not filtered";
    }
};

constexpr socklen_t kPathOffset = offsetof(sockaddr_un, sun_path);

TEST_F(ApprovalSocketTest, ASessionWithTheFlagReachesTheApprovalSocketOnly) {
    const auto& s = make_cgroup("s");
    ASSERT_TRUE(nf_->add_session(s.id(), {}, kNoResolver, 0, true));
    struct Record {
        int exact = -1;
        int exact_unterminated = -1;
        int exact_terminated = -1;
        int received = -1;
        int other = -1;
        int longer = -1;
        int shorter = -1;
        int abstract = -1;
        int relative = -1;
        int sendto = -1;
    };
    Shared<Record> rec;
    ASSERT_TRUE(rec);
    int listener = -1;
    const std::string path = kApprovalSocket;
    auto r = run_probe(
        s.path(), {},
        [&] {
            rec->exact = unix_connect(path);
            rec->exact_unterminated = unix_connect(path, kPathOffset + path.size());
            rec->exact_terminated = unix_connect(path, kPathOffset + path.size() + 1);
            // The connection is real: the broker's side reads what the agent sends.
            sockaddr_un a{};
            a.sun_family = AF_UNIX;
            std::strncpy(a.sun_path, kApprovalSocket, sizeof(a.sun_path) - 1);
            int fd = socket(AF_UNIX, SOCK_STREAM, 0);
            if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
                send(fd, "hi", 2, 0) == 2) {
                int conn = -1;
                for (int i = 0; i < 4; i++) conn = accept(listener, nullptr, nullptr);
                char buf[4];
                rec->received = wait_for(conn, POLLIN, 1000) ? recv(conn, buf, sizeof(buf), 0) : 0;
            }
            rec->other = unix_connect("/run/cordon-approval/other");
            rec->longer = unix_connect(path + "x");
            rec->shorter = unix_connect(path, kPathOffset + path.size() - 1);
            rec->abstract = unix_connect(std::string(1, '\0') + path.substr(1));
            rec->relative = chdir("/run/cordon-approval") == 0 ? unix_connect("socket") : -2;
            rec->sendto = unix_sendto(path);
            return 0;
        },
        [&] { serve_approval_socket(&listener); });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(rec->exact, 0);
    EXPECT_EQ(rec->exact_unterminated, 0) << "the kernel reads the path up to the length";
    EXPECT_EQ(rec->exact_terminated, 0);
    EXPECT_EQ(rec->received, 2);
    EXPECT_EQ(rec->other, EPERM) << "another socket of the same directory";
    EXPECT_EQ(rec->longer, EPERM);
    EXPECT_EQ(rec->shorter, EPERM);
    EXPECT_EQ(rec->abstract, EPERM);
    EXPECT_EQ(rec->relative, EPERM) << "only the absolute path is the broker's";
    EXPECT_EQ(rec->sendto, EPERM);

    EXPECT_EQ(counters(s).unix_denied, 6u);
    auto events = drain(s.id());
    ASSERT_EQ(events.size(), 3u) << "the 1st, 2nd and 4th Unix denials";
    for (const auto& d : events) {
        EXPECT_EQ(d.reason, "unix-socket");
        EXPECT_EQ(d.hook, "connect_unix");
        EXPECT_EQ(d.pid, static_cast<uint32_t>(r.pid));
        EXPECT_EQ(d.comm, kProbeComm);
        EXPECT_EQ(d.gate, 0);
    }
    EXPECT_EQ(events[2].drops, 4u);
}

TEST_F(ApprovalSocketTest, ASessionWithoutTheFlagIsRefusedTheApprovalSocket) {
    const auto& s = make_session("s", {});
    Shared<int> result;
    ASSERT_TRUE(result);
    int listener = -1;
    auto r = run_probe(
        s.path(), {}, [&] { return unix_connect(kApprovalSocket); },
        [&] {
            serve_approval_socket(&listener);
            *result = unix_connect(kApprovalSocket);  // outside the session: served
        });
    EXPECT_EQ(*result, 0);
    EXPECT_EQ(r.status, EPERM);
    auto events = drain(s.id());
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].hook, "connect_unix");
    EXPECT_EQ(events[0].reason, "unix-socket");
    EXPECT_EQ(events[0].pid, static_cast<uint32_t>(r.pid));
    EXPECT_EQ(events[0].drops, 1u);
    EXPECT_EQ(counters(s).unix_denied, 1u);
}

}  // namespace
}  // namespace cordon::netfilter
