// SPDX-License-Identifier: Apache-2.0
// Every path out of a session, on the real kernel (issue 3, item 2): batched
// sends, TCP Fast Open, ping sockets, io_uring, sockets made outside the
// subtree, and every way of writing an address the rules do not name. Each
// probe runs in a network namespace of its own with only lo up; where a
// destination is outside loopback, the probe puts the address on its lo and
// a listener on it, shows the attempt lands when made outside the session,
// then that it fails with EPERM inside, reaches nothing, and is reported
// with its destination and hook.
#include <liburing.h>
#include <netinet/tcp.h>

#include <cstdio>
#include <string>
#include <vector>

#include "netfilter_fixture.h"
#include "send_fd.h"

namespace cordon::netfilter {
namespace {

using namespace cordon::testing;

class NetfilterPathsTest : public testing::NetfilterFixture {};
using testing::rule;

// A socket bound at host:port in the probe's netns (TCP listening), or -1.
int bound_socket(const std::string& host, uint16_t port, int type) {
    SockAddr a = sockaddr_of(host, port);
    int fd = socket(a.family, type | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, a.get(), a.len) != 0) return -1;
    if (type == SOCK_STREAM && listen(fd, 16) != 0) return -1;
    return fd;
}

// A TCP listener and a UDP socket bound to host:port, for a probe's setup
// step: the probe child exits kProbeSetupFailed when either cannot be made.
void bind_tcp_and_udp(const std::string& host, uint16_t port, int& tcp, int& udp) {
    tcp = bound_socket(host, port, SOCK_STREAM);
    udp = bound_socket(host, port, SOCK_DGRAM);
    if (tcp < 0 || udp < 0) _exit(kProbeSetupFailed);
}

// True when a TCP connection to host reaches a listener there.
bool connects_to_itself(const std::string& host) {
    SockAddr a = sockaddr_of(host, 0);
    int listener = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int client = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t len = a.len;
    bool ok = bind(listener, a.get(), a.len) == 0 && listen(listener, 1) == 0 &&
              getsockname(listener, reinterpret_cast<sockaddr*>(&a.storage), &len) == 0 &&
              connect(client, a.get(), a.len) == 0;
    close(client);
    close(listener);
    return ok;
}

// Adds an address to lo and waits until TCP can use it: an IPv6 address
// is usable only once the kernel's address work has run, after the netlink
// request returned (addrconf_dad_work, even without DAD).
bool add_usable_address(const std::string& host) {
    bool v6 = host.find(':') != std::string::npos;
    if (!add_lo_address(host, v6 ? 128 : 32)) return false;
    for (int i = 0; i < 200; i++) {
        if (connects_to_itself(host)) return true;
        usleep(10000);
    }
    return false;
}

// Datagrams waiting on a UDP socket, each read once.
int datagrams_waiting(int fd) {
    int n = 0;
    char buf[64];
    while (wait_for(fd, POLLIN, 100) && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0) n++;
    return n;
}

// Connections waiting on a TCP listener, each accepted once.
int connections_waiting(int fd) {
    int n = 0;
    while (wait_for(fd, POLLIN, 100)) {
        int c = accept(fd, nullptr, nullptr);
        if (c < 0) break;
        close(c);
        n++;
    }
    return n;
}

// ---------------------------------------------------------------- sendmmsg

struct Batch {
    int first_call = -1;  // what sendmmsg returned, or -errno
    int second_call = -1;
    int third_call = -1;
    int received[4] = {-1, -1, -1, -1};
};

// sendmmsg of four datagrams: allowed, allowed, denied, allowed. The kernel
// sends messages in order and stops at the first error, returning how many
// went if any did (__sys_sendmmsg); so the first call sends two and stops,
// a second from the denied one fails with EPERM, a third after it sends.
Batch send_batch(const std::vector<SockAddr>& to, const std::vector<int>& servers) {
    Batch b;
    int family = to[0].family;
    int fd = socket(family, SOCK_DGRAM, 0);
    char payload[4] = {'a', 'b', 'c', 'd'};
    iovec iov[4];
    mmsghdr msgs[4] = {};
    for (int i = 0; i < 4; i++) {
        iov[i] = {&payload[i], 1};
        msgs[i].msg_hdr.msg_name = const_cast<sockaddr*>(to[i].get());
        msgs[i].msg_hdr.msg_namelen = to[i].len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    auto call = [&](int from, int count) {
        int n = sendmmsg(fd, msgs + from, count, 0);
        return n < 0 ? -errno : n;
    };
    b.first_call = call(0, 4);
    b.second_call = call(2, 2);
    b.third_call = call(3, 1);
    for (int i = 0; i < 4; i++) b.received[i] = datagrams_waiting(servers[i]);
    close(fd);
    return b;
}

void expect_batch_stopped_at_denied(const Batch& b) {
    EXPECT_EQ(b.first_call, 2) << "the two allowed datagrams before the denied one go";
    EXPECT_EQ(b.second_call, -EPERM) << "the denied one fails on its own";
    EXPECT_EQ(b.third_call, 1);
    EXPECT_EQ(b.received[0], 1);
    EXPECT_EQ(b.received[1], 1);
    EXPECT_EQ(b.received[2], 0) << "the denied destination got a datagram";
    EXPECT_EQ(b.received[3], 1) << "sent by the third call only";
}

TEST_F(NetfilterPathsTest, SendmmsgSendsUpToTheDeniedDestinationAndStops) {
    struct Case {
        const char* what;
        std::vector<std::string> hosts;  // the third is denied
        const char* hook;
    };
    const Case cases[] = {
        {"IPv4", {"127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.1"}, "sendmsg4"},
        {"IPv6", {"::1", "::1", "::1", "::1"}, "sendmsg6"},
        {"v4-mapped on IPv6", {"::1", "::ffff:127.0.0.1", "::ffff:127.0.0.2", "::1"}, "sendmsg4"},
    };
    const uint16_t ports[] = {5001, 5002, 5003, 5004};
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 5001, 5004, CORDON_PROTO_UDP),
                                       rule("::1", 128, 5001, 5002, CORDON_PROTO_UDP),
                                       rule("::1", 128, 5004, 5004, CORDON_PROTO_UDP)});
    for (const auto& c : cases) {
        SCOPED_TRACE(c.what);
        Shared<Batch> out;
        ASSERT_TRUE(out);
        std::vector<SockAddr> to;
        for (int i = 0; i < 4; i++) to.push_back(sockaddr_of(c.hosts[i], ports[i]));
        std::vector<int> servers;
        auto r = run_probe(
            s.path(), {},
            [&] {
                *out = send_batch(to, servers);
                return 0;
            },
            [&] {
                for (int i = 0; i < 4; i++) {
                    // A v4-mapped destination lands on an IPv4 socket.
                    bool v4 = c.hosts[i].find('.') != std::string::npos;
                    std::string host = c.hosts[i].substr(v4 ? c.hosts[i].rfind(':') + 1 : 0);
                    servers.push_back(bound_socket(host, ports[i], SOCK_DGRAM));
                    if (servers.back() < 0) _exit(kProbeSetupFailed);
                }
            });
        ASSERT_EQ(r.status, 0);
        expect_batch_stopped_at_denied(*out);
        auto events = drain(s.id());
        ASSERT_EQ(events.size(), 2u) << "one denial per call that reached the denied datagram";
        for (const auto& d : events) {
            EXPECT_EQ(d.hook, c.hook);
            EXPECT_EQ(d.address, ip(c.hosts[2]));
            EXPECT_EQ(d.port, 5003);
            EXPECT_EQ(d.protocol, "udp");
            EXPECT_EQ(d.reason, "no-rule");
            EXPECT_EQ(d.pid, static_cast<uint32_t>(r.pid));
        }
    }
}

