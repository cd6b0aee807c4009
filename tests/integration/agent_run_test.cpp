// SPDX-License-Identifier: Apache-2.0
// End to end: the real agent-run binary, real agents (python3, sh, curl,
// unshare), the real kernel. Each test asserts what the agent saw, what
// agent-run returned, what the audit log says, and that nothing is left.
#include <pwd.h>

#include "agent_run_fixture.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

TEST_F(AgentRunTest, AllowedConnectSucceedsAndDeniedFailsWithEperm) {
    auto allowed = Listener::on("127.0.0.1");
    auto denied = Listener::on("127.0.0.2");
    ASSERT_NE(allowed.port, 0);
    ASSERT_NE(denied.port, 0);
    auto profile = write_profile({"127.0.0.1:" + std::to_string(allowed.port)},
                                 {"127.0.0.2:" + std::to_string(denied.port)});
    std::string script =
        py_connect("127.0.0.1", allowed.port) + "\n" + py_connect("127.0.0.2", denied.port);

    auto r = run({"--profile", profile, "--", "python3", "-c", script});

    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "ok\nEPERM\n");
    auto events = audit_events();
    auto denials = events_named(events, "net.deny");
    ASSERT_EQ(denials.size(), 1u) << read_text(audit_log_);
    const auto& d = denials[0];
    EXPECT_EQ(d["agentId"], "test-agent");
    EXPECT_EQ(d["agentType"], "test");
    EXPECT_EQ(d["version"], "0.0.1");
    EXPECT_EQ(d["destination"], "127.0.0.2");
    EXPECT_EQ(d["port"], denied.port);
    EXPECT_EQ(d["protocol"], "tcp");
    EXPECT_EQ(d["hook"], "connect4");
    EXPECT_EQ(d["comm"], "python3");
    EXPECT_EQ(d["tool"], "denied_tool");
    EXPECT_GT(d["pid"].get<int>(), 0);
    auto start = events_named(events, "session.start");
    ASSERT_EQ(start.size(), 1u);
    EXPECT_EQ(start[0]["session"], d["session"]);
    EXPECT_EQ(start[0]["toolsAllowed"], json::array({"allowed_tool"}));
    auto end = events_named(events, "session.end");
    ASSERT_EQ(end.size(), 1u);
    EXPECT_EQ(end[0]["exitStatus"], 0);
    EXPECT_EQ(end[0]["reason"], "exit");
    EXPECT_EQ(end[0]["egressDropped"], 0);
    EXPECT_EQ(end[0]["denialsLost"], 0);
    // The allowed connect's handshake and close, all to one destination.
    EXPECT_GT(end[0]["bytesSent"].get<uint64_t>(), 0u);
    EXPECT_GE(end[0]["packetsSent"].get<uint64_t>(), 2u);
    EXPECT_EQ(end[0]["unattributedBytes"], 0);
    EXPECT_EQ(end[0]["budgetBytes"], nullptr);
    EXPECT_EQ(end[0]["budgetExceeded"], false);
    ASSERT_EQ(end[0]["destinations"].size(), 1u) << end[0].dump();
    const auto& dest = end[0]["destinations"][0];
    EXPECT_EQ(dest["destination"], "127.0.0.1");
    EXPECT_EQ(dest["port"], allowed.port);
    EXPECT_EQ(dest["protocol"], "tcp");
    EXPECT_EQ(dest["bytes"], end[0]["bytesSent"]);
    EXPECT_EQ(dest["packets"], end[0]["packetsSent"]);
    EXPECT_EQ(leftover_cgroups(), 0u);
    EXPECT_EQ(leftover_sessions(), 0u);
}

