// SPDX-License-Identifier: Apache-2.0
// Paths out, end to end (issue 3, items 2 and 5): what an agent run by the
// real agent-run sees when it tries a way around the network filter, what
// agent-run refuses to hand it, and how a flood of denials reaches the
// audit log. Destinations outside loopback are tried only from a network
// namespace the test makes, with only lo up.
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstdio>

#include <numeric>

#include "agent_run_fixture.h"
#include "audit/rate_limit.h"
#include "send_fd.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

// A connected TCP or UDP pair on loopback, made outside any session: what
// inetd or a systemd socket unit with Accept=yes hands a program as stdio.
struct InetPair {
    UniqueFd ours;
    UniqueFd theirs;

    static InetPair make(const char* address, int type) {
        InetPair p;
        auto listener = Listener::on(address, type);
        bool v6 = std::string(address).find(':') != std::string::npos;
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        getsockname(listener.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
        p.theirs.reset(::socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0));
        if (::connect(p.theirs.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return p;
        if (type == SOCK_STREAM)
            p.ours.reset(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
        else
            p.ours = std::move(listener.fd);
        return p;
    }
};

// Reads what arrives on fd until EOF or a second of quiet.
std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 1000) != 1) break;
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, n);
    }
    return out;
}

// Runs a shell command outside any session and returns its stdout.
std::string shell_output(const std::string& command) {
    std::string out;
    FILE* f = ::popen(command.c_str(), "r");
    if (!f) return "popen failed";
    char buf[256];
    while (size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
    ::pclose(f);
    return out;
}

// ---------------------------------------------------------------- inherited stdio

// The BPF programs never see a socket made outside Cordon's subtree
// (netfilter_paths_test.cpp shows it): agent-run refuses one as stdio.
TEST_F(AgentRunTest, InetSocketAsStdinOrStdoutIsRefused) {
    auto profile = write_profile({}, {});
    struct Case {
        int fd;
        const char* address;
        int type;
        const char* named;
    };
    for (Case c : {Case{0, "127.0.0.1", SOCK_STREAM, "stdin (fd 0) is an AF_INET socket"},
                   Case{1, "::1", SOCK_DGRAM, "stdout (fd 1) is an AF_INET6 socket"},
                   Case{0, "::1", SOCK_STREAM, "stdin (fd 0) is an AF_INET6 socket"}}) {
        SCOPED_TRACE(c.named);
        auto pair = InetPair::make(c.address, c.type);
        ASSERT_TRUE(pair.theirs.valid());
        stdio_[c.fd] = pair.theirs.get();
        auto r = run({"--profile", profile, "--", "sh", "-c", "echo started"});
        stdio_[c.fd] = -1;
        EXPECT_EQ(r.exit_code, 125) << r.err;
        EXPECT_NE(r.err.find(c.named), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("a pipe, a file or a Unix socket"), std::string::npos) << r.err;
        EXPECT_EQ(r.out.find("started"), std::string::npos) << "the agent ran";
    }
    EXPECT_FALSE(fs::exists(audit_log_)) << "a refused launch must start no session";
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// The message reaches whoever is at the other end of a socket stderr.
TEST_F(AgentRunTest, InetSocketAsStderrIsRefusedAndToldThere) {
    auto profile = write_profile({}, {});
    auto pair = InetPair::make("127.0.0.1", SOCK_STREAM);
    ASSERT_TRUE(pair.theirs.valid());
    stdio_[2] = pair.theirs.get();
    pid_t pid = start({"--profile", profile, "--", "sh", "-c", "echo started"});
    stdio_[2] = -1;
    pair.theirs.reset();  // agent-run has its own copy
    auto r = wait(pid);
    std::string told = read_all(pair.ours.get());
    EXPECT_EQ(r.exit_code, 125) << told;
    EXPECT_NE(told.find("stderr (fd 2) is an AF_INET socket"), std::string::npos) << told;
    EXPECT_NE(told.find("2> FILE"), std::string::npos) << told;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// --check runs every launch check, this one too.
TEST_F(AgentRunTest, CheckRefusesInetStdioToo) {
    auto profile = write_profile({}, {});
    auto pair = InetPair::make("127.0.0.1", SOCK_STREAM);
    stdio_[0] = pair.theirs.get();
    auto r = run({"--check", "--profile", profile});
    stdio_[0] = -1;
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("stdin (fd 0) is an AF_INET socket"), std::string::npos) << r.err;
}

TEST_F(AgentRunTest, UnixSocketAndPipeAsStdioAreFine) {
    auto profile = write_profile({}, {});
    int unix_pair[2], pipe_fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, unix_pair), 0);
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    UniqueFd ours(unix_pair[0]), theirs(unix_pair[1]), out_read(pipe_fds[0]),
        out_write(pipe_fds[1]);
    ASSERT_EQ(::write(ours.get(), "hello\n", 6), 6);
    ASSERT_EQ(::shutdown(ours.get(), SHUT_WR), 0);
    stdio_[0] = theirs.get();
    stdio_[1] = out_write.get();
    pid_t pid = start({"--profile", profile, "--", "sh", "-c", "read x; echo \"got $x\""});
    stdio_[0] = stdio_[1] = -1;
    theirs.reset();
    out_write.reset();
    auto r = wait(pid);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_all(out_read.get()), "got hello\n") << r.err;
}