// ---------------------------------------------------------------- TCP Fast Open

struct FastOpen {
    int allowed_send = -1;  // bytes sent, or -errno
    int allowed_got = -1;   // bytes the allowed listener read
    int denied_send = -1;
    int denied_connect = -1;  // TCP_FASTOPEN_CONNECT, then connect()
    int denied_accepted = -1;
    int denied_seen = -1;  // packets on lo to the denied address
};

// Fast Open sends data with the SYN, from sendto(MSG_FASTOPEN) or from
// connect() on a TCP_FASTOPEN_CONNECT socket; both go through the connect
// hooks (tcp_sendmsg_fastopen calls __inet_stream_connect). The probe's
// netns turns Fast Open on for clients and servers without cookies, so
// that the allowed one really carries data on its SYN.
void fast_open(const std::string& allowed, const std::string& denied, uint16_t port,
               int allowed_server, int denied_server, Sniffer& sniffer, FastOpen* out) {
    SockAddr a = sockaddr_of(allowed, port);
    int fd = socket(a.family, SOCK_STREAM, 0);
    int n = sendto(fd, "hello", 5, MSG_FASTOPEN, a.get(), a.len);
    out->allowed_send = n < 0 ? -errno : n;
    int c = wait_for(allowed_server, POLLIN, 1000) ? accept(allowed_server, nullptr, nullptr) : -1;
    char buf[16];
    out->allowed_got = c >= 0 && wait_for(c, POLLIN, 1000) ? recv(c, buf, sizeof(buf), 0) : 0;
    close(fd);

    SockAddr d = sockaddr_of(denied, port);
    fd = socket(d.family, SOCK_STREAM, 0);
    n = sendto(fd, "hello", 5, MSG_FASTOPEN, d.get(), d.len);
    out->denied_send = n < 0 ? -errno : n;
    close(fd);
    fd = socket(d.family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one));
    out->denied_connect = connect(fd, d.get(), d.len) == 0 ? 0 : -errno;
    close(fd);
    out->denied_accepted = connections_waiting(denied_server);
    out->denied_seen = sniffer.count_to(ip(denied));
}

