// SPDX-License-Identifier: Apache-2.0
// cordond's pure logic: the request parser, the configuration, who may
// launch, and the session record that outlives a restart.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "daemon/config.h"
#include "daemon/peer.h"
#include "daemon/protocol.h"
#include "daemon/state.h"

namespace cordon::daemon {
namespace {

using nlohmann::json;

json good_launch() {
    return {{"op", "launch"},
            {"profile", "support"},
            {"argv", {"python3", "agent.py"}},
            {"cwd", "/srv/work"},
            {"env", {"PATH=/usr/bin", "LANG=C.UTF-8"}}};
}

std::string launch_error(json body) {
    auto r = parse_launch(body);
    return r ? "" : r.error().message();
}

TEST(DaemonRequest, LaunchReadsEveryField) {
    auto r = parse_launch(good_launch());
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->profile, "support");
    EXPECT_EQ(r->argv, (std::vector<std::string>{"python3", "agent.py"}));
    EXPECT_EQ(r->cwd, "/srv/work");
    EXPECT_EQ(r->env.size(), 2u);
    EXPECT_EQ(to_json(*r), good_launch());
}

TEST(DaemonRequest, LaunchErrorsNameTheFieldAndWhy) {
    auto with = [](const char* key, json value) {
        json j = good_launch();
        j[key] = std::move(value);
        return j;
    };
    EXPECT_EQ(launch_error(with("profile", 5)), "profile: expected a string");
    EXPECT_EQ(launch_error(with("profile", "")), "profile: empty (name an installed profile)");
    EXPECT_EQ(launch_error(with("argv", json::array())), "argv: no command given");
    EXPECT_EQ(launch_error(with("argv", "ls")), "argv: expected an array of strings");
    EXPECT_EQ(launch_error(with("argv", {"ls", 3})), "argv[1]: expected a string");
    EXPECT_EQ(launch_error(with("argv", {std::string("l\0s", 3)})), "argv[0]: contains a NUL byte");
    EXPECT_EQ(launch_error(with("cwd", "relative")), "cwd: expected an absolute path");
    EXPECT_EQ(launch_error(with("env", {"NOEQUALS"})), "env[0]: expected NAME=VALUE");
    EXPECT_EQ(launch_error(with("env", {"=x"})), "env[0]: expected NAME=VALUE");
    EXPECT_EQ(launch_error(with("user", "root")),
              "user: unknown key (expected op, profile, argv, cwd, env)");
    json many = good_launch();
    many["argv"] = std::vector<std::string>(5000, "x");
    EXPECT_EQ(launch_error(many), "argv: more than 4096 entries");
}

// A socket pair stands in for a connection.
struct Pair {
    int fd[2];
    Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fd), 0); }
    ~Pair() {
        ::close(fd[0]);
        ::close(fd[1]);
    }
};

TEST(DaemonMessages, RoundTripWithDescriptors) {
    Pair p;
    int stdio[3] = {0, 1, 2};
    ASSERT_TRUE(send_message(p.fd[0], {{"op", "sessions"}}, stdio));
    auto m = receive_message(p.fd[1], kMaxRequestBytes);
    ASSERT_TRUE(m && *m);
    EXPECT_EQ((*m)->body, (json{{"op", "sessions"}}));
    EXPECT_EQ((*m)->fds.size(), 3u);
}

TEST(DaemonMessages, OversizedAndMalformedAreRefused) {
    Pair p;
    std::string big(2000, 'x');
    (void)!::send(p.fd[0], big.data(), big.size(), 0);
    auto m = receive_message(p.fd[1], 1000);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message(), "message refused: larger than 1000 bytes");
    (void)!::send(p.fd[0], "{\"op\":", 6, 0);
    m = receive_message(p.fd[1], 1000);
    ASSERT_FALSE(m);
    EXPECT_EQ(m.error().message(), "message refused: not one JSON object");
    ::shutdown(p.fd[0], SHUT_WR);
    m = receive_message(p.fd[1], 1000);
    ASSERT_TRUE(m);
    EXPECT_FALSE(*m) << "end of stream";
}

struct TempFile {
    std::string path = "/tmp/cordon-daemon-test-" + std::to_string(::getpid()) + ".json";
    explicit TempFile(const std::string& text) { std::ofstream(path) << text; }
    ~TempFile() { std::filesystem::remove(path); }
};

