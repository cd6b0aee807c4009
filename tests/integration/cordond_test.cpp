// SPDX-License-Identifier: Apache-2.0
// cordond end to end: unprivileged users launch agents through agent-run,
// the daemon refuses whom the profile does not list and whatever is not a
// request, and sessions outlive a killed cordond, contained, until a new
// one adopts them and enforces their deadlines.
#include "cordond_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "cordon/fd_passing.h"
#include "daemon/protocol.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

// One raw message to cordond and its answer ("" when none came).
std::string raw_request(const std::string& payload, int fds_to_attach = 0) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path,
                 (fs::path("/run") / ("cordon-test-cd-" + std::to_string(::getpid())) / "sock" /
                  "cordond.sock")
                     .string()
                     .c_str(),
                 sizeof addr.sun_path - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
    if (fds_to_attach == 0) {
        (void)!::send(fd.get(), payload.data(), payload.size(), MSG_NOSIGNAL);
    } else {
        iovec iov{const_cast<char*>(payload.data()), payload.size()};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds_to_attach);
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds_to_attach);
        std::vector<int> fds(fds_to_attach, 1);
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds_to_attach);
        (void)!::sendmsg(fd.get(), &msg, MSG_NOSIGNAL);
    }
    char buf[4096];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST_F(CordondTest, PermittedUserLaunchesAndGetsOutputAndExitStatus) {
    write_profile("echo", {"nobody"});
    start_daemon();

    auto r = wait(launch(*nobody_, "echo", {"/bin/sh", "-c", "echo hello from $(id -un); exit 7"}));

    EXPECT_EQ(r.exit_code, 7) << r.err;
    EXPECT_EQ(r.out, "hello from nobody\n");
    auto starts = events_named(audit_events(), "session.start");
    ASSERT_EQ(starts.size(), 1u);
    EXPECT_EQ(starts[0]["user"], "nobody");
    EXPECT_EQ(starts[0]["agentId"], "echo-agent");
    auto ends = events_named(audit_events(), "session.end");
    ASSERT_EQ(ends.size(), 1u);
    EXPECT_EQ(ends[0]["exitStatus"], 7);
    EXPECT_EQ(ends[0]["session"], starts[0]["session"]);
    EXPECT_TRUE(wait_for_sessions(0).empty());
}

TEST_F(CordondTest, UserNotInLaunchersIsRefusedAndAudited) {
    write_profile("echo", {"nobody"});
    start_daemon();

    auto r = wait(launch(*other_, "echo", {"/bin/true"}));

    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("cordon-agent (uid " + std::to_string(other_->uid) +
                         ") may not launch profile echo: not in its launchers"),
              std::string::npos)
        << r.err;
    auto refused = events_named(audit_events(), "request.refused");
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_EQ(refused[0]["user"], "cordon-agent");
    EXPECT_EQ(refused[0]["request"], "launch echo");
    EXPECT_EQ(refused[0]["reason"], "not in the profile's launchers");
    EXPECT_TRUE(events_named(audit_events(), "session.start").empty());
}

TEST_F(CordondTest, ProfileOutsideProfilesDirIsRefused) {
    write_profile("echo", {"nobody"});
    start_daemon();
    auto mine = dir_ / "mine.json";
    fs::copy_file(profiles_dir() / "echo.json", mine);

    auto r = wait(launch(*nobody_, mine.string(), {"/bin/true"}));

    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("no installed profile " + mine.string()), std::string::npos) << r.err;
}