TEST_F(NetfilterPathsTest, FastOpenToADeniedAddressFailsAndSendsNothing) {
    struct Case {
        const char* allowed;
        const char* denied;
        const char* hook;
    };
    const auto& s =
        make_session("s", {rule("127.0.0.1", 128, 8080, 8080), rule("::1", 128, 8080, 8080)});
    for (Case c :
         {Case{"127.0.0.1", "127.0.0.2", "connect4"}, Case{"::1", "fd66::2", "connect6"}}) {
        SCOPED_TRACE(c.denied);
        Shared<FastOpen> out;
        ASSERT_TRUE(out);
        Sniffer sniffer;
        int allowed_server = -1, denied_server = -1;
        auto r = run_probe(
            s.path(), {},
            [&] {
                fast_open(c.allowed, c.denied, 8080, allowed_server, denied_server, sniffer, &*out);
                return 0;
            },
            [&] {
                int qlen = 16;
                if (!write_sysctl("/proc/sys/net/ipv4/tcp_fastopen", "519") ||
                    (std::string(c.denied).find(':') != std::string::npos &&
                     !add_usable_address(c.denied)) ||
                    !sniffer.open())
                    _exit(kProbeSetupFailed);
                allowed_server = bound_socket(c.allowed, 8080, SOCK_STREAM);
                denied_server = bound_socket(c.denied, 8080, SOCK_STREAM);
                for (int fd : {allowed_server, denied_server})
                    if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, 4) != 0)
                        _exit(kProbeSetupFailed);
            });
        ASSERT_EQ(r.status, 0);
        EXPECT_EQ(out->allowed_send, 5) << "Fast Open did not carry data to the allowed address";
        EXPECT_EQ(out->allowed_got, 5);
        EXPECT_EQ(out->denied_send, -EPERM);
        EXPECT_EQ(out->denied_connect, -EPERM);
        EXPECT_EQ(out->denied_accepted, 0);
        EXPECT_EQ(out->denied_seen, 0) << "a SYN left for the denied address";
        auto events = drain(s.id());
        ASSERT_EQ(events.size(), 2u);
        for (const auto& d : events) {
            EXPECT_EQ(d.hook, c.hook);
            EXPECT_EQ(d.address, ip(c.denied));
            EXPECT_EQ(d.port, 8080);
            EXPECT_EQ(d.protocol, "tcp");
            EXPECT_EQ(d.pid, static_cast<uint32_t>(r.pid));
        }
    }
}