// A Unix socket at `path`, open to every user, that hands each client one
// TCP socket made here, outside any session, over SCM_RIGHTS: what any
// process outside Cordon's subtree can do for an agent that reaches it.
struct SocketDealer {
    UniqueFd listener;
    std::thread thread;

    explicit SocketDealer(const std::string& path) {
        listener.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
        if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::chmod(path.c_str(), 0777) != 0 || ::listen(listener.get(), 1) != 0)
            return;
        thread = std::thread([fd = listener.get()] { deal_one(fd); });
    }
    ~SocketDealer() {
        ::shutdown(listener.get(), SHUT_RDWR);
        if (thread.joinable()) thread.join();
    }

    static void deal_one(int listener_fd) {
        UniqueFd client(::accept4(listener_fd, nullptr, nullptr, SOCK_CLOEXEC));
        UniqueFd inet(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!client.valid() || !inet.valid()) return;
        (void)send_fd(client.get(), inet.get());
    }
};

// A process outside Cordon's subtree can hand an agent an inet socket over a
// Unix socket (SCM_RIGHTS), and the kernel runs no cgroup program for a
// socket made outside the subtree. So the agent may not connect to Unix
// sockets at all (cgroup/connect_unix): the dealer never hears from it,
// and the attempt is on the record. (A process outside that connects to a
// socket the agent listens on is not stopped: README, known limits.)
TEST_F(AgentRunTest, UnixConnectToAHostServiceIsRefusedSoNoSocketCanBeReceived) {
    auto denied = Listener::on("127.0.0.2");
    auto profile = write_profile({}, {"127.0.0.2:" + std::to_string(denied.port)});
    std::string path = (dir_ / "dealer.sock").string();
    SocketDealer dealer(path);
    ASSERT_TRUE(dealer.thread.joinable()) << "cannot listen on " << path;
    std::string script =
        "import socket,errno\n"
        "u=socket.socket(socket.AF_UNIX)\n"
        "try: u.connect('" +
        path +
        "'); print('connected')\n"
        "except OSError as e: print(errno.errorcode[e.errno])\n"
        "d=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "try: d.sendto(b'x', '\\0cordon-test-abstract'); print('sent')\n"
        "except OSError as e: print(errno.errorcode[e.errno])\n"
        "a,b=socket.socketpair(); a.send(b'p'); print(b.recv(1).decode())\n";
    auto r = run({"--profile", profile, "--", "python3", "-c", script});

    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "EPERM\nEPERM\np\n") << r.err;
    auto denials = events_named(audit_events(), "net.deny");
    std::vector<json> unix_denials;
    for (const auto& d : denials)
        if (d["reason"] == "unix-socket") unix_denials.push_back(d);
    ASSERT_GE(unix_denials.size(), 2u) << read_text(audit_log_);
    EXPECT_EQ(unix_denials[0]["hook"], "connect_unix");
    EXPECT_EQ(unix_denials[0]["attempts"], 1);
    EXPECT_EQ(unix_denials[0]["destination"], nullptr);
    EXPECT_EQ(unix_denials[0]["comm"], "python3");
    EXPECT_EQ(unix_denials.back()["hook"], "sendmsg_unix");
    auto end = events_named(audit_events(), "session.end");
    ASSERT_EQ(end.size(), 1u);
    EXPECT_GE(end[0]["unixDenied"].get<int>(), 2);
}