// session.egressBudget reaches the kernel: the agent's stream to an allowed
// listener stops after the budget, and the audit log says so.
TEST_F(AgentRunTest, EgressBudgetFromTheProfileCutsTheAgentsStream) {
    auto allowed = Listener::on("127.0.0.1");
    ASSERT_NE(allowed.port, 0);
    auto profile = write_profile({"127.0.0.1:" + std::to_string(allowed.port)}, {}, "5m",
                                 {{"session", {{"egressBudget", "64K"}}}});
    std::string script =
        "import socket,time\n"
        "s=socket.create_connection(('127.0.0.1'," +
        std::to_string(allowed.port) +
        "))\n"
        "s.setblocking(False)\n"
        "sent=0\n"
        "end=time.time()+2\n"
        "while sent<1048576 and time.time()<end:\n"
        " try: sent+=s.send(b'x'*65536)\n"
        " except BlockingIOError: time.sleep(0.01)\n"
        "print('done')";

    auto r = run({"--profile", profile, "--", "python3", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "done\n");
    UniqueFd conn(::accept4(allowed.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    ASSERT_TRUE(conn.valid()) << "the agent never connected";
    size_t received = 0;
    char buf[65536];
    for (ssize_t n; (n = ::recv(conn.get(), buf, sizeof buf, 0)) > 0;) received += n;
    EXPECT_GT(received, 0u);
    EXPECT_LT(received, 1048576u);

    auto events = audit_events();
    auto denials = events_named(events, "net.deny");
    ASSERT_GE(denials.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(denials[0]["hook"], "egress");
    EXPECT_EQ(denials[0]["reason"], "budget");
    EXPECT_EQ(denials[0]["destination"], "127.0.0.1");
    EXPECT_EQ(denials[0]["port"], allowed.port);
    EXPECT_EQ(denials[0]["drops"], 1);
    EXPECT_EQ(denials[0]["tool"], "allowed_tool");
    auto end = events_named(events, "session.end");
    ASSERT_EQ(end.size(), 1u);
    EXPECT_EQ(end[0]["budgetBytes"], 65536);
    EXPECT_EQ(end[0]["budgetExceeded"], true);
    EXPECT_GE(end[0]["bytesSent"].get<uint64_t>(), 65536u);
    EXPECT_GE(end[0]["egressDropped"].get<uint64_t>(), 1u);
}

// --max-rules sizes the rules map when agent-run loads the programs; a
// session that does not fit is refused before anything runs.
TEST_F(AgentRunTest, SessionThatOverflowsMaxRulesIsRefused) {
    std::string name = cgroup_name_ + "-tiny";
    std::string pins = pin_dir_ + "-tiny";
    auto profile = write_profile({"127.0.0.1:1000", "127.0.0.2:1000"}, {});
    auto r = run({"--profile", profile, "--cgroup", name, "--bpf-pin-dir", pins, "--max-rules", "1",
                  "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("to the rules map"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("the rules map is full (size 1)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("raise --max-rules"), std::string::npos) << r.err;
    EXPECT_TRUE(events_named(audit_events(), "session.start").empty());
    // The refusal is on the record, not only on agent-run's stderr.
    auto errors = events_named(audit_events(), "session.error");
    ASSERT_EQ(errors.size(), 1u) << read_text(audit_log_);
    EXPECT_NE(errors[0]["error"].get<std::string>().find("the rules map is full (size 1)"),
              std::string::npos)
        << errors[0].dump();
    EXPECT_EQ(errors[0]["agentId"], "test-agent");

    auto st = netfilter::Netfilter::detach(pins);
    EXPECT_TRUE(st) << st.error().message();
    std::string root = cgroup_root_.substr(0, cgroup_root_.rfind('/')) + "/" + name;
    if (auto locks = cgroup::OwnerLocks::open(cgroup::owner_lock_dir(run_dir_, name)))
        (void)cgroup::cleanup_orphans(root, *locks);
    EXPECT_EQ(::rmdir(root.c_str()), 0) << root << " left behind: " << strerror(errno);
}

TEST_F(AgentRunTest, DeniedIpv6AndV4MappedAndUdpFailWithEperm) {
    auto allowed = Listener::on("127.0.0.1");
    auto v6 = Listener::on("::1");
    auto udp = Listener::on("127.0.0.2", SOCK_DGRAM);
    auto profile = write_profile({"127.0.0.1:" + std::to_string(allowed.port)}, {});
    std::string script = py_connect("::1", v6.port) + "\n" +
                         py_connect("::ffff:127.0.0.2", allowed.port) + "\n" +
                         py_connect("::ffff:127.0.0.1", allowed.port) + "\n" +
                         py_connect("127.0.0.2", udp.port, true);

    auto r = run({"--profile", profile, "--", "python3", "-c", script});

    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "EPERM\nEPERM\nok\nEPERM\n");
    auto denials = events_named(audit_events(), "net.deny");
    ASSERT_EQ(denials.size(), 3u) << read_text(audit_log_);
    EXPECT_EQ(denials[0]["destination"], "::1");
    EXPECT_EQ(denials[0]["hook"], "connect6");
    EXPECT_EQ(denials[1]["destination"], "127.0.0.2");
    EXPECT_EQ(denials[1]["hook"], "connect6");
    EXPECT_EQ(denials[2]["protocol"], "udp");
    EXPECT_EQ(denials[2]["hook"], "sendmsg4");
    EXPECT_EQ(denials[2]["tool"], nullptr);
}

TEST_F(AgentRunTest, CurlFetchesFromAllowedServerOnly) {
    OneShotHttpServer server;
    auto denied = Listener::on("127.0.0.2");
    auto profile = write_profile({"127.0.0.1:" + std::to_string(server.listener.port)},
                                 {"127.0.0.2:" + std::to_string(denied.port)});
    std::string allowed_url = "http://127.0.0.1:" + std::to_string(server.listener.port) + "/";
    std::string denied_url = "http://127.0.0.2:" + std::to_string(denied.port) + "/";

    auto r = run({"--profile", profile, "--", "sh", "-c",
                  "curl -sS --max-time 5 " + allowed_url + "; echo; curl -sS --max-time 5 " +
                      denied_url + "; echo \"curl=$?\""});

    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "order: 1042\ncurl=7\n") << r.err;  // 7: curl could not connect
    // glibc's lookups also knock at nscd's Unix socket (refused, reason unix-socket).
    std::vector<json> denials;
    for (const auto& d : events_named(audit_events(), "net.deny"))
        if (d["reason"] != "unix-socket") denials.push_back(d);
    ASSERT_EQ(denials.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(denials[0]["comm"], "curl");
    EXPECT_EQ(denials[0]["destination"], "127.0.0.2");
    EXPECT_EQ(denials[0]["port"], denied.port);
    EXPECT_EQ(denials[0]["tool"], "denied_tool");
}

// Run as root (without capabilities) so that the refusals come from Cordon's
// filters, not from a missing CAP_NET_RAW alone.
TEST_F(AgentRunTest, RawPacketAndForeignFamilySocketsFail) {
    auto profile = write_profile({}, {}, "5m", {{"session", {{"user", "root"}}}});
    std::string script =
        "import socket,errno\n"
        "for fam,typ,proto in [(2,3,1),(17,3,0),(2,10,0),(40,1,0),(44,3,0),(38,5,0),(0,1,0),"
        "(16,3,9),(16,3,0),(1,1,0),(2,1,0),(10,2,0)]:\n"
        " try:\n  socket.socket(fam,typ,proto).close(); print('ok')\n"
        " except OSError as e: print(errno.errorcode[e.errno])\n";
    auto r = run({"--profile", profile, "--", "python3", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    // raw inet (the kernel: no CAP_NET_RAW), AF_PACKET, AF_INET+SOCK_PACKET,
    // vsock, xdp, alg, unspec, NETLINK_AUDIT refused; NETLINK_ROUTE, unix,
    // inet, inet6 work.
    EXPECT_EQ(r.out,
              "EPERM\nEAFNOSUPPORT\nEPERM\nEAFNOSUPPORT\nEAFNOSUPPORT\nEAFNOSUPPORT\nEAFNOSUPPORT\n"
              "EPERM\nok\nok\nok\nok\n");
}

TEST_F(AgentRunTest, SourceRoutingOptionIsRefusedAndAudited) {
    auto profile = write_profile({}, {});
    // IPV6_RTHDR (57): a routing header would send packets to its first
    // segment, past the address the connect and sendmsg hooks checked.
    std::string script =
        "import socket,errno\n"
        "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n"
        "try:\n s.setsockopt(socket.IPPROTO_IPV6,57,bytes(24)); print('ok')\n"
        "except OSError as e: print(errno.errorcode[e.errno])\n";
    auto r = run({"--profile", profile, "--", "python3", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "EPERM\n");
    auto denials = events_named(audit_events(), "net.deny");
    ASSERT_EQ(denials.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(denials[0]["hook"], "setsockopt");
    EXPECT_EQ(denials[0]["reason"], "ip-options");
    EXPECT_EQ(denials[0]["destination"], nullptr);
    EXPECT_EQ(denials[0]["comm"], "python3");
}

TEST_F(AgentRunTest, UnshareOfUserNamespaceFailsWithEperm) {
    auto profile = write_profile({}, {});
    auto r = run({"--profile", profile, "--", "unshare", "--user", "true"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("Operation not permitted"), std::string::npos) << r.err;
}

TEST_F(AgentRunTest, ExitStatusAndSignalPropagate) {
    auto profile = write_profile({}, {});
    EXPECT_EQ(run({"--profile", profile, "--", "sh", "-c", "exit 7"}).exit_code, 7);
    EXPECT_EQ(run({"--profile", profile, "--", "sh", "-c", "kill -TERM $$"}).exit_code, 128 + 15);
    auto ends = events_named(audit_events(), "session.end");
    ASSERT_EQ(ends.size(), 2u);
    EXPECT_EQ(ends[0]["exitStatus"], 7);
    EXPECT_EQ(ends[1]["signal"], "SIGTERM");
}

TEST_F(AgentRunTest, ForwardsSigintSigtermSighup) {
    auto profile = write_profile({}, {});
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
        pid_t pid = start({"--profile", profile, "--", "sleep", "60"});
        // Wait until the session has started (the audit log says so).
        for (int i = 0; i < 200 && events_named(audit_events(), "session.start").empty(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        ::kill(pid, sig);
        auto r = wait(pid);
        EXPECT_EQ(r.exit_code, 128 + sig) << "signal " << sig << ": " << r.err;
        fs::remove(audit_log_);
    }
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunTest, DeadlineKillsDoubleForkedDaemon) {
    auto profile = write_profile({}, {}, "2s");
    auto started = dir_ / "daemon.started";
    std::string sleep = unique_sleep();
    // The agent double-forks a daemon in a new session, then waits forever.
    std::string script = "setsid sh -c 'sleep " + sleep + " & echo $! > " + started.string() +
                         "' </dev/null >/dev/null 2>&1 & sleep 300";
    pid_t pid = start({"--profile", profile, "--", "sh", "-c", script});
    for (int i = 0; i < 100 && !fs::exists(started); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto daemons = pids_running("sleep " + sleep);
    auto r = wait(pid);

    EXPECT_EQ(r.exit_code, 124) << r.err;
    ASSERT_EQ(daemons.size(), 1u) << "the daemon never ran: " << r.err;
    EXPECT_FALSE(process_alive(daemons[0])) << "daemon " << daemons[0] << " outlived its session";
    auto events = audit_events();
    EXPECT_EQ(events_named(events, "session.expire").size(), 1u);
    auto end = events_named(events, "session.end");
    ASSERT_EQ(end.size(), 1u);
    EXPECT_EQ(end[0]["reason"], "deadline");
    EXPECT_EQ(end[0]["signal"], "SIGKILL");
    EXPECT_GE(end[0]["durationMs"].get<int>(), 2000) << "the deadline came early";
    EXPECT_EQ(leftover_cgroups(), 0u);
    EXPECT_EQ(leftover_sessions(), 0u);
}

TEST_F(AgentRunTest, DaemonLeftAtExitIsKilledWithTheSession) {
    auto profile = write_profile({}, {});
    auto started = dir_ / "daemon.started";
    std::string sleep = unique_sleep();
    // The daemon reports it runs; the agent exits once it has.
    std::string script = "setsid sh -c 'sleep " + sleep + " & echo $! > " + started.string() +
                         "' </dev/null >/dev/null 2>&1; while [ ! -s " + started.string() +
                         " ]; do sleep 0.05; done; exit 3";
    auto r = run({"--profile", profile, "--", "sh", "-c", script});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    ASSERT_TRUE(fs::exists(started)) << r.err;
    EXPECT_EQ(pids_running("sleep " + sleep), std::vector<pid_t>{})
        << "the daemon outlived its session";
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunTest, StaticCredentialReachesTheAgentOnly) {
    auto token_file = dir_ / "token";
    write_text(token_file, "s3cr3t-demo-token\n");
    fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write);
    extra_env_.push_back("CORDON_TEST_SOURCE=from-env-secret");
    json extra = {
        {"tools",
         {{"allowed_tool", {{"credentials", {"file_token", "env_token"}}}},
          {"denied_tool", {{"credentials", {"denied_token"}}}}}},
        {"credentials",
         {{"file_token",
           {{"source", {{"file", token_file.string()}}}, {"deliver", {{"env", "FILE_TOKEN"}}}}},
          {"env_token",
           {{"source", {{"env", "CORDON_TEST_SOURCE"}}}, {"deliver", {{"env", "ENV_TOKEN"}}}}},
          {"denied_token",
           {{"source", {{"file", token_file.string()}}},
            {"deliver", {{"env", "DENIED_TOKEN"}}}}}}}};
    auto profile = write_profile({}, {}, "5m", extra);
    auto r =
        run({"--profile", profile, "--", "sh", "-c",
             "echo \"$FILE_TOKEN|$ENV_TOKEN|${DENIED_TOKEN-unset}|${CORDON_TEST_SOURCE-unset}\""});

    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "s3cr3t-demo-token|from-env-secret|unset|unset\n");
    std::string audit = read_text(audit_log_);
    EXPECT_EQ(audit.find("s3cr3t"), std::string::npos);
    EXPECT_EQ(audit.find("from-env-secret"), std::string::npos);
    EXPECT_EQ(r.err.find("s3cr3t"), std::string::npos);
}

TEST_F(AgentRunTest, EnvironmentIsAnAllowlist) {
    extra_env_.push_back("CORDON_TEST_LAUNCHER_SECRET=do-not-pass");
    extra_env_.push_back("CORDON_TEST_PASSED=passed");
    auto profile =
        write_profile({}, {}, "5m", {{"session", {{"passEnvironment", {"CORDON_TEST_PASSED"}}}}});
    auto r = run({"--profile", profile, "--", "sh", "-c",
                  "echo \"${CORDON_TEST_LAUNCHER_SECRET-unset}|$CORDON_TEST_PASSED|"
                  "${PATH:+path}|$CORDON_AGENT_ID|${CORDON_SESSION_ID:+session}\""});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "unset|passed|path|test-agent|session\n");
}

TEST_F(AgentRunTest, BadProfilesExit125AndStartNothing) {
    auto malformed = dir_ / "malformed.json";
    write_text(malformed, "{\"apiVersion\": \"cordon/v1\",");
    auto r = run({"--profile", malformed, "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("malformed.json"), std::string::npos) << r.err;

    auto expired =
        write_profile({}, {}, "5m", {{"identity", {{"expiresAt", "2020-01-01T00:00:00Z"}}}});
    r = run({"--profile", expired, "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("identity.expiresAt"), std::string::npos) << r.err;

    auto unknown_tool = write_profile({}, {}, "5m", {{"allowedTools", {"allowed_tool", "nope"}}});
    r = run({"--profile", unknown_tool, "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;

    EXPECT_FALSE(fs::exists(audit_log_)) << "a refused profile must start no session";
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunTest, CheckFailsWhereTheLaunchWould) {
    json missing_file = {
        {"tools", {{"allowed_tool", {{"credentials", {"tok"}}}}}},
        {"credentials",
         {{"tok",
           {{"source", {{"file", (dir_ / "absent").string()}}}, {"deliver", {{"env", "TOK"}}}}}}}};
    auto profile = write_profile({}, {}, "5m", missing_file);
    auto r = run({"--check", "--profile", profile});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("credentials.tok.source.file: cannot read"), std::string::npos) << r.err;

    profile = write_profile({}, {}, "5m", {{"syscalls", {{"baseline", "no-such-baseline"}}}});
    r = run({"--check", "--profile", profile});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("syscalls.baseline"), std::string::npos) << r.err;
}

TEST_F(AgentRunTest, MistypedOptionIsAnErrorNotACommand) {
    auto profile = write_profile({}, {});
    auto r = run({"--profile", profile, "--bogus", "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("--bogus"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(audit_log_)) << "a usage error must start no session";
}

TEST_F(AgentRunTest, MistypedDnsUpstreamIsTheCommandLinesError) {
    auto profile = write_profile({"*.allowed.test:443"}, {});
    auto r = run({"--profile", profile, "--dns-upstream", "localhost:53", "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("--dns-upstream: \"localhost:53\" is not an upstream resolver: "
                         "\"localhost\" is not an IP address (write ADDRESS, ADDRESS:PORT or "
                         "[IPV6]:PORT)"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find("profile.json"), std::string::npos) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunTest, MissingCommandExits127) {
    auto profile = write_profile({}, {});
    auto r = run({"--profile", profile, "--", "/nonexistent/agent"});
    EXPECT_EQ(r.exit_code, 127);
    EXPECT_NE(r.err.find("/nonexistent/agent"), std::string::npos) << r.err;
    auto errors = events_named(audit_events(), "session.error");
    ASSERT_EQ(errors.size(), 1u) << read_text(audit_log_);
    EXPECT_NE(errors[0]["error"].get<std::string>().find("/nonexistent/agent"), std::string::npos);
    EXPECT_TRUE(events_named(audit_events(), "session.start").empty());
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunTest, CheckPrintsEffectivePolicy) {
    auto profile = write_profile({"127.0.0.1:8080"}, {"127.0.0.2:9090"});
    auto r = run({"--check", "--profile", profile});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto policy = json::parse(r.out);
    EXPECT_NE(r.out.find("allowed_tool"), std::string::npos);
    EXPECT_NE(r.out.find("127.0.0.1"), std::string::npos);
    EXPECT_TRUE(policy.contains("deadline")) << r.out;
}

// A supervisor killed mid-session: its agent stays contained (the pinned
// programs keep denying), and the next agent-run reaps the orphan.
TEST_F(AgentRunTest, KilledSupervisorLeavesAgentContainedAndIsReapedNextStart) {
    auto denied = Listener::on("127.0.0.2");
    auto profile = write_profile({}, {"127.0.0.2:" + std::to_string(denied.port)});
    auto results = dir_ / "results";
    std::string script =
        "import socket,time,errno\n"
        "while True:\n"
        " s=socket.socket()\n"
        " try:\n  s.connect(('127.0.0.2'," +
        std::to_string(denied.port) +
        ")); r='ok'\n"
        " except OSError as e: r=errno.errorcode[e.errno]\n"
        " s.close()\n"
        " open('" +
        results.string() +
        "','a').write(r+'\\n')\n"
        " time.sleep(0.05)\n";
    pid_t supervisor = start({"--profile", profile, "--", "python3", "-c", script});
    for (int i = 0; i < 300 && !fs::exists(results); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(fs::exists(results)) << read_text(dir_ / "stderr");

    ::kill(supervisor, SIGKILL);
    ::waitpid(supervisor, nullptr, 0);
    size_t before = read_text(results).size();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::string after = read_text(results);
    ASSERT_GT(after.size(), before) << "the orphaned agent should still be running";
    EXPECT_EQ(after.find("ok"), std::string::npos) << "an orphaned agent reached a denied endpoint";
    EXPECT_EQ(leftover_cgroups(), 1u);
    auto orphan_start = events_named(audit_events(), "session.start");
    ASSERT_EQ(orphan_start.size(), 1u);
    std::string files = run_dir_ + "/sessions/" + orphan_start[0]["session"].get<std::string>();
    EXPECT_TRUE(fs::exists(files + "/resolv.conf")) << "the orphan's files should be there";

    // The next launch reaps the orphan: its processes, cgroup and map entries.
    auto r = run({"--profile", profile, "--", "true"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
    EXPECT_EQ(leftover_sessions(), 0u);
    auto reaped_events = events_named(audit_events(), "session.reaped");
    ASSERT_EQ(reaped_events.size(), 1u) << read_text(audit_log_);
    auto starts = events_named(audit_events(), "session.start");
    ASSERT_GE(starts.size(), 1u);
    EXPECT_EQ(reaped_events[0]["session"], starts[0]["session"]);
    EXPECT_EQ(reaped_events[0]["agentId"], "test-agent");
    EXPECT_EQ(reaped_events[0]["reason"], "supervisor-gone");
    // The dead session's files (its resolv.conf) went with it.
    EXPECT_FALSE(fs::exists(files)) << files << " left behind";
    size_t reaped = read_text(results).size();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(read_text(results).size(), reaped) << "the orphaned agent still runs";
}

TEST_F(AgentRunTest, ProcessInSubtreeWithoutSessionIsDeniedEverything) {
    // A cgroup under Cordon's root that no session owns: start one session
    // first so the programs are attached, then put a process there by hand.
    auto profile = write_profile({}, {});
    ASSERT_EQ(run({"--profile", profile, "--", "true"}).exit_code, 0);
    auto stray = fs::path(cgroup_root_) / "stray";
    fs::create_directory(stray);
    auto listener = Listener::on("127.0.0.1");

    pid_t child = ::fork();
    if (child == 0) {
        std::ofstream(stray / "cgroup.procs") << ::getpid();
        int s = ::socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) ::_exit(errno);  // refused at creation: also a denial
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(listener.port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::_exit(rc == 0 ? 0 : errno);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    ::rmdir(stray.c_str());
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), EPERM);
}

TEST_F(AgentRunTest, AgentRunsUnprivilegedAndCannotLeaveItsCgroup) {
    auto profile = write_profile({}, {});
    auto mount = cgroup::find_cgroup2_mount();
    ASSERT_TRUE(mount.ok());
    std::string script =
        "id -u; grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status; "
        "echo $$ > " +
        *mount + "/cgroup.procs && echo escaped || echo stayed";
    auto r = run({"--profile", profile, "--", "sh", "-c", script});

    EXPECT_EQ(r.exit_code, 0) << r.err;
    uid_t expected = ::getpwnam("cordon-agent") ? ::getpwnam("cordon-agent")->pw_uid
                                                : ::getpwnam("nobody")->pw_uid;
    EXPECT_EQ(r.out.substr(0, r.out.find('\n')), std::to_string(expected)) << r.out;
    EXPECT_NE(r.out.find("CapBnd:\t0000000000000000"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("stayed"), std::string::npos) << r.out;
    auto start = events_named(audit_events(), "session.start");
    ASSERT_EQ(start.size(), 1u);
    EXPECT_EQ(start[0]["uid"], expected);
}

TEST_F(AgentRunTest, RootAgentOnlyWhenProfileSaysSoAndWithoutCapabilities) {
    auto profile = write_profile({}, {}, "5m", {{"session", {{"user", "root"}}}});
    auto mount = cgroup::find_cgroup2_mount();
    ASSERT_TRUE(mount.ok());
    std::string script = "id -u; grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status";
    auto r = run({"--profile", profile, "--", "sh", "-c", script});

    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out,
              "0\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
              "CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\n");
    EXPECT_NE(r.err.find("runs as root"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("leave its cgroup, unpin the BPF links"), std::string::npos) << r.err;

    auto check = run({"--check", "--profile", profile});
    EXPECT_EQ(check.exit_code, 0);
    EXPECT_EQ(json::parse(check.out)["runAs"]["uid"], 0);
    ASSERT_TRUE(json::parse(check.out).contains("warnings")) << check.out;
    std::string warning = json::parse(check.out)["warnings"][0];
    EXPECT_NE(warning.find("the agent runs as root"), std::string::npos) << warning;
    for (const char* risk : {"leave its cgroup", "unpin the BPF links", "kill agent-run"})
        EXPECT_NE(warning.find(risk), std::string::npos) << "no '" << risk << "' in " << warning;
}

TEST_F(AgentRunTest, AgentHasItsOwnMountNamespace) {
    auto profile = write_profile({}, {});
    auto r = run({"--profile", profile, "--", "readlink", "/proc/self/ns/mnt"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out, fs::read_symlink("/proc/self/ns/mnt").string() + "\n");
    EXPECT_EQ(r.out.rfind("mnt:[", 0), 0u) << r.out;
}

TEST_F(AgentRunTest, UnknownUserExits125) {
    auto profile = write_profile({}, {}, "5m", {{"session", {{"user", "no-such-user-xyz"}}}});
    auto r = run({"--profile", profile, "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("no such user: no-such-user-xyz"), std::string::npos) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// setresuid(-1, -1, -1) changes nothing: that uid would have left the agent root.
TEST_F(AgentRunTest, UidMinusOneIsRefusedNotLeftAsRoot) {
    for (const char* uid : {"4294967295", "4294967296"}) {
        auto profile = write_profile({}, {}, "5m", {{"session", {{"user", uid}}}});
        auto r = run({"--profile", profile, "--", "id", "-u"});
        EXPECT_EQ(r.exit_code, 125) << uid << ": " << r.out;
        EXPECT_EQ(r.out, "") << "the agent ran";
        EXPECT_NE(r.err.find("session.user: uid " + std::string(uid) + " is out of range"),
                  std::string::npos)
            << r.err;
        EXPECT_EQ(run({"--check", "--profile", profile}).exit_code, 125);
    }
    EXPECT_EQ(leftover_cgroups(), 0u);
}

}  // namespace
}  // namespace cordon::testing
