// SPDX-License-Identifier: Apache-2.0
// Approvals end to end: a real agent-run session whose agent (python3,
// driven line by line through its stdin) tries a tool of approvalRequired,
// while the test, as an approver's account, decides with the real cordonctl
// over the session's socket. The kernel's gates do the opening and closing.
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>

#include <atomic>
#include <mutex>

#include "agent_run_fixture.h"
#include "webhook_receiver.h"

namespace cordon::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The agent: one command per line on stdin, one answer per line on stdout.
//   connect          a new TCP connection to the tool, closed again: ok or the errno name
//   hold             a connection kept open, one echo through it: ok or the errno name
//   send             a line through the held connection: ok, or cut when no echo comes back
//   ask TOOL SECS    the in-session API: the answer's JSON
//   read NAME        the credential file NAME: its contents, or the errno name
//   deceive TOOL     an ask whose reason holds terminal escapes and 2-byte characters
constexpr const char* kAgent = R"PY(
import errno, json, os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
held = None
def connect():
    s = socket.socket()
    s.settimeout(3)
    s.connect((host, port))
    return s
def echo(s):
    s.sendall(b"ping\n")
    s.settimeout(1.5)
    try:
        return "ok" if s.recv(16) else "cut"
    except (socket.timeout, OSError):
        return "cut"
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    try:
        if cmd[0] == "connect":
            connect().close()
            out = "ok"
        elif cmd[0] == "hold":
            held = connect()
            out = echo(held)
        elif cmd[0] == "send":
            out = echo(held)
        elif cmd[0] == "ask":
            a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            a.connect(os.environ["CORDON_APPROVAL_SOCKET"])
            a.sendall(json.dumps({"tool": cmd[1], "reason": "refund order 1042",
                                  "timeout": int(cmd[2])}).encode() + b"\n")
            out = a.makefile().readline().strip()
        elif cmd[0] == "deceive":
            a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            a.connect(os.environ["CORDON_APPROVAL_SOCKET"])
            reason = "\x1b[2J\x1b[32mAPPROVED by security\x07" + "\u00e9" * 400
            a.sendall(json.dumps({"tool": cmd[1], "reason": reason, "timeout": 1}).encode() + b"\n")
            out = a.makefile().readline().strip()
        elif cmd[0] == "read":
            with open(os.path.join(os.environ["CREDENTIALS_DIRECTORY"], cmd[1])) as f:
                out = f.read().strip()
        elif cmd[0] == "exit":
            break
    except OSError as e:
        out = errno.errorcode.get(e.errno, str(e))
    print(out, flush=True)
)PY";

// Echoes every line back, on each connection, from a thread.
struct EchoServer {
    Listener listener = Listener::on("127.0.0.1");
    std::atomic<bool> stop{false};
    std::thread thread;

    EchoServer() {
        thread = std::thread([this] {
            std::vector<UniqueFd> conns;
            for (;;) {
                std::vector<pollfd> fds{{listener.fd.get(), POLLIN, 0}};
                for (auto& c : conns) fds.push_back({c.get(), POLLIN, 0});
                if (::poll(fds.data(), fds.size(), 100) < 0 || stop) return;
                if (fds[0].revents & POLLIN)
                    conns.emplace_back(
                        ::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
                for (size_t i = 1; i < fds.size(); ++i) {
                    if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
                    char buf[256];
                    ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
                    if (n > 0) (void)!::write(fds[i].fd, buf, n);
                }
            }
        });
    }
    ~EchoServer() {
        stop = true;
        thread.join();
    }
};

struct CommandResult {
    int exit_code = -1;
    std::string out;       // stdout, then stderr
    std::string out_only;  // stdout alone, for --json
};

class AgentRunApprovalTest : public AgentRunTest {
  protected:
    void SetUp() override {
        AgentRunTest::SetUp();
        if (IsSkipped()) return;
        // Short: a socket path is at most 107 bytes, and a session id takes 41.
        approvals_dir_ = "/run/cordon-ap-" + std::to_string(::getpid());
        fs::remove_all(approvals_dir_);
        extra_env_.push_back("CORDON_APPROVALS_DIR=" + approvals_dir_);
        write_text(dir_ / "agent.py", kAgent);
    }

    void TearDown() override {
        end_agent();
        if (!approvals_dir_.empty()) fs::remove_all(approvals_dir_);
        AgentRunTest::TearDown();
    }