// ---------------------------------------------------------------- io_uring

// io_uring_setup(2) by number (425 on every architecture since 5.1), with
// ctypes, printing 'ok' or the errno's name.
const char* kIoUringSetup =
    "import ctypes,errno,os\n"
    "libc=ctypes.CDLL(None,use_errno=True)\n"
    "params=ctypes.create_string_buffer(120)\n"
    "fd=libc.syscall(425,4,params)\n"
    "print('ok' if fd>=0 else errno.errorcode[ctypes.get_errno()])\n";

// io_uring could carry connects past a filter that watched only system
// calls; the agent-default seccomp baseline refuses io_uring_setup, so an
// agent never gets a ring. (The network hooks still see io_uring's
// connects: netfilter_paths_test.cpp shows that too.)
TEST_F(AgentRunTest, IoUringSetupIsRefusedBySeccomp) {
    // Without agent-run, the same program gets a ring on this host.
    write_text(dir_ / "uring.py", kIoUringSetup);
    auto outside = shell_output("python3 " + (dir_ / "uring.py").string());
    ASSERT_EQ(outside, "ok\n") << "io_uring is off on this host";

    auto profile = write_profile({}, {});
    auto r = run({"--profile", profile, "--", "python3", "-c", kIoUringSetup});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "ENOSYS\n");
}

// ---------------------------------------------------------------- addresses and ping

// Shell commands that set up a new network namespace: only lo up, the
// given addresses on lo, ping sockets open to every group.
std::string netns_setup(const std::vector<std::string>& addresses) {
    std::string setup = "ip link set lo up";
    for (const auto& a : addresses) setup += " && ip addr add " + a + " dev lo";
    return setup + " && echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range";
}

// Starts agent-run in a network namespace of its own (see netns_setup).
void in_own_netns(std::vector<std::string>& wrapper, const std::vector<std::string>& addresses) {
    wrapper = {"/usr/bin/unshare",
               "--net",
               "--",
               "/bin/sh",
               "-c",
               netns_setup(addresses) + " && exec \"$@\"",
               "sh"};
}

// Only 127.0.0.1:18080 is allowed; the agent tries each other form of an
// address over TCP, in the namespace where those addresses are on lo.
TEST_F(AgentRunTest, EmbeddedAndSpecialAddressesAreDeniedWithDestinationAndHook) {
    in_own_netns(wrapper_, {"64:ff9b::7f00:2/128", "2002:7f00:2::1/128", "169.254.169.254/32",
                            "fd00:ec2::254/128", "192.0.2.1/32", "2001:db8::1/128"});
    auto profile = write_profile({"127.0.0.1:18080"}, {"127.0.0.2:18080"});
    struct Case {
        const char* target;
        const char* destination;  // as net.deny reports it
        const char* hook;
    };
    const std::vector<Case> cases = {
        {"127.0.0.2", "127.0.0.2", "connect4"},
        {"::ffff:127.0.0.2", "127.0.0.2", "connect6"},
        {"64:ff9b::7f00:2", "64:ff9b::7f00:2", "connect6"},
        {"2002:7f00:2::1", "2002:7f00:2::1", "connect6"},
        {"0.0.0.0", "0.0.0.0", "connect4"},
        {"::", "::", "connect6"},
        {"::1", "::1", "connect6"},
        {"169.254.169.254", "169.254.169.254", "connect4"},
        {"fd00:ec2::254", "fd00:ec2::254", "connect6"},
        {"192.0.2.1", "192.0.2.1", "connect4"},
        {"2001:db8::1", "2001:db8::1", "connect6"},
    };
    // The allowed endpoint first: refused by nobody listening, not by Cordon.
    std::string script = py_connect("127.0.0.1", 18080);
    for (const auto& c : cases) script += "\n" + py_connect(c.target, 18080);

    auto r = run({"--profile", profile, "--", "python3", "-c", script});

    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string expected = "ECONNREFUSED\n";
    for (size_t i = 0; i < cases.size(); i++) expected += "EPERM\n";
    EXPECT_EQ(r.out, expected);
    auto denials = events_named(audit_events(), "net.deny");
    ASSERT_EQ(denials.size(), cases.size()) << read_text(audit_log_);
    for (size_t i = 0; i < cases.size(); i++) {
        SCOPED_TRACE(cases[i].target);
        EXPECT_EQ(denials[i]["destination"], cases[i].destination);
        EXPECT_EQ(denials[i]["hook"], cases[i].hook);
        EXPECT_EQ(denials[i]["port"], 18080);
        EXPECT_EQ(denials[i]["protocol"], "tcp");
        EXPECT_EQ(denials[i]["reason"], "no-rule");
        EXPECT_EQ(denials[i]["comm"], "python3");
        EXPECT_EQ(denials[i]["tool"], i < 2 ? json("denied_tool") : json(nullptr));
    }
}