TEST_F(CordondTest, BadRequestsGetAnErrorAndTheDaemonKeepsServing) {
    write_profile("echo", {"nobody"});
    start_daemon();

    EXPECT_NE(raw_request("{\"op\": \"launch\", \"prof").find("not one JSON object"),
              std::string::npos);
    EXPECT_NE(raw_request(std::string(200000, 'x')).find("larger than"), std::string::npos);
    EXPECT_NE(raw_request("[1, 2]").find("not one JSON object"), std::string::npos);
    EXPECT_NE(raw_request("{\"op\": \"format-disk\"}").find("op: expected launch"),
              std::string::npos);
    EXPECT_NE(raw_request("{\"op\": \"launch\", \"profile\": 5}").find("profile: expected"),
              std::string::npos);
    EXPECT_NE(raw_request(R"({"op":"launch","profile":"echo","argv":["/bin/true"]})")
                  .find("expected stdin, stdout and stderr attached"),
              std::string::npos);
    EXPECT_NE(raw_request(R"({"op":"launch","profile":"echo","argv":["/bin/true"]})", 8)
                  .find("more than 3 descriptors"),
              std::string::npos);
    EXPECT_NE(raw_request(R"({"op":"launch","profile":"echo","argv":[],"env":["X"]})", 3)
                  .find("argv: no command given"),
              std::string::npos);

    auto r = wait(launch(*nobody_, "echo", {"/bin/sh", "-c", "echo still serving"}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "still serving\n");
    EXPECT_EQ(::waitpid(daemon_, nullptr, WNOHANG), 0) << "cordond died";
}

TEST_F(CordondTest, SignalsReachTheAgent) {
    write_profile("sleeper", {"nobody"});
    start_daemon();
    std::string marker = unique_sleep();
    auto p = launch(*nobody_, "sleeper", {"/bin/sleep", marker});
    wait_for_sessions(1);

    ::kill(p.pid, SIGTERM);

    auto r = wait(p);
    EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.err;
}

// A client's control messages of the wrong shape are ignored: one used to
// end the session's supervisor with an exception, before it could end the
// session (and revoke its tokens).
TEST_F(CordondTest, MalformedControlMessagesLeaveTheSessionSupervised) {
    write_profile("sleeper", {"nobody"});
    start_daemon();
    UniqueFd sock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket().c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    int stdio[3] = {null.get(), null.get(), null.get()};
    nlohmann::json launch_request = {{"op", "launch"},
                                     {"profile", "sleeper"},
                                     {"argv", {"/bin/sleep", unique_sleep()}},
                                     {"cwd", "/"},
                                     {"env", nlohmann::json::array()}};
    ASSERT_TRUE(daemon::send_message(sock.get(), launch_request, stdio));
    auto started = daemon::receive_message(sock.get(), daemon::kMaxAnswerBytes);
    ASSERT_TRUE(started && *started) << "no answer";
    ASSERT_EQ((**started).body.value("event", ""), "started") << (**started).body.dump();

    for (const char* bad : {R"({"op":"signal","signal":"HUP"})", R"({"op":5})", R"({"op":"signal",
                            "signal":1e300})",
                            R"({"op":"signal","signal":-9})"})
        ASSERT_TRUE(daemon::send_message(sock.get(), nlohmann::json::parse(bad)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    ASSERT_EQ(wait_for_sessions(1).size(), 1u) << "the session did not survive a bad message";
    ASSERT_TRUE(daemon::send_message(sock.get(), {{"op", "signal"}, {"signal", SIGTERM}}));
    auto exit = daemon::receive_message(sock.get(), daemon::kMaxAnswerBytes);
    ASSERT_TRUE(exit && *exit);
    EXPECT_EQ((**exit).body.value("status", -1), 128 + SIGTERM) << (**exit).body.dump();
    auto ends = events_named(audit_events(), "session.end");
    ASSERT_EQ(ends.size(), 1u) << "the session's supervisor did not end it";
    EXPECT_EQ(ends[0]["signal"], "SIGTERM");
}

TEST_F(CordondTest, SighupReloadsProfilesWithoutTouchingLiveSessions) {
    write_profile("sleeper", {"nobody"});
    start_daemon();
    auto p = launch(*nobody_, "sleeper", {"/bin/sleep", unique_sleep()});
    wait_for_sessions(1);
    write_profile("later", {"nobody"});
    write_text(profiles_dir() / "broken.json", "{\"apiVersion\": ");

    ::kill(daemon_, SIGHUP);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));

    auto r = wait(launch(*nobody_, "later", {"/bin/true"}, "later"));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(wait_for_sessions(1).size(), 1u);
    EXPECT_NE(read_text(dir_ / "cordond.err").find("broken.json"), std::string::npos);
    ::kill(p.pid, SIGTERM);
    EXPECT_EQ(wait(p).exit_code, 128 + SIGTERM);
}