    // A profile whose tool issue_refund needs approval, approved by `approvers`.
    fs::path approval_profile(json approval, json extra = json::object()) {
        json p = {{"session", {{"user", "nobody"}}},
                  {"approvalRequired", {"issue_refund"}},
                  {"tools",
                   {{"issue_refund",
                     {{"endpoints", {"127.0.0.1:" + std::to_string(server_.listener.port)}}}}}},
                  {"approval", std::move(approval)}};
        p.merge_patch(extra);
        return write_profile({"127.0.0.9:9"}, {"127.0.0.10:9"}, "5m", p);
    }

    // Starts agent-run with the agent; returns once the agent said ready.
    void start_agent(const fs::path& profile) {
        int pipe_fds[2];
        ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
        stdio_[0] = pipe_fds[0];
        to_agent_ = pipe_fds[1];
        agent_pid_ = start({"--profile", profile.string(), "--", "/usr/bin/python3",
                            (dir_ / "agent.py").string(), "127.0.0.1",
                            std::to_string(server_.listener.port)});
        ::close(pipe_fds[0]);
        stdio_[0] = -1;
        ASSERT_EQ(next_line(20s), "ready") << read_text(dir_ / "stderr");
    }

    // Tells the agent to exit and waits for the session to end.
    void end_agent() {
        if (agent_pid_ <= 0) return;
        say("exit");
        ::close(to_agent_);
        result_ = wait(agent_pid_);
        agent_pid_ = -1;
    }

    void say(const std::string& command) {
        std::string line = command + "\n";
        (void)!::write(to_agent_, line.data(), line.size());
    }

    // The agent's next answer.
    std::string next_line(std::chrono::seconds timeout = 10s) {
        auto until = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < until) {
            std::istringstream lines(read_text(dir_ / "stdout"));
            std::string line;
            for (size_t i = 0; std::getline(lines, line); ++i)
                if (i == lines_read_) {
                    ++lines_read_;
                    return line;
                }
            std::this_thread::sleep_for(20ms);
        }
        return "(no answer)";
    }

    std::string ask_agent(const std::string& command, std::chrono::seconds timeout = 10s) {
        say(command);
        return next_line(timeout);
    }

    // cordonctl as `user`, with the test's approvals directory.
    CommandResult cordonctl(const std::string& user, const std::string& args) {
        fs::path out = dir_ / "cordonctl.out", err = dir_ / "cordonctl.err";
        const passwd* pw = ::getpwnam(user.c_str());
        if (!pw) ADD_FAILURE() << "no account " << user;
        std::string gid = pw ? std::to_string(pw->pw_gid) : user;
        std::string as = user == "root"
                             ? ""
                             : "setpriv --reuid=" + user + " --regid=" + gid + " --clear-groups ";
        std::string cmd = as + "env CORDON_APPROVALS_DIR=" + approvals_dir_ + " " +
                          CORDON_CORDONCTL + " " + args + " >" + out.string() + " 2>" +
                          err.string();
        int status = std::system(cmd.c_str());
        return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(out) + read_text(err),
                read_text(out)};
    }

    // The pending requests `user` sees.
    json pending(const std::string& user = "daemon") {
        auto r = cordonctl(user, "approvals --json");
        EXPECT_EQ(r.exit_code, 0) << r.out;
        json j = json::parse(r.out_only, nullptr, false);
        EXPECT_TRUE(j.is_object()) << r.out;
        return j.is_object() ? j["requests"] : json::array();
    }

    // The id of the one pending request, once there is one.
    std::string wait_for_request(const std::string& user = "daemon") {
        for (int i = 0; i < 100; ++i) {
            json p = pending(user);
            if (!p.empty()) return p[0]["id"];
            std::this_thread::sleep_for(50ms);
        }
        ADD_FAILURE() << "no pending request";
        return "";
    }

    // The audit events named `name`, waiting up to a few seconds for `count`.
    std::vector<json> events(const std::string& name, size_t count = 1) {
        for (int i = 0; i < 100; ++i) {
            auto found = events_named(audit_events(), name);
            if (found.size() >= count) return found;
            std::this_thread::sleep_for(50ms);
        }
        return events_named(audit_events(), name);
    }

    EchoServer server_;
    std::string approvals_dir_;
    pid_t agent_pid_ = -1;
    int to_agent_ = -1;
    size_t lines_read_ = 0;
    RunResult result_;
};