// A ping socket sends ICMP with no connect or sendmsg hook: refused at
// socket(). The namespace opens ping sockets to every group, so that the
// refusal is Cordon's and not ping_group_range's (which says EACCES).
TEST_F(AgentRunTest, PingSocketIsRefused) {
    in_own_netns(wrapper_, {});
    auto profile = write_profile({"127.0.0.1:18080"}, {});
    std::string script =
        "import socket,errno\n"
        "for fam,proto,echo,to in [(socket.AF_INET,socket.IPPROTO_ICMP,8,'127.0.0.2'),"
        "(socket.AF_INET6,socket.IPPROTO_ICMPV6,128,'::1')]:\n"
        " try:\n"
        "  s=socket.socket(fam,socket.SOCK_DGRAM,proto)\n"
        "  s.sendto(bytes([echo,0,0,0,0,0,0,1]),(to,0)); print('ok')\n"
        " except OSError as e: print(errno.errorcode[e.errno])\n";
    // Without agent-run, in the same kind of namespace, the echoes go.
    write_text(dir_ / "ping.py", script);
    auto outside = shell_output("unshare --net sh -c \"" + netns_setup({}) + " && python3 " +
                                (dir_ / "ping.py").string() + "\"");
    ASSERT_EQ(outside, "ok\nok\n");

    auto r = run({"--profile", profile, "--", "python3", "-c", script});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "EPERM\nEPERM\n");
    auto denials = events_named(audit_events(), "net.deny");
    ASSERT_EQ(denials.size(), 2u) << read_text(audit_log_);
    for (const auto& d : denials) {
        EXPECT_EQ(d["hook"], "sock_create");
        EXPECT_EQ(d["reason"], "socket-type");
        EXPECT_EQ(d["destination"], nullptr);
        EXPECT_EQ(d["comm"], "python3");
    }
}

// ---------------------------------------------------------------- sendmmsg, Fast Open

// Datagrams waiting on a UDP listener, as their payloads.
std::vector<std::string> datagrams(const Listener& l) {
    std::vector<std::string> out;
    char buf[256];
    for (;;) {
        pollfd p{l.fd.get(), POLLIN, 0};
        if (::poll(&p, 1, 200) != 1) break;
        ssize_t n = ::recv(l.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) break;
        out.emplace_back(buf, n);
    }
    return out;
}

// A batch of four datagrams whose third is denied: the agent sees the
// first call send two and stop, the denied one fail alone with EPERM, the
// last go; the listeners get exactly the allowed ones.
TEST_F(AgentRunTest, SendmmsgStopsAtTheDeniedDatagram) {
    auto a = Listener::on("127.0.0.1", SOCK_DGRAM);
    auto b = Listener::on("127.0.0.1", SOCK_DGRAM);
    auto denied = Listener::on("127.0.0.2", SOCK_DGRAM);
    auto profile = write_profile(
        {"udp://127.0.0.1:" + std::to_string(a.port), "udp://127.0.0.1:" + std::to_string(b.port)},
        {"udp://127.0.0.2:" + std::to_string(denied.port)});
    auto to = [](const Listener& l, const char* host) {
        return std::string(host) + ":" + std::to_string(l.port);
    };
    auto r =
        run({"--profile", profile, "--", agent_helpers_dir() + "/nf_sendmmsg", to(a, "127.0.0.1"),
             to(b, "127.0.0.1"), to(denied, "127.0.0.2"), to(a, "127.0.0.1")});

    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "sent 2\nEPERM\nsent 1\n");
    std::string first = to(a, "127.0.0.1");
    EXPECT_EQ(datagrams(a), (std::vector<std::string>{first, first}));
    EXPECT_EQ(datagrams(b), (std::vector<std::string>{to(b, "127.0.0.1")}));
    EXPECT_TRUE(datagrams(denied).empty()) << "a denied datagram arrived";
    // Two denials: the first call met the denied datagram too (the kernel
    // then returns the count sent and drops the error), the second alone.
    auto denials = events_named(audit_events(), "net.deny");
    ASSERT_EQ(denials.size(), 2u) << read_text(audit_log_);
    for (const auto& d : denials) {
        EXPECT_EQ(d["destination"], "127.0.0.2");
        EXPECT_EQ(d["port"], denied.port);
        EXPECT_EQ(d["protocol"], "udp");
        EXPECT_EQ(d["hook"], "sendmsg4");
        EXPECT_EQ(d["tool"], "denied_tool");
        EXPECT_EQ(d["comm"], "nf_sendmmsg");
    }
}