// ---------------------------------------------------------------- ping sockets

struct Ping {
    int outside_send = -1;  // 0, or the errno
    int outside_seen = -1;
    int inside_socket = -1;
    int inside_seen = -1;
};

int send_echo(int fd, const std::string& host) {
    SockAddr a = sockaddr_of(host, 0);
    uint8_t echo[8] = {8 /* echo request */, 0, 0, 0, 0, 0, 0, 1};
    return errno_or_zero(sendto(fd, echo, sizeof(echo), 0, a.get(), a.len));
}

// A ping socket sends ICMP echoes with no connect or sendmsg hook on the
// way: it is refused at socket(), so no echo leaves. Outside the session
// the same echo reaches lo, which shows the sniffer would have seen it.
TEST_F(NetfilterPathsTest, PingSocketIsRefusedAndNoEchoLeaves) {
    const auto& s =
        make_session("s", {rule("0.0.0.0", 96, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP),
                           rule("::", 0, 1, 65535, CORDON_PROTO_TCP | CORDON_PROTO_UDP)});
    Shared<Ping> out;
    ASSERT_TRUE(out);
    Sniffer sniffer;
    auto r = run_probe(
        s.path(), {},
        [&] {
            int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
            out->inside_socket = fd < 0 ? errno : 0;
            if (fd >= 0) send_echo(fd, "127.0.0.2");
            out->inside_seen = sniffer.count_to(ip("127.0.0.2"));
            return 0;
        },
        [&] {
            if (!write_sysctl("/proc/sys/net/ipv4/ping_group_range", "0 2147483647") ||
                !sniffer.open())
                _exit(kProbeSetupFailed);
            int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
            out->outside_send = fd < 0 ? errno : send_echo(fd, "127.0.0.2");
            out->outside_seen = sniffer.count_to(ip("127.0.0.2"));
            close(fd);
        });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(out->outside_send, 0) << strerror(out->outside_send);
    EXPECT_GE(out->outside_seen, 1) << "the echo and its reply";
    EXPECT_EQ(out->inside_socket, EPERM);
    EXPECT_EQ(out->inside_seen, 0);
    auto events = drain(s.id());
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].hook, "sock_create");
    EXPECT_EQ(events[0].reason, "socket-type");
    EXPECT_EQ(events[0].pid, static_cast<uint32_t>(r.pid));
}

// ---------------------------------------------------------------- io_uring

struct Uring {
    int setup = -1;  // 0 or -errno of io_uring_queue_init
    int allowed_connect = -1;
    int denied_connect = -1;
    int denied_sendmsg = -1;
    int denied_got = -1;  // connections and datagrams at the denied address
};

// One operation through the ring; returns its result (cqe->res).
int uring_run(io_uring* ring, const std::function<void(io_uring_sqe*)>& prep) {
    io_uring_sqe* sqe = io_uring_get_sqe(ring);
    if (!sqe) return -ENOSPC;
    prep(sqe);
    if (io_uring_submit(ring) != 1) return -EIO;
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe(ring, &cqe) != 0) return -EIO;
    int res = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    return res;
}