json approvers(std::vector<std::string> users) {
    return {{"approvers", {{"users", users}}}, {"requestTimeout", "5m"}, {"maxWindow", "1h"}};
}

TEST_F(AgentRunApprovalTest, ClosedUntilApprovedThenClosedAgainWithOpenConnectionsCut) {
    start_agent(approval_profile(approvers({"daemon"})));

    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    // Both attempts folded into one request.
    json p = pending();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0]["id"], id);
    EXPECT_EQ(p[0]["tool"], "issue_refund");
    EXPECT_EQ(p[0]["attempts"], 2);
    EXPECT_EQ(p[0]["destination"], "127.0.0.1:" + std::to_string(server_.listener.port) + "/tcp");
    EXPECT_EQ(p[0]["agentId"], "test-agent");
    auto requests = events("approval.request");
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0]["id"], id);
    EXPECT_EQ(requests[0]["via"], "connect");
    // Announced as approvers see it: the attempt that made it, and where to.
    EXPECT_EQ(requests[0]["attempts"], 1);
    EXPECT_EQ(requests[0]["destination"], p[0]["destination"]);
    EXPECT_EQ(requests[0]["agentId"], "test-agent");

    auto approved = cordonctl("daemon", "approve " + id + " --for 3s");
    ASSERT_EQ(approved.exit_code, 0) << approved.out;
    EXPECT_NE(approved.out.find("granted " + id), std::string::npos) << approved.out;
    EXPECT_EQ(ask_agent("hold"), "ok");
    EXPECT_EQ(ask_agent("connect"), "ok");
    EXPECT_EQ(ask_agent("send"), "ok");

    auto closed = events("approval.close");
    ASSERT_EQ(closed.size(), 1u) << "the window did not end";
    EXPECT_EQ(closed[0]["cause"], "window-ended");
    EXPECT_EQ(ask_agent("send"), "cut");
    // The packets egress dropped are no attempt of the agent's: no request.
    EXPECT_TRUE(pending().empty()) << pending().dump();
    EXPECT_EQ(ask_agent("connect"), "EPERM");

    auto grants = events("approval.grant");
    ASSERT_EQ(grants.size(), 1u);
    EXPECT_EQ(grants[0]["id"], id);
    EXPECT_EQ(grants[0]["tool"], "issue_refund");
    EXPECT_EQ(grants[0]["approver"], "daemon");
    EXPECT_EQ(grants[0]["approverUid"], 1);
    EXPECT_EQ(grants[0]["windowSeconds"], 3);
    EXPECT_TRUE(grants[0]["uses"].is_null());
    auto uses = events("approval.use", 2);
    ASSERT_EQ(uses.size(), 2u);
    EXPECT_EQ(uses[0]["id"], id);
    EXPECT_EQ(uses[0]["comm"], "python3");
    EXPECT_EQ(uses[0]["port"], server_.listener.port);
    EXPECT_EQ(uses[1]["used"], 2);
}

TEST_F(AgentRunApprovalTest, OneUseAllowsExactlyOneConnection) {
    start_agent(approval_profile(approvers({"daemon"})));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    auto approved = cordonctl("daemon", "approve " + id + " --for 1m --uses 1");
    ASSERT_EQ(approved.exit_code, 0) << approved.out;

    EXPECT_EQ(ask_agent("hold"), "ok");
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    // The one connection goes on for the window.
    EXPECT_EQ(ask_agent("send"), "ok");
    auto grants = events("approval.grant");
    ASSERT_EQ(grants.size(), 1u);
    EXPECT_EQ(grants[0]["uses"], 1);
    auto uses = events("approval.use");
    ASSERT_EQ(uses.size(), 1u);
    EXPECT_EQ(uses[0]["usesLeft"], 0);
    // The refused attempt asks again: a new request.
    auto requests = events("approval.request", 2);
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_NE(requests[1]["id"], id);
}