// sendto(MSG_FASTOPEN) connects from sendto: the connect hook refuses it.
TEST_F(AgentRunTest, FastOpenToADeniedAddressFailsWithEperm) {
    auto denied = Listener::on("127.0.0.2");
    auto profile = write_profile({}, {"127.0.0.2:" + std::to_string(denied.port)});
    std::string script =
        "import socket,errno\n"
        "s=socket.socket()\n"
        "try: s.sendto(b'x',socket.MSG_FASTOPEN,('127.0.0.2'," +
        std::to_string(denied.port) +
        ")); print('ok')\n"
        "except OSError as e: print(errno.errorcode[e.errno])\n";
    auto r = run({"--profile", profile, "--", "python3", "-c", script});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "EPERM\n");
    pollfd p{denied.fd.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 200), 0) << "a connection reached the denied listener";
    auto denials = events_named(audit_events(), "net.deny");
    ASSERT_EQ(denials.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(denials[0]["destination"], "127.0.0.2");
    EXPECT_EQ(denials[0]["hook"], "connect4");
    EXPECT_EQ(denials[0]["protocol"], "tcp");
}

// ---------------------------------------------------------------- denial floods

// A python3 agent that makes `n` denied connects to 127.0.0.2:port and
// prints how many failed with EPERM.
std::string flood(int n, uint16_t port) {
    return "s=socket.socket()\nn=0\nfor i in range(" + std::to_string(n) +
           "):\n try: s.connect(('127.0.0.2'," + std::to_string(port) +
           "))\n except OSError as e: n+=e.errno==errno.EPERM\nprint(n, flush=True)\n";
}

// What the audit log says of a session's denials.
struct DenialTally {
    size_t reported = 0;      // net.deny events
    uint64_t suppressed = 0;  // sum of net.deny.suppressed counts
    size_t suppressed_events = 0;
    json end;
};

DenialTally tally(const std::vector<json>& events) {
    DenialTally t;
    t.reported = events_named(events, "net.deny").size();
    for (const auto& e : events_named(events, "net.deny.suppressed")) {
        EXPECT_GT(e["count"].get<uint64_t>(), 0u) << e.dump();
        t.suppressed += e["count"].get<uint64_t>();
        t.suppressed_events++;
    }
    auto ends = events_named(events, "session.end");
    EXPECT_EQ(ends.size(), 1u);
    if (!ends.empty()) t.end = ends[0];
    return t;
}

// At most the burst plus what the rate refills over the session's life.
size_t denial_budget(const json& end) {
    uint64_t seconds = end["durationMs"].get<uint64_t>() / 1000 + 1;
    return audit::kDenialBurst + audit::kDenialsPerSecond * seconds;
}

// 2,000 denied connects: every one fails, the log shows no more than the
// budget, and reported + suppressed (+ lost in a full ring buffer, if any)
// is exactly 2,000.
TEST_F(AgentRunTest, DenialFloodIsRateLimitedAndEveryDenialCounted) {
    auto denied = Listener::on("127.0.0.2");
    auto profile = write_profile({}, {"127.0.0.2:" + std::to_string(denied.port)});
    auto r = run({"--profile", profile, "--", "python3", "-c",
                  "import socket,errno\n" + flood(2000, denied.port)});

    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "2000\n");
    auto t = tally(audit_events());
    uint64_t lost = t.end["denialsLost"].get<uint64_t>();
    EXPECT_GE(t.reported, audit::kDenialBurst);
    EXPECT_LE(t.reported, denial_budget(t.end)) << t.end.dump();
    EXPECT_GE(t.suppressed_events, 1u);
    EXPECT_EQ(t.reported + t.suppressed + lost, 2000u)
        << t.reported << " reported, " << t.suppressed << " suppressed, " << lost << " lost";
    EXPECT_EQ(t.end["denialsSuppressed"], t.suppressed);
}