void uring_attempts(int denied_tcp, int denied_udp, Uring* out) {
    io_uring ring;
    out->setup = io_uring_queue_init(4, &ring, 0);
    if (out->setup != 0) return;
    SockAddr allowed = sockaddr_of("127.0.0.1", 8080);
    SockAddr denied = sockaddr_of("127.0.0.2", 8080);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    out->allowed_connect = uring_run(&ring, [&](io_uring_sqe* sqe) {
        io_uring_prep_connect(sqe, fd, allowed.get(), allowed.len);
    });
    close(fd);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    out->denied_connect = uring_run(&ring, [&](io_uring_sqe* sqe) {
        io_uring_prep_connect(sqe, fd, denied.get(), denied.len);
    });
    close(fd);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    char x = 'x';
    iovec iov{&x, 1};
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr*>(denied.get());
    msg.msg_namelen = denied.len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    out->denied_sendmsg =
        uring_run(&ring, [&](io_uring_sqe* sqe) { io_uring_prep_sendmsg(sqe, fd, &msg, 0); });
    close(fd);
    out->denied_got = connections_waiting(denied_tcp) + datagrams_waiting(denied_udp);
    io_uring_queue_exit(&ring);
}

// io_uring's connect and sendmsg reach the same hooks as the system calls
// (io_connect calls __sys_connect_file), in the submitting task or in an
// io-wq worker thread of its process, which shares its cgroup. (Agents
// never get this far: the agent-default seccomp baseline refuses
// io_uring_setup; agent_run_paths_test.cpp shows it.)
TEST_F(NetfilterPathsTest, IoUringConnectAndSendmsgMeetTheSameHooks) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    Shared<Uring> out;
    ASSERT_TRUE(out);
    int denied_tcp = -1, denied_udp = -1;
    auto r = run_probe(
        s.path(), {{"127.0.0.1", 8080}},
        [&] {
            uring_attempts(denied_tcp, denied_udp, &*out);
            return 0;
        },
        [&] { bind_tcp_and_udp("127.0.0.2", 8080, denied_tcp, denied_udp); });
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(out->setup, 0) << "io_uring unavailable: " << strerror(-out->setup);
    EXPECT_EQ(out->allowed_connect, 0) << strerror(-out->allowed_connect);
    EXPECT_EQ(out->denied_connect, -EPERM);
    EXPECT_EQ(out->denied_sendmsg, -EPERM);
    EXPECT_EQ(out->denied_got, 0);
    auto events = drain(s.id());
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].hook, "connect4");
    EXPECT_EQ(events[0].protocol, "tcp");
    EXPECT_EQ(events[1].hook, "sendmsg4");
    EXPECT_EQ(events[1].protocol, "udp");
    for (const auto& d : events) {
        EXPECT_EQ(d.address, ip("127.0.0.2"));
        EXPECT_EQ(d.port, 8080);
        EXPECT_EQ(d.pid, static_cast<uint32_t>(r.pid)) << "a worker thread reports its process";
    }
}

// ---------------------------------------------------------------- sockets from outside

struct Carried {
    int inherited_connect = -1;
    int inherited_sent = -1;
    int received_connect = -1;  // a socket that came over SCM_RIGHTS
    int denied_got = -1;        // bytes and connections at the denied listener
};