TEST_F(AgentRunApprovalTest, DenyAndTimeoutLeaveTheToolClosed) {
    json approval = approvers({"daemon"});
    approval["requestTimeout"] = "2s";
    approval["denyCooldown"] = "0s";
    start_agent(approval_profile(approval));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    auto denied = cordonctl("daemon", "deny " + id + " --reason 'no refunds today'");
    ASSERT_EQ(denied.exit_code, 0) << denied.out;
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    auto denies = events("approval.deny");
    ASSERT_EQ(denies.size(), 1u);
    EXPECT_EQ(denies[0]["id"], id);
    EXPECT_EQ(denies[0]["user"], "daemon");
    EXPECT_EQ(denies[0]["denyReason"], "no refunds today");

    // The second attempt's request is left to time out.
    auto expired = events("approval.expire");
    ASSERT_EQ(expired.size(), 1u);
    EXPECT_EQ(expired[0]["cause"], "request-timeout");
    EXPECT_NE(expired[0]["id"], id);
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    EXPECT_TRUE(events_named(audit_events(), "approval.grant").empty());
    // A decision on a request that is gone is refused.
    auto late = cordonctl("daemon", "approve " + id + " --for 1m");
    EXPECT_EQ(late.exit_code, 1);
    EXPECT_NE(late.out.find("no pending request " + id), std::string::npos) << late.out;
}

// After a denial the agent cannot ask again at once: its attempts stay
// denied without a new request until the cooldown ends.
TEST_F(AgentRunApprovalTest, ADenialHoldsOffNewRequestsForItsCooldown) {
    json approval = approvers({"daemon"});
    approval["denyCooldown"] = "3s";
    start_agent(approval_profile(approval));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    ASSERT_EQ(cordonctl("daemon", "deny " + id).exit_code, 0);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(ask_agent("connect"), "EPERM");
    json asked = json::parse(ask_agent("ask issue_refund 30"), nullptr, false);
    EXPECT_EQ(asked["decision"], "denied");
    EXPECT_GE(asked["retryAfter"].get<int>(), 1);
    EXPECT_TRUE(pending().empty()) << pending().dump();
    EXPECT_EQ(events_named(audit_events(), "approval.request").size(), 1u);

    std::this_thread::sleep_for(3s);
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    EXPECT_NE(wait_for_request(), id);
}

TEST_F(AgentRunApprovalTest, AskAheadBlocksUntilTheDecision) {
    start_agent(approval_profile(approvers({"daemon"})));
    say("ask issue_refund 30");
    std::string id = wait_for_request();
    json p = pending();
    ASSERT_EQ(p.size(), 1u);
    EXPECT_EQ(p[0]["reason"], "refund order 1042");
    EXPECT_TRUE(p[0]["destination"].is_null());
    ASSERT_EQ(cordonctl("daemon", "approve " + id + " --for 1m").exit_code, 0);
    json answer = json::parse(next_line(), nullptr, false);
    ASSERT_TRUE(answer.is_object());
    EXPECT_EQ(answer["decision"], "granted");
    EXPECT_EQ(answer["grant"]["id"], id);
    EXPECT_EQ(ask_agent("connect"), "ok");
    // Asked again while open: granted at once.
    json again = json::parse(ask_agent("ask issue_refund 30"), nullptr, false);
    EXPECT_EQ(again["decision"], "granted");
    EXPECT_EQ(events("approval.request")[0]["via"], "ask");
    EXPECT_EQ(events("approval.request")[0]["reason"], "refund order 1042");
}

TEST_F(AgentRunApprovalTest, AskAheadTimesOutDeniedAndUnknownTools) {
    start_agent(approval_profile(approvers({"daemon"})));
    json timeout = json::parse(ask_agent("ask issue_refund 1"), nullptr, false);
    EXPECT_EQ(timeout["decision"], "timeout");
    EXPECT_EQ(timeout["pending"], true);
    json unknown = json::parse(ask_agent("ask wire_money 1"), nullptr, false);
    EXPECT_EQ(unknown["decision"], "denied");
    EXPECT_EQ(unknown["reason"], "not a tool of approvalRequired in this session's profile");
    json denied_tool = json::parse(ask_agent("ask denied_tool 1"), nullptr, false);
    EXPECT_EQ(denied_tool["decision"], "denied");
    json allowed = json::parse(ask_agent("ask allowed_tool 1"), nullptr, false);
    EXPECT_EQ(allowed["decision"], "allowed");
    auto refused = events("approval.refused", 2);
    ASSERT_EQ(refused.size(), 2u);
    EXPECT_EQ(refused[0]["tool"], "wire_money");
    EXPECT_EQ(refused[0]["op"], "ask");

    std::string id = wait_for_request();
    say("ask issue_refund 30");
    std::this_thread::sleep_for(200ms);
    ASSERT_EQ(cordonctl("daemon", "deny " + id).exit_code, 0);
    json answer = json::parse(next_line(), nullptr, false);
    EXPECT_EQ(answer["decision"], "denied");
    EXPECT_EQ(answer["tool"], "issue_refund");
    EXPECT_EQ(answer["id"], id);
}