// Held-back denials are reported while the session runs, not only at its
// end: the agent floods, then waits on stdin until the test has seen a
// net.deny.suppressed event, then floods again and exits.
TEST_F(AgentRunTest, SuppressedDenialsAreReportedWhileTheSessionRuns) {
    auto denied = Listener::on("127.0.0.2");
    auto profile = write_profile({}, {"127.0.0.2:" + std::to_string(denied.port)});
    int go[2];
    ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
    UniqueFd go_read(go[0]), go_write(go[1]);
    stdio_[0] = go_read.get();
    std::string script = "import socket,errno,sys\n" + flood(1000, denied.port) +
                         "sys.stdin.readline()\n" + flood(1000, denied.port);
    pid_t pid = start({"--profile", profile, "--", "python3", "-c", script});
    stdio_[0] = -1;
    go_read.reset();

    std::vector<json> seen;
    for (int i = 0; i < 1500 && events_named(seen, "net.deny.suppressed").empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        seen = audit_events();
    }
    auto mid = events_named(seen, "net.deny.suppressed");
    ASSERT_EQ(mid.size(), 1u) << read_text(audit_log_);
    EXPECT_TRUE(events_named(seen, "session.end").empty()) << "reported only at the end";
    EXPECT_LE(mid[0]["count"].get<uint64_t>(), 1000u - audit::kDenialBurst);
    ASSERT_EQ(::write(go_write.get(), "\n", 1), 1);
    auto r = wait(pid);

    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "1000\n1000\n");
    auto t = tally(audit_events());
    uint64_t lost = t.end["denialsLost"].get<uint64_t>();
    EXPECT_GE(t.suppressed_events, 2u) << "one while paused, one at the end";
    EXPECT_EQ(t.reported + t.suppressed + lost, 2000u);
    EXPECT_EQ(t.end["denialsSuppressed"], t.suppressed);
}

// Below the budget nothing is held back, and session.end says so.
TEST_F(AgentRunTest, FewDenialsAreAllReported) {
    auto denied = Listener::on("127.0.0.2");
    auto profile = write_profile({}, {"127.0.0.2:" + std::to_string(denied.port)});
    auto r = run({"--profile", profile, "--", "python3", "-c",
                  "import socket,errno\n" + flood(audit::kDenialBurst, denied.port)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto t = tally(audit_events());
    EXPECT_EQ(t.reported, audit::kDenialBurst);
    EXPECT_EQ(t.suppressed_events, 0u);
    EXPECT_EQ(t.end["denialsSuppressed"], 0);
}

// ---------------------------------------------------------------- IPv6 prefixes over IPv4

// IPv4 lives in the trie as v4-mapped IPv6, so an IPv6 endpoint wide enough
// to cover ::ffff:0:0/96 ("[::/0]:443", meant as "any IPv6 host on 443")
// would open IPv4 too, loopback and 169.254.169.254 included, but for the
// stop entries the rule folding adds: [::/0] reaches ::1, not 127.0.0.2.
TEST_F(AgentRunTest, Ipv6ZeroPrefixDoesNotAllowIpv4) {
    auto v4 = Listener::on("127.0.0.2");
    auto v6 = Listener::on("::1");
    ASSERT_NE(v4.port, 0);
    ASSERT_NE(v6.port, 0);
    std::string ports = std::to_string(std::min(v4.port, v6.port)) + "-" +
                        std::to_string(std::max(v4.port, v6.port));
    auto profile = write_profile({"[::/0]:" + ports}, {});
    std::string script = py_connect("::1", v6.port) + "\n" + py_connect("127.0.0.2", v4.port) +
                         "\n" + py_connect("::ffff:127.0.0.2", v4.port);
    auto r = run({"--profile", profile, "--", "python3", "-c", script});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "ok\nEPERM\nEPERM\n") << "an IPv6 rule let IPv4 connects through";
}

}  // namespace
}  // namespace cordon::testing