// KNOWN HOLE, shown as the kernel behaves today (issue 3, item 2). The
// kernel runs cgroup socket programs for the cgroup a socket was created
// in (sk_cgrp_data), so an inet socket made outside Cordon's subtree is
// filtered by nothing, whoever holds it: inherited across fork, or received
// over a Unix socket with SCM_RIGHTS, it connects to a denied address and
// its data arrives, with no denial and no egress drop. agent-run hands the
// agent no such socket (it closes every descriptor but stdio and refuses
// inet stdio, see agent_run_paths_test.cpp), but an agent that can reach a
// Unix socket of a process outside the subtree can be given one. When this
// test fails, the hole is closed: turn its expectations around.
TEST_F(NetfilterPathsTest, KnownHoleSocketMadeOutsideTheSubtreeIsNotFiltered) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080)});
    Shared<Carried> out;
    ASSERT_TRUE(out);
    int inherited = -1, pair[2] = {-1, -1}, denied_server = -1;
    SockAddr denied = sockaddr_of("127.0.0.2", 9090);
    auto r = run_probe(
        s.path(), {},
        [&] {
            out->inherited_connect = errno_or_zero(connect(inherited, denied.get(), denied.len));
            out->inherited_sent = static_cast<int>(send(inherited, "leak", 4, 0));
            int received = receive_fd(pair[1]);
            out->received_connect =
                received < 0 ? -1 : errno_or_zero(connect(received, denied.get(), denied.len));
            int got = 0;
            char buf[16];
            for (int i = 0; i < 2 && wait_for(denied_server, POLLIN, 1000); i++) {
                int c = accept(denied_server, nullptr, nullptr);
                if (c >= 0 && wait_for(c, POLLIN, 200)) got += recv(c, buf, sizeof(buf), 0);
                got += c >= 0 ? 1 : 0;
            }
            out->denied_got = got;
            return 0;
        },
        [&] {
            inherited = socket(AF_INET, SOCK_STREAM, 0);
            int other = socket(AF_INET, SOCK_STREAM, 0);
            denied_server = bound_socket("127.0.0.2", 9090, SOCK_STREAM);
            if (inherited < 0 || other < 0 || denied_server < 0 ||
                socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0 || send_fd(pair[0], other) != 0)
                _exit(kProbeSetupFailed);
            close(other);
        });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(out->inherited_connect, 0) << "the kernel now filters inherited sockets";
    EXPECT_EQ(out->inherited_sent, 4);
    EXPECT_EQ(out->received_connect, 0) << "the kernel now filters sockets passed in";
    EXPECT_EQ(out->denied_got, 2 + 4) << "two connections and the four leaked bytes";
    EXPECT_TRUE(drain(s.id()).empty());
    EXPECT_EQ(counters(s).egress_dropped, 0u);
}

// ---------------------------------------------------------------- addresses

struct AddressCase {
    const char* what;
    const char* target;   // where the probe sends
    const char* landing;  // where the kernel delivers it without Cordon
    uint16_t port;
    const char* tcp_hook;
    const char* udp_hook;
};

// Only 127.0.0.1:8080 (TCP and UDP) is allowed. Each of these names
// another address, or the allowed one in a form no rule names.
const AddressCase kAddressCases[] = {
    {"rest of 127.0.0.0/8", "127.0.0.2", "127.0.0.2", 8080, "connect4", "sendmsg4"},
    {"top of 127.0.0.0/8", "127.255.255.254", "127.255.255.254", 8080, "connect4", "sendmsg4"},
    {"IPv6 loopback", "::1", "::1", 8080, "connect6", "sendmsg6"},
    {"unspecified IPv4 (lands on 127.0.0.1)", "0.0.0.0", "127.0.0.1", 8080, "connect4", "sendmsg4"},
    {"unspecified IPv6 (lands on ::1)", "::", "::1", 8080, "connect6", "sendmsg6"},
    {"v4-mapped denied", "::ffff:127.0.0.2", "127.0.0.2", 8080, "connect6", "sendmsg4"},
    {"v4-mapped unspecified", "::ffff:0.0.0.0", "127.0.0.1", 8080, "connect6", "sendmsg4"},
    {"NAT64 of 127.0.0.2", "64:ff9b::7f00:2", "64:ff9b::7f00:2", 8080, "connect6", "sendmsg6"},
    {"NAT64 of the allowed 127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::7f00:1", 8080, "connect6",
     "sendmsg6"},
    {"local-use NAT64 of 127.0.0.2 (RFC 8215)", "64:ff9b:1::7f00:2", "64:ff9b:1::7f00:2", 8080,
     "connect6", "sendmsg6"},
    {"6to4 of 127.0.0.2", "2002:7f00:2::1", "2002:7f00:2::1", 8080, "connect6", "sendmsg6"},
    {"IPv4-compatible 127.0.0.2 (deprecated)", "::7f00:2", "::7f00:2", 8080, "connect6",
     "sendmsg6"},
    {"IPv4-translated 127.0.0.2 (SIIT)", "::ffff:0:7f00:2", "::ffff:0:7f00:2", 8080, "connect6",
     "sendmsg6"},
    {"cloud metadata", "169.254.169.254", "169.254.169.254", 80, "connect4", "sendmsg4"},
    {"cloud metadata, IPv6", "fd00:ec2::254", "fd00:ec2::254", 80, "connect6", "sendmsg6"},
    {"TEST-NET-1", "192.0.2.1", "192.0.2.1", 8080, "connect4", "sendmsg4"},
    {"TEST-NET-2", "198.51.100.1", "198.51.100.1", 8080, "connect4", "sendmsg4"},
    {"TEST-NET-3", "203.0.113.1", "203.0.113.1", 8080, "connect4", "sendmsg4"},
    {"IPv6 documentation", "2001:db8::1", "2001:db8::1", 8080, "connect6", "sendmsg6"},
};