TEST_F(AgentRunApprovalTest, LauncherAndAgentAccountCannotApproveTheirOwnSession) {
    // root launches (standalone agent-run); nobody is the agent's account.
    start_agent(approval_profile(approvers({"root", "nobody"})));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request("root");
    auto by_launcher = cordonctl("root", "approve " + id + " --for 1m");
    EXPECT_EQ(by_launcher.exit_code, 1);
    EXPECT_NE(by_launcher.out.find("launched this session and may not approve"), std::string::npos)
        << by_launcher.out;
    auto by_agent = cordonctl("nobody", "approve " + id + " --for 1m");
    EXPECT_EQ(by_agent.exit_code, 1);
    EXPECT_NE(by_agent.out.find("is the account the agent runs as"), std::string::npos)
        << by_agent.out;
    auto by_stranger = cordonctl("daemon", "approve " + id + " --for 1m");
    EXPECT_EQ(by_stranger.exit_code, 1);
    // A stranger does not even see the session's requests, and is told so.
    EXPECT_TRUE(pending("daemon").empty());
    auto listed = cordonctl("daemon", "approvals");
    EXPECT_NE(listed.out.find("1 session(s) not shown: you are neither an approver"),
              std::string::npos)
        << listed.out;
    auto elsewhere = cordonctl("daemon", "--approvals-dir /run/cordon-no-such-dir approvals");
    EXPECT_EQ(elsewhere.exit_code, 1);
    EXPECT_NE(elsewhere.out.find("cannot read the approvals directory /run/cordon-no-such-dir"),
              std::string::npos)
        << elsewhere.out;
    auto empty = cordonctl("root", "approvals --approvals-dir " + dir_.string());
    EXPECT_EQ(empty.exit_code, 0) << empty.out;
    EXPECT_NE(empty.out.find("no session with approval tools answers in " + dir_.string()),
              std::string::npos)
        << empty.out;
    auto unfinished = cordonctl("daemon", "approve " + id);
    EXPECT_EQ(unfinished.exit_code, 2);
    EXPECT_EQ(unfinished.out.rfind("cordonctl: --for is required", 0), 0u) << unfinished.out;
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    auto refused = events("approval.refused", 3);
    ASSERT_EQ(refused.size(), 3u);
    EXPECT_EQ(refused[0]["uid"], 0);
    EXPECT_EQ(refused[1]["uid"], 65534);
    EXPECT_EQ(refused[2]["uid"], 1);
    EXPECT_EQ(refused[2]["op"], "approve " + id);
    EXPECT_TRUE(events_named(audit_events(), "approval.grant").empty());
}

// `sudo agent-run` on a host without pam_loginuid: the login uid tells
// nothing, sudo's SUDO_UID names the approver who launched.
TEST_F(AgentRunApprovalTest, TheAccountSudoRanAgentRunForIsItsLauncherToo) {
    extra_env_.push_back("SUDO_UID=1");  // daemon
    start_agent(approval_profile(approvers({"daemon", "bin"})));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    auto by_launcher = cordonctl("daemon", "approve " + id + " --for 1m");
    EXPECT_EQ(by_launcher.exit_code, 1);
    EXPECT_NE(by_launcher.out.find("launched this session and may not approve"), std::string::npos)
        << by_launcher.out;
    auto refused = events("approval.refused");
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_EQ(refused[0]["uid"], 1);
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    auto by_other = cordonctl("bin", "approve " + id + " --for 1m");
    ASSERT_EQ(by_other.exit_code, 0) << by_other.out;
    EXPECT_EQ(ask_agent("connect"), "ok");
}

TEST_F(AgentRunApprovalTest, SelfApprovalWhenTheProfileAllowsIt) {
    json approval = approvers({});
    approval["allowSelfApproval"] = true;
    start_agent(approval_profile(approval));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request("root");
    auto approved = cordonctl("root", "approve " + id + " --for 1m");
    ASSERT_EQ(approved.exit_code, 0) << approved.out;
    EXPECT_EQ(ask_agent("connect"), "ok");
}

TEST_F(AgentRunApprovalTest, AWindowLongerThanMaxWindowIsRefused) {
    start_agent(approval_profile(approvers({"daemon"})));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    auto r = cordonctl("daemon", "approve " + id + " --for 2h");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.out.find("approval.maxWindow"), std::string::npos) << r.out;
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    auto refused = events("approval.refused", 1);
    ASSERT_EQ(refused.size(), 1u);
    EXPECT_EQ(refused[0]["op"], "approve " + id);
}