TEST_F(CordondTest, CordonctlListsAndStopsAndRefusesNonAdmins) {
    write_profile("sleeper", {"nobody"});
    start_daemon();
    auto p = launch(*nobody_, "sleeper", {"/bin/sleep", unique_sleep()});
    auto list = wait_for_sessions(1);
    std::string id = list[0]["session"];
    EXPECT_EQ(list[0]["user"], "nobody");
    EXPECT_EQ(list[0]["agentId"], "sleeper-agent");
    EXPECT_TRUE(list[0]["pid"].get<int>() > 0);
    EXPECT_EQ(list[0]["bytesOut"], 0);
    EXPECT_EQ(list[0]["denials"], 0);

    auto table = cordonctl(std::nullopt, {"sessions"});
    EXPECT_NE(table.out.find("SESSION"), std::string::npos);
    EXPECT_NE(table.out.find(id), std::string::npos);
    auto own = cordonctl(*nobody_, {"sessions", "--json"});
    EXPECT_EQ(json::parse(own.out).size(), 1u) << own.err;
    auto others = cordonctl(*other_, {"sessions", "--json"});
    EXPECT_EQ(json::parse(others.out).size(), 0u) << others.err;
    auto refused = cordonctl(*other_, {"stop", id});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_NE(refused.err.find("you may stop only your own sessions"), std::string::npos);
    EXPECT_EQ(events_named(audit_events(), "request.refused").size(), 1u);

    auto stopped = cordonctl(std::nullopt, {"stop", id});
    EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
    EXPECT_EQ(wait(p).exit_code, 128 + SIGKILL);
    auto stops = events_named(audit_events(), "session.stop");
    ASSERT_EQ(stops.size(), 1u);
    EXPECT_EQ(stops[0]["session"], id);
    EXPECT_EQ(cordonctl(std::nullopt, {"stop", id}).exit_code, 1);
}