struct Attempts {
    int tcp = -1;  // 0 or the errno
    int udp = -1;
    int connections = -1;  // what the listeners at the landing address got
    int datagrams = -1;
};

// Both attempts, then what reached the landing address.
void attempt_both(const AddressCase& c, int tcp_server, int udp_server, Attempts* out) {
    out->tcp = tcp_connect(c.target, c.port);
    out->udp = udp_sendto(c.target, c.port);
    out->connections = connections_waiting(tcp_server);
    out->datagrams = datagrams_waiting(udp_server);
}

// Puts the landing address on lo unless lo has it already.
bool ensure_landing(const std::string& landing) {
    if (landing.rfind("127.", 0) == 0 || landing == "::1") return true;
    return add_usable_address(landing);
}

TEST_F(NetfilterPathsTest, EveryOtherFormOfAnAddressIsDeniedAndReported) {
    const auto& s = make_session(
        "s", {rule("127.0.0.1", 128, 8080, 8080, CORDON_PROTO_TCP | CORDON_PROTO_UDP)});
    for (const auto& c : kAddressCases) {
        SCOPED_TRACE(std::string(c.what) + ": " + c.target);
        Shared<Attempts> outside, inside;
        ASSERT_TRUE(outside && inside);
        int tcp_server = -1, udp_server = -1;
        auto r = run_probe(
            s.path(), {},
            [&] {
                attempt_both(c, tcp_server, udp_server, &*inside);
                return 0;
            },
            [&] {
                if (!ensure_landing(c.landing)) _exit(kProbeSetupFailed);
                bind_tcp_and_udp(c.landing, c.port, tcp_server, udp_server);
                attempt_both(c, tcp_server, udp_server, &*outside);
            });
        ASSERT_EQ(r.status, 0);
        EXPECT_EQ(outside->tcp, 0) << "without Cordon: " << strerror(outside->tcp);
        EXPECT_EQ(outside->udp, 0) << "without Cordon: " << strerror(outside->udp);
        EXPECT_EQ(outside->connections, 1);
        EXPECT_EQ(outside->datagrams, 1);
        EXPECT_EQ(inside->tcp, EPERM) << strerror(inside->tcp);
        EXPECT_EQ(inside->udp, EPERM) << strerror(inside->udp);
        EXPECT_EQ(inside->connections, 0);
        EXPECT_EQ(inside->datagrams, 0);
        auto events = drain(s.id());
        ASSERT_EQ(events.size(), 2u);
        const std::pair<const char*, const char*> expected[] = {{c.tcp_hook, "tcp"},
                                                                {c.udp_hook, "udp"}};
        for (int i = 0; i < 2; i++) {
            EXPECT_EQ(events[i].hook, expected[i].first);
            EXPECT_EQ(events[i].protocol, expected[i].second);
            EXPECT_EQ(events[i].address, ip(c.target)) << profile::format_ip(events[i].address);
            EXPECT_EQ(events[i].port, c.port);
            EXPECT_EQ(events[i].reason, "no-rule");
            EXPECT_EQ(events[i].pid, static_cast<uint32_t>(r.pid));
        }
    }
}