TEST_F(AgentRunApprovalTest, GrantsEndWithTheSession) {
    start_agent(approval_profile(approvers({"daemon"})));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    ASSERT_EQ(cordonctl("daemon", "approve " + id + " --for 1h").exit_code, 0);
    EXPECT_EQ(ask_agent("connect"), "ok");
    end_agent();
    EXPECT_EQ(result_.exit_code, 0) << result_.err;
    auto closed = events_named(audit_events(), "approval.close");
    ASSERT_EQ(closed.size(), 1u);
    EXPECT_EQ(closed[0]["cause"], "session-ended");
    // The session's sockets are gone with it.
    EXPECT_TRUE(fs::is_empty(approvals_dir_));
    EXPECT_EQ(leftover_sessions(), 0u);
}

TEST_F(AgentRunApprovalTest, AGrantIssuesTheToolsCredentialsForItsWindowOnly) {
    auto source = dir_ / "refund-token.txt";
    write_text(source, "refund-secret-42\n");
    ASSERT_EQ(::chmod(source.c_str(), 0600), 0);
    json extra = {
        {"tools", {{"issue_refund", {{"credentials", {"refund_token"}}}}}},
        {"credentials",
         {{"refund_token",
           {{"source", {{"file", source.string()}}}, {"deliver", {{"file", "refund"}}}}}}}};
    start_agent(approval_profile(approvers({"daemon"}), extra));

    // Closed: the directory is there, empty.
    EXPECT_EQ(ask_agent("read refund"), "ENOENT");
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    ASSERT_EQ(cordonctl("daemon", "approve " + id + " --for 3s").exit_code, 0);
    EXPECT_EQ(ask_agent("read refund"), "refund-secret-42");
    auto issued = events("credential.issue");
    ASSERT_EQ(issued.size(), 1u);
    EXPECT_EQ(issued[0]["credential"], "refund_token");
    EXPECT_EQ(issued[0]["tool"], "issue_refund");
    EXPECT_EQ(issued[0]["grant"], true);

    ASSERT_EQ(events("approval.close").size(), 1u) << "the window did not end";
    EXPECT_EQ(ask_agent("read refund"), "ENOENT");
    auto revoked = events("credential.revoke");
    ASSERT_EQ(revoked.size(), 1u);
    EXPECT_EQ(revoked[0]["credential"], "refund_token");
    EXPECT_EQ(revoked[0]["tool"], "issue_refund");
    // The secret never reaches the audit log.
    EXPECT_EQ(read_text(audit_log_).find("refund-secret-42"), std::string::npos);
}

// A webhook receiver of the test's on loopback, and the approval object that names it.
struct TestWebhook {
    fs::path key, log;
    std::unique_ptr<WebhookReceiver> receiver;

    explicit TestWebhook(const fs::path& dir)
        : key(dir / "webhook.key"), log(dir / "webhook.jsonl") {
        write_text(key, "session-webhook-key\n");
        ::chmod(key.c_str(), 0600);
        receiver = std::make_unique<WebhookReceiver>(log, key, std::vector<std::string>{});
    }
    json approval() const {
        json a = approvers({"daemon"});
        a["webhook"] = {{"url", "http://127.0.0.1:" + std::to_string(receiver->port()) + "/hook"},
                        {"secretFile", key.string()}};
        return a;
    }
    // What the receiver got, one object per request.
    std::vector<json> received() const {
        std::vector<json> out;
        std::istringstream lines(read_text(log));
        for (std::string line; std::getline(lines, line);) out.push_back(json::parse(line));
        return out;
    }
};