TEST(DaemonConfig, ReadsKeysAndKeepsDefaults) {
    TempFile f(R"({"socket": "/run/t/s.sock", "adminGroups": ["ops"], "maxSessions": 4})");
    auto c = load_config(f.path);
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->socket, "/run/t/s.sock");
    EXPECT_EQ(c->admin_groups, (std::vector<std::string>{"ops"}));
    EXPECT_EQ(c->max_sessions, 4u);
    EXPECT_EQ(c->cgroup, "cordond");
    EXPECT_EQ(c->profiles_dir, "/etc/cordon/profiles.d");
}

TEST(DaemonConfig, ErrorsNameFileKeyAndExpectation) {
    TempFile unknown(R"({"sockett": "/x"})");
    auto c = load_config(unknown.path);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message().find(unknown.path + ": sockett: unknown key (expected one of: "),
              std::string::npos)
        << c.error().message();
    TempFile relative(R"({"runDir": "run"})");
    EXPECT_EQ(load_config(relative.path).error().message(),
              relative.path + ": runDir: expected an absolute path, got \"run\"");
    TempFile escape(R"({"cgroup": "../escape"})");
    EXPECT_EQ(load_config(escape.path).error().message(),
              escape.path + ": cgroup: expected a relative cgroup path without ..");
    auto missing = load_config("/nonexistent/cordond.json");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message().find("give another file with --config"), std::string::npos);
}

TEST(DaemonPeer, LaunchersByNameOrIdAndGroups) {
    Peer nobody{1, 65534, 65534, {65534, 4242}, "nobody", std::nullopt};
    EXPECT_TRUE(may_launch({{"65534"}, {}}, nobody));
    EXPECT_TRUE(may_launch({{}, {"4242"}}, nobody));
    EXPECT_FALSE(may_launch({{"1000"}, {"4243"}}, nobody));
    EXPECT_FALSE(may_launch({}, nobody)) << "no launchers: root only";
    EXPECT_TRUE(may_launch({}, Peer{1, 0, 0, {0}, "root", std::nullopt}));
    EXPECT_FALSE(may_launch({{"no-such-user-here"}, {"no-such-group-here"}}, nobody));
    EXPECT_TRUE(is_admin(Peer{1, 0, 0, {0}, "root", std::nullopt}, {}));
    EXPECT_TRUE(is_admin(nobody, {"4242"}));
    EXPECT_FALSE(is_admin(nobody, {"4243"}));
}

TEST(DaemonState, RecordRoundTrips) {
    SessionRecord r;
    r.session = "0b7e1f0c-3d6a-4b8e-9a51-2f1c0d9e8a77";
    r.agent_id = "a";
    r.agent_type = "t";
    r.version = "1";
    r.profile = "p";
    r.user = "nobody";
    r.uid = 65534;
    r.launcher_uid = 65534;
    r.agent_pid = 10;
    r.supervisor_pid = 9;
    r.supervisor_start = 12345;
    r.started = "2026-12-04T07:00:00.000Z";
    r.deadline = std::chrono::system_clock::time_point(std::chrono::milliseconds(1800000000123));
    r.cgroup_path = "/sys/fs/cgroup/cordond/x";
    r.cgroup_id = 77;
    r.denials = 3;
    auto back = record_from_json(to_json(r));
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(to_json(*back), to_json(r));
    json bad = to_json(r);
    bad["session"] = "../../etc/passwd";
    EXPECT_FALSE(record_from_json(bad));
    EXPECT_EQ(process_start_time(::getpid()).has_value(), true);
}

}  // namespace
}  // namespace cordon::daemon

#include "daemon/audit_tail.h"

namespace cordon::daemon {
namespace {

TEST(DaemonAuditTail, PassesOnCompleteNewLinesAndFollowsATruncation) {
    std::string path = "/tmp/cordon-audit-tail-" + std::to_string(::getpid());
    std::ofstream(path) << "{\"old\":1}\n";
    AuditTail tail(path);
    std::vector<std::string> seen;
    auto sink = [&](const std::string& line) { seen.push_back(line); };

    std::ofstream(path, std::ios::app) << "{\"a\":1}\n{\"b\":";
    tail.poll(sink);
    EXPECT_EQ(seen, (std::vector<std::string>{"{\"a\":1}"}));
    std::ofstream(path, std::ios::app) << "2}\n";
    tail.poll(sink);
    EXPECT_EQ(seen.back(), "{\"b\":2}");
    std::ofstream(path, std::ios::trunc) << "{\"c\":3}\n";  // copytruncate, then a new event
    tail.poll(sink);
    EXPECT_EQ(seen.back(), "{\"c\":3}");
    EXPECT_EQ(seen.size(), 3u);
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace cordon::daemon