// An address whose family is not the socket's: an IPv6 UDP socket sending
// to a sockaddr_in goes to udp_sendmsg (udpv6_sendmsg), and an IPv4 UDP
// socket takes AF_UNSPEC as AF_INET (udp_sendmsg). Both reach sendmsg4.
TEST_F(NetfilterPathsTest, AddressOfAnotherFamilyMeetsTheIpv4Hook) {
    const auto& s = make_session("s", {rule("127.0.0.1", 128, 8080, 8080, CORDON_PROTO_UDP)});
    struct Record {
        int outside[2] = {-1, -1};
        int inside[2] = {-1, -1};
        int outside_got = -1;
        int inside_got = -1;
    };
    Shared<Record> rec;
    ASSERT_TRUE(rec);
    int server = -1;
    auto send_both = [](int* results) {
        SockAddr to = sockaddr_of("127.0.0.2", 8080);
        int v6 = socket(AF_INET6, SOCK_DGRAM, 0);
        results[0] = errno_or_zero(sendto(v6, "x", 1, 0, to.get(), to.len));
        reinterpret_cast<sockaddr_in*>(&to.storage)->sin_family = AF_UNSPEC;
        int v4 = socket(AF_INET, SOCK_DGRAM, 0);
        results[1] = errno_or_zero(sendto(v4, "x", 1, 0, to.get(), to.len));
        close(v6);
        close(v4);
    };
    auto r = run_probe(
        s.path(), {},
        [&] {
            send_both(rec->inside);
            rec->inside_got = datagrams_waiting(server);
            return 0;
        },
        [&] {
            server = bound_socket("127.0.0.2", 8080, SOCK_DGRAM);
            if (server < 0) _exit(kProbeSetupFailed);
            send_both(rec->outside);
            rec->outside_got = datagrams_waiting(server);
        });
    ASSERT_EQ(r.status, 0);
    EXPECT_EQ(rec->outside[0], 0) << strerror(rec->outside[0]);
    EXPECT_EQ(rec->outside[1], 0) << strerror(rec->outside[1]);
    EXPECT_EQ(rec->outside_got, 2);
    EXPECT_EQ(rec->inside[0], EPERM);
    EXPECT_EQ(rec->inside[1], EPERM);
    EXPECT_EQ(rec->inside_got, 0);
    auto events = drain(s.id());
    ASSERT_EQ(events.size(), 2u);
    for (const auto& d : events) {
        EXPECT_EQ(d.hook, "sendmsg4");
        EXPECT_EQ(d.address, ip("127.0.0.2"));
        EXPECT_EQ(d.port, 8080);
    }
}

// The allowed endpoint itself, written both ways, still works: the denials
// above are about the address, not about the probe.
TEST_F(NetfilterPathsTest, TheAllowedAddressItselfConnects) {
    const auto& s = make_session(
        "s", {rule("127.0.0.1", 128, 8080, 8080, CORDON_PROTO_TCP | CORDON_PROTO_UDP)});
    for (const char* target : {"127.0.0.1", "::ffff:127.0.0.1"}) {
        SCOPED_TRACE(target);
        AddressCase c{"allowed", target, "127.0.0.1", 8080, "", ""};
        Shared<Attempts> inside;
        ASSERT_TRUE(inside);
        int tcp_server = -1, udp_server = -1;
        auto r = run_probe(
            s.path(), {},
            [&] {
                attempt_both(c, tcp_server, udp_server, &*inside);
                return 0;
            },
            [&] { bind_tcp_and_udp("127.0.0.1", 8080, tcp_server, udp_server); });
        ASSERT_EQ(r.status, 0);
        EXPECT_EQ(inside->tcp, 0) << strerror(inside->tcp);
        EXPECT_EQ(inside->udp, 0) << strerror(inside->udp);
        EXPECT_EQ(inside->connections, 1);
        EXPECT_EQ(inside->datagrams, 1);
        EXPECT_TRUE(drain(s.id()).empty());
    }
}

}  // namespace
}  // namespace cordon::netfilter