TEST_F(AgentRunApprovalTest, TheWebhookGetsEachRequestAndDecisionSigned) {
    TestWebhook hook(dir_);
    ASSERT_TRUE(hook.receiver->running()) << "tests/webhook/receiver.py did not start";
    start_agent(approval_profile(hook.approval()));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    ASSERT_EQ(cordonctl("daemon", "approve " + id + " --for 1m").exit_code, 0);

    auto notified = events("approval.notify", 2);
    ASSERT_EQ(notified.size(), 2u) << read_text(audit_log_);
    EXPECT_EQ(notified[0]["webhookEvent"], "approval.request");
    EXPECT_EQ(notified[0]["delivered"], true);
    EXPECT_EQ(notified[0]["attempts"], 1);
    EXPECT_EQ(notified[1]["webhookEvent"], "approval.grant");
    std::vector<json> received = hook.received();
    ASSERT_EQ(received.size(), 2u);
    for (const json& r : received) {
        EXPECT_TRUE(r["signature_valid"].get<bool>()) << r.dump();
        EXPECT_EQ(r["path"], "/hook");
    }
    EXPECT_EQ(received[0]["headers"]["X-Cordon-Event"], "approval.request");
    json body = json::parse(received[0]["body"].get<std::string>());
    EXPECT_EQ(body["id"], id);
    EXPECT_EQ(body["tool"], "issue_refund");
    EXPECT_EQ(body["agentId"], "test-agent");
    // The test's approvals directory is not cordonctl's default: the commands name it.
    EXPECT_EQ(body["approve"],
              "cordonctl approve " + id + " --for 600s --approvals-dir " + approvals_dir_);
    EXPECT_EQ(body["deny"], "cordonctl deny " + id + " --approvals-dir " + approvals_dir_);
    json grant = json::parse(received[1]["body"].get<std::string>());
    EXPECT_EQ(grant["approver"], "daemon");
    // The key is nowhere in the record.
    EXPECT_EQ(read_text(audit_log_).find("session-webhook-key"), std::string::npos);
}

// A request still pending when the session ends expires, and the chat or
// ticket system is told so, rather than keeping a stale approve command.
TEST_F(AgentRunApprovalTest, TheWebhookIsToldOfARequestTheSessionsEndExpires) {
    TestWebhook hook(dir_);
    ASSERT_TRUE(hook.receiver->running()) << "tests/webhook/receiver.py did not start";
    start_agent(approval_profile(hook.approval()));
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    end_agent();
    EXPECT_EQ(result_.exit_code, 0) << result_.err;
    std::vector<json> received = hook.received();
    ASSERT_EQ(received.size(), 2u) << read_text(audit_log_);
    EXPECT_EQ(received[1]["headers"]["X-Cordon-Event"], "approval.expire");
    EXPECT_TRUE(received[1]["signature_valid"].get<bool>());
    json body = json::parse(received[1]["body"].get<std::string>());
    EXPECT_EQ(body["id"], id);
    EXPECT_EQ(body["cause"], "session-ended");
}