TEST_F(CordondTest, CordonctlValidatesProfilesAndReadsTheAudit) {
    write_profile("echo", {"nobody"});
    write_text(dir_ / "bad.json", R"({"apiVersion": "cordon/v1", "launchers": {"users": "x"}})");

    auto good = cordonctl(std::nullopt, {"validate", (profiles_dir() / "echo.json").string()});
    EXPECT_EQ(good.exit_code, 0) << good.err;
    EXPECT_NE(good.out.find("ok (agentId echo-agent"), std::string::npos);
    auto bad = cordonctl(std::nullopt, {"validate", (dir_ / "bad.json").string()});
    EXPECT_EQ(bad.exit_code, 1);
    EXPECT_NE(bad.err.find("bad.json"), std::string::npos) << bad.err;

    start_daemon();
    EXPECT_EQ(wait(launch(*nobody_, "echo", {"/bin/true"})).exit_code, 0);
    std::string id = events_named(audit_events(), "session.start").at(0)["session"];
    auto audit = cordonctl(std::nullopt, {"audit", "--file", audit_log_.string(), "--session", id});
    EXPECT_EQ(audit.exit_code, 0);
    EXPECT_NE(audit.out.find("\"session.start\""), std::string::npos);
    EXPECT_NE(audit.out.find("\"session.end\""), std::string::npos);
    auto none = cordonctl(std::nullopt, {"audit", "--file", audit_log_.string(), "--session", "x"});
    EXPECT_EQ(none.out, "");
    // The same events in cordond's own log, the journal under systemd.
    auto in_log = [&] {
        return read_text(dir_ / "cordond.err").find("audit: {") != std::string::npos &&
               read_text(dir_ / "cordond.err").find(id) != std::string::npos;
    };
    for (int i = 0; i < 100 && !in_log(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(in_log()) << read_text(dir_ / "cordond.err");
}

// The agent tries a loopback listener no rule allows, once before and once
// after cordond is killed; then cordond comes back and the deadline holds.
TEST_F(CordondTest, SigkillOfCordondLeavesTheAgentContainedAndARestartAdoptsIt) {
    write_profile("net", {"nobody"}, "6s");
    auto listener = Listener::on("127.0.0.1");
    start_daemon();
    std::string script = "import time\n" + py_connect("127.0.0.1", listener.port) +
                         "\ntime.sleep(2)\n" + py_connect("127.0.0.1", listener.port) +
                         "\nimport sys; sys.stdout.flush(); time.sleep(60)\n";
    auto p = launch(*nobody_, "net", {"/usr/bin/python3", "-u", "-c", script});
    auto list = wait_for_sessions(1);

    stop_daemon(SIGKILL);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    EXPECT_EQ(read_text(p.out), "EPERM\nEPERM\n");

    start_daemon();
    auto adopted = wait_for_sessions(1);
    EXPECT_EQ(adopted[0]["session"], list[0]["session"]);
    EXPECT_GE(adopted[0]["denials"].get<int>(), 2) << "both connects, counted by the session";
    EXPECT_EQ(events_named(audit_events(), "session.adopt").size(), 1u);
    auto r = wait(p, std::chrono::seconds(20));
    EXPECT_EQ(r.exit_code, 124) << r.err;
    EXPECT_TRUE(wait_for_sessions(0).empty());
}

// A session whose supervisor cannot act (stopped here) and whose deadline
// passes while cordond is down is killed as soon as cordond is back.
TEST_F(CordondTest, DeadlinePassedWhileCordondWasDownIsEnforcedAtRestart) {
    write_profile("sleeper", {"nobody"}, "2s");
    start_daemon();
    std::string marker = unique_sleep();
    auto p = launch(*nobody_, "sleeper", {"/bin/sleep", marker});
    auto list = wait_for_sessions(1);
    pid_t supervisor = list[0]["supervisorPid"];
    std::string cgroup = list[0]["cgroup"];

    stop_daemon(SIGKILL);
    ASSERT_EQ(::kill(supervisor, SIGSTOP), 0);
    std::this_thread::sleep_for(std::chrono::seconds(3));
    EXPECT_EQ(pids_running("/bin/sleep " + marker).size(), 1u) << "stopped supervisor, live agent";

    start_daemon();
    auto expired = events_named(audit_events(), "session.expire");
    ASSERT_EQ(expired.size(), 1u);
    EXPECT_EQ(expired[0]["by"], "cordond");
    EXPECT_TRUE(pids_running("/bin/sleep " + marker).empty());
    ::kill(supervisor, SIGCONT);
    EXPECT_NE(wait(p).exit_code, 0);
    EXPECT_FALSE(fs::exists(cgroup));
}

// A supervisor that dies takes its agent with it: the next cordond reaps
// the session it finds without one.
TEST_F(CordondTest, SessionWhoseSupervisorDiedIsReaped) {
    write_profile("sleeper", {"nobody"});
    start_daemon();
    std::string marker = unique_sleep();
    auto p = launch(*nobody_, "sleeper", {"/bin/sleep", marker});
    auto list = wait_for_sessions(1);
    pid_t supervisor = list[0]["supervisorPid"];

    ::kill(supervisor, SIGKILL);

    EXPECT_EQ(wait(p).exit_code, 125);
    for (int i = 0; i < 100 && !pids_running("/bin/sleep " + marker).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(pids_running("/bin/sleep " + marker).empty());
    for (int i = 0; i < 100 && events_named(audit_events(), "session.reaped").empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(events_named(audit_events(), "session.reaped").size(), 1u);
    EXPECT_TRUE(wait_for_sessions(0).empty());
}

// Through cordond: a user's agent waits for a tool of approvalRequired;
// the user (its launcher, and its agent's account) may not grant it, root
// may, and the agent's next connect passes.
// A loopback TCP listener that never accepts (connections complete in the
// backlog) for a gated tool, and cordond's config with an approvals directory.
class CordondApprovalTest : public CordondTest {
  protected:
    void SetUp() override {
        CordondTest::SetUp();
        if (IsSkipped()) return;
        listener_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        ASSERT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ASSERT_EQ(::listen(listener_.get(), 16), 0);
        ASSERT_EQ(::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
        port_ = ntohs(addr.sin_port);
        json config = json::parse(read_text(config_));
        config["approvalsDir"] = approvals_.string();
        write_text(config_, config.dump(2));
    }

    void write_refund_profile(const std::vector<std::string>& launchers,
                              const std::vector<std::string>& approvers) {
        write_profile(
            "refund", launchers, "5m",
            {{"approvalRequired", {"issue_refund"}},
             {"approval", {{"approvers", {{"users", approvers}}}}},
             {"tools",
              {{"issue_refund", {{"endpoints", {"127.0.0.1:" + std::to_string(port_)}}}}}}});
    }

    // An agent that tries the tool every 100 ms for 20 s.
    std::vector<std::string> agent() const {
        return {"/usr/bin/python3", "-c",
                "import socket, time\n"
                "for i in range(200):\n"
                "    try:\n"
                "        socket.create_connection(('127.0.0.1', " +
                    std::to_string(port_) +
                    "), 2).close()\n"
                    "        print('connected after', i, 'refusals'); break\n"
                    "    except OSError:\n"
                    "        time.sleep(0.1)\n"};
    }

    // The pending requests, once there are some.
    json wait_for_pending() {
        json pending;
        for (int i = 0; i < 200 && pending.empty(); ++i) {
            auto listed = cordonctl(std::nullopt, {"approvals", "--json", dir()});
            json j = json::parse(listed.out, nullptr, false);
            if (j.is_object()) pending = j["requests"];
            if (pending.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return pending;
    }

    std::string dir() const { return "--approvals-dir=" + approvals_.string(); }

    UniqueFd listener_;
    uint16_t port_ = 0;
    fs::path approvals_ = base_ / "approvals";
};

TEST_F(CordondApprovalTest, ApprovalsOfACordondSessionAreDecidedByAnotherAccount) {
    write_refund_profile({"nobody"}, {"nobody"});
    start_daemon();
    auto running = launch(*nobody_, "refund", agent());
    std::string dir = this->dir();
    fs::path approvals = approvals_;
    json pending = wait_for_pending();
    ASSERT_EQ(pending.size(), 1u) << read_text(audit_log_);
    std::string id = pending[0]["id"];
    EXPECT_EQ(pending[0]["tool"], "issue_refund");
    EXPECT_EQ(pending[0]["agentId"], "refund-agent");

    auto by_launcher = cordonctl(*nobody_, {"approve", id, "--for", "1m", dir});
    EXPECT_EQ(by_launcher.exit_code, 1);
    EXPECT_NE(by_launcher.err.find("may not approve its own session's requests"), std::string::npos)
        << by_launcher.err;
    auto by_root = cordonctl(std::nullopt, {"approve", id, "--for", "1m", dir});
    ASSERT_EQ(by_root.exit_code, 0) << by_root.err;

    auto r = wait(running);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("connected after"), std::string::npos) << r.out;
    auto grants = events_named(audit_events(), "approval.grant");
    ASSERT_EQ(grants.size(), 1u);
    EXPECT_EQ(grants[0]["approver"], "root");
    EXPECT_EQ(events_named(audit_events(), "approval.refused").size(), 1u);
    auto closed = events_named(audit_events(), "approval.close");
    ASSERT_EQ(closed.size(), 1u);
    EXPECT_EQ(closed[0]["cause"], "session-ended");
    EXPECT_TRUE(fs::is_empty(approvals));
}

// root's client through sudo: the account sudo ran it for (SUDO_UID in the
// client's environment) is the launcher too, and may not approve.
TEST_F(CordondApprovalTest, TheAccountSudoLaunchedForMayNotApproveThroughCordond) {
    auto daemon = Account::named("daemon"), bin = Account::named("bin");
    ASSERT_TRUE(daemon && bin);
    // The agent runs as cordon-agent, root's default for agents.
    write_refund_profile({"root"}, {"daemon", "bin"});
    start_daemon();
    std::vector<std::string> argv{"/usr/bin/env",
                                  "SUDO_UID=" + std::to_string(daemon->uid),
                                  (bin_dir() / "agent-run").string(),
                                  "--profile",
                                  "refund",
                                  "--"};
    for (const auto& a : agent()) argv.push_back(a);
    auto running = spawn_as(std::nullopt, argv, "agent-run");
    json pending = wait_for_pending();
    ASSERT_EQ(pending.size(), 1u) << read_text(audit_log_);
    std::string id = pending[0]["id"];

    auto by_sudoer = cordonctl(*daemon, {"approve", id, "--for", "1m", dir()});
    EXPECT_EQ(by_sudoer.exit_code, 1);
    EXPECT_NE(by_sudoer.err.find("launched this session"), std::string::npos) << by_sudoer.err;
    auto by_other = cordonctl(*bin, {"approve", id, "--for", "1m", dir()});
    ASSERT_EQ(by_other.exit_code, 0) << by_other.err;
    auto r = wait(running);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("connected after"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace cordon::testing

namespace cordon::testing {
namespace {

// Under systemd (Delegate=yes, cgroup "auto") cordond moves itself into a
// leaf of its service's cgroup and puts the sessions beside it; here the
// test makes that cgroup and starts cordond in it.
TEST_F(CordondTest, CgroupAutoPutsSessionsInCordondsOwnSubtree) {
    auto mount = cgroup::find_cgroup2_mount();
    ASSERT_TRUE(mount);
    std::string service = tag_ + "-service";
    std::string service_dir = *mount + "/" + service;
    ASSERT_TRUE(cgroup::ensure_dir(service_dir));
    auto config = nlohmann::json::parse(read_text(config_));
    config["cgroup"] = "auto";
    config["bpfPinDir"] = pin_dir() + "-auto";
    write_text(config_, config.dump());
    write_profile("echo", {"nobody"});
    into_cgroup_ = service_dir;

    start_daemon();
    auto r = wait(launch(*nobody_, "echo", {"/bin/sh", "-c", "cat /proc/self/cgroup"}));

    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("0::/" + service + "/sessions/"), std::string::npos) << r.out;
    EXPECT_NE(read_text("/proc/" + std::to_string(daemon_) + "/cgroup")
                  .find("0::/" + service + "/supervisor"),
              std::string::npos);
    stop_daemon(SIGTERM);
    (void)netfilter::Netfilter::detach(pin_dir() + "-auto");
    for (const char* leaf : {"/sessions", "/supervisor", ""}) ::rmdir((service_dir + leaf).c_str());
}

}  // namespace
}  // namespace cordon::testing

namespace cordon::testing {
namespace {

// "CAP_BPF CAP_KILL" of the unit's CapabilityBoundingSet= as setpriv's "-all,+bpf,+kill".
std::string unit_bounding_set() {
    std::istringstream unit(
        read_text(std::string(CORDON_SOURCE_DIR) + "/packaging/cordond.service"));
    std::string line, set = "-all";
    while (std::getline(unit, line)) {
        if (line.rfind("CapabilityBoundingSet=", 0) != 0) continue;
        std::istringstream caps(line.substr(line.find('=') + 1));
        for (std::string cap; caps >> cap;) {
            std::transform(cap.begin(), cap.end(), cap.begin(), ::tolower);
            set += ",+" + cap.substr(4);
        }
    }
    return set;
}

// The unit's capability bounding set and no_new_privs are enough for a
// session: systemd is not PID 1 here, so setpriv applies them instead.
TEST_F(CordondTest, TheUnitsCapabilitiesAndNoNewPrivsSufficeForASession) {
    if (!fs::exists("/usr/bin/setpriv")) GTEST_SKIP() << "needs setpriv (util-linux)";
    std::string caps = unit_bounding_set();
    ASSERT_NE(caps, "-all") << "no CapabilityBoundingSet in the unit";
    daemon_wrapper_ = {"/usr/bin/setpriv", "--bounding-set=" + caps, "--no-new-privs"};
    // A credential file to deliver (chown to the agent) and a limit (cgroup files).
    write_text(profiles_dir() / "token.txt", "s3cret");
    fs::permissions(profiles_dir() / "token.txt", fs::perms::owner_read | fs::perms::owner_write);
    write_profile("echo", {"nobody"}, "5m",
                  {{"allowedTools", {"t"}},
                   {"tools", {{"t", {{"endpoints", {"127.0.0.1:9"}}, {"credentials", {"tok"}}}}}},
                   {"credentials", {{"tok", {{"source", {{"file", "token.txt"}}}}}}},
                   {"limits", {{"pids", 64}}}});

    start_daemon();
    auto r = wait(launch(*nobody_, "echo",
                         {"/bin/sh", "-c", "cat $CREDENTIALS_DIRECTORY/tok; echo; exit 4"}));

    EXPECT_EQ(r.exit_code, 4) << r.err << read_text(dir_ / "cordond.err");
    EXPECT_EQ(r.out, "s3cret\n");
    std::string status = read_text("/proc/" + std::to_string(daemon_) + "/status");
    EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos);
}

}  // namespace
}  // namespace cordon::testing

namespace cordon::testing {
namespace {

TEST_F(CordondTest, OneUserCannotTakeEverySession) {
    auto config = nlohmann::json::parse(read_text(config_));
    config["maxSessionsPerUser"] = 1;
    write_text(config_, config.dump());
    write_profile("sleeper", {"nobody", "cordon-agent"});
    start_daemon();
    auto first = launch(*nobody_, "sleeper", {"/bin/sleep", unique_sleep()});
    wait_for_sessions(1);

    auto second = wait(launch(*nobody_, "sleeper", {"/bin/true"}, "second"));
    auto other = wait(launch(*other_, "sleeper", {"/bin/true"}, "other"));

    EXPECT_EQ(second.exit_code, 125);
    EXPECT_NE(second.err.find("nobody runs 1 sessions, the most one user may (maxSessionsPerUser)"),
              std::string::npos)
        << second.err;
    EXPECT_EQ(other.exit_code, 0) << other.err;
    ::kill(first.pid, SIGTERM);
    EXPECT_EQ(wait(first).exit_code, 128 + SIGTERM);
}

}  // namespace
}  // namespace cordon::testing