// The window is the kernel's: a supervisor killed mid-grant cannot leave
// the tool open, and the next agent-run reaps the session and its socket.
TEST_F(AgentRunApprovalTest, AGrantEndsOnTimeEvenWhenItsSupervisorWasKilled) {
    auto profile = approval_profile(approvers({"daemon"}));
    start_agent(profile);
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    std::string id = wait_for_request();
    ASSERT_EQ(cordonctl("daemon", "approve " + id + " --for 2s").exit_code, 0);
    auto granted = std::chrono::steady_clock::now();
    EXPECT_EQ(ask_agent("hold"), "ok");
    auto session = events("session.start")[0]["session"].get<std::string>();
    EXPECT_TRUE(fs::exists(approvals_dir_ + "/" + session + ".sock"));

    ::kill(agent_pid_, SIGKILL);
    ::waitpid(agent_pid_, nullptr, 0);
    agent_pid_ = -1;
    std::this_thread::sleep_until(granted + 2500ms);
    EXPECT_EQ(ask_agent("send"), "cut") << "the open connection outlived the window";
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    EXPECT_TRUE(events_named(audit_events(), "approval.close").empty());

    auto r = run({"--profile", profile.string(), "--", "true"}, 10s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto reaped = events_named(audit_events(), "session.reaped");
    ASSERT_EQ(reaped.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(reaped[0]["session"], session);
    EXPECT_FALSE(fs::exists(approvals_dir_ + "/" + session + ".sock"));
    EXPECT_EQ(leftover_sessions(), 0u);
    ::close(to_agent_);
}

// What the agent writes reaches approvers defused: no terminal escapes,
// cut on a character boundary, and the supervisor goes on.
TEST_F(AgentRunApprovalTest, AnAgentsReasonCannotDeceiveTheApproversTerminal) {
    start_agent(approval_profile(approvers({"daemon"})));
    json answer = json::parse(ask_agent("deceive issue_refund"), nullptr, false);
    EXPECT_EQ(answer["decision"], "timeout");
    json p = pending();
    ASSERT_EQ(p.size(), 1u);
    std::string reason = p[0]["reason"];
    EXPECT_EQ(reason.rfind("?[2J?[32mAPPROVED by security?", 0), 0u) << reason;
    EXPECT_EQ(reason.find('\x1b'), std::string::npos);
    EXPECT_LE(reason.size(), 503u);
    EXPECT_TRUE(reason.ends_with("\u00e9...")) << reason;
    auto table = cordonctl("daemon", "approvals");
    EXPECT_EQ(table.exit_code, 0);
    EXPECT_EQ(table.out.find('\x1b'), std::string::npos);
    EXPECT_EQ(ask_agent("connect"), "EPERM");
}

// What would stop or strand a session is found by --check.
// A URL that is itself a credential stays out of the profile and of
// --check: it is read from a protected file at launch.
TEST_F(AgentRunApprovalTest, AWebhookUrlKeptInAFileIsUsedAndNeverShown) {
    TestWebhook hook(dir_);
    ASSERT_TRUE(hook.receiver->running()) << "tests/webhook/receiver.py did not start";
    json approval = hook.approval();
    std::string url = approval["webhook"]["url"];
    auto url_file = dir_ / "webhook.url";
    write_text(url_file, url + "\n");
    ASSERT_EQ(::chmod(url_file.c_str(), 0644), 0);
    approval["webhook"].erase("url");
    approval["webhook"]["urlFile"] = url_file.string();
    auto profile = approval_profile(approval);
    auto r = run({"--check", "--profile", profile.string()});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("approval.webhook.urlFile"), std::string::npos) << r.err;

    ASSERT_EQ(::chmod(url_file.c_str(), 0600), 0);
    r = run({"--check", "--profile", profile.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.find(url), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"urlFile\": \"" + url_file.string()), std::string::npos) << r.out;

    start_agent(profile);
    EXPECT_EQ(ask_agent("connect"), "EPERM");
    wait_for_request();
    auto notified = events("approval.notify");
    ASSERT_EQ(notified.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(notified[0]["delivered"], true);
    std::vector<json> received = hook.received();
    ASSERT_EQ(received.size(), 1u);
    EXPECT_TRUE(received[0]["signature_valid"].get<bool>());
    EXPECT_EQ(read_text(audit_log_).find("/hook"), std::string::npos);
}

TEST_F(AgentRunApprovalTest, CheckFindsAnUnprotectedWebhookKeyAndApproversWhoCannotExist) {
    auto key = dir_ / "webhook.key";
    write_text(key, "k\n");
    ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
    json approval = approvers({"daemon"});
    approval["webhook"] = {{"url", "http://127.0.0.1:9/hook"}, {"secretFile", key.string()}};
    auto r = run({"--check", "--profile", approval_profile(approval).string()});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("approval.webhook.secretFile"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("chmod 600"), std::string::npos) << r.err;

    json strangers = {
        {"approvers", {{"users", {"no-such-approver"}}, {"groups", {"no-such-group"}}}}};
    r = run({"--check", "--profile", approval_profile(strangers).string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json check = json::parse(r.out, nullptr, false);
    ASSERT_TRUE(check.is_object()) << r.out;
    std::string warnings = check["warnings"].dump();
    EXPECT_NE(warnings.find("no account \\\"no-such-approver\\\""), std::string::npos) << warnings;
    EXPECT_NE(warnings.find("no group \\\"no-such-group\\\""), std::string::npos) << warnings;

    // A group nobody is in; a tool both allowed and gated.
    std::string empty_group = "cordon-empty-" + std::to_string(::getpid());
    ASSERT_EQ(std::system(("groupadd " + empty_group).c_str()), 0);
    json lonely = {{"approvers", {{"groups", {empty_group}}}}};
    r = run(
        {"--check", "--profile",
         approval_profile(lonely, {{"allowedTools", {"allowed_tool", "issue_refund"}}}).string()});
    (void)std::system(("groupdel " + empty_group).c_str());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("group \\\"" + empty_group + "\\\" has no members"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("allowedTools and approvalRequired both name issue_refund"),
              std::string::npos)
        << r.out;

    // Standalone, root launches: root alone named cannot grant either.
    r = run({"--check", "--profile", approval_profile(approvers({"root"})).string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("approval.approvers names only the launcher"), std::string::npos) << r.out;

    // Standalone, root launches: with nobody named, nobody may grant.
    r = run({"--check", "--profile", approval_profile(json::object()).string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("its requests cannot be granted"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace cordon::testing
