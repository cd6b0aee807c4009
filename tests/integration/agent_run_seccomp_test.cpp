// SPDX-License-Identifier: Apache-2.0
// The agent-default baseline end to end: tests/helpers/sc_escape tries one
// escape per run as the agent of a real agent-run session, and ordinary
// programs (python3, node, bash, git, curl) must run unchanged under the
// same filter.
#include <sys/stat.h>

#include <cerrno>
#include <csignal>
#include <string>
#include <vector>

#include "agent_run_fixture.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

const std::string kEscape = agent_helpers_dir() + "/sc_escape";

class AgentRunSeccompTest : public AgentRunTest {
  protected:
    RunResult run_case(const std::string& name) {
        return run({"--profile", write_profile({}, {}), "--", kEscape, name});
    }

    // The syscall.deny events of the audit log.
    std::vector<json> syscall_denials() const {
        return events_named(audit_events(), "syscall.deny");
    }
};

struct Case {
    const char* name;     // sc_escape's case
    const char* syscall;  // what syscall.deny names
};

// The escape class: the supervisor answers EPERM and reports each attempt.
const Case kNotified[] = {
    {"ptrace", "ptrace"},
    {"bpf", "bpf"},
    {"mount", "mount"},
    {"fsopen", "fsopen"},
    {"unshare", "unshare"},
    {"setns", "setns"},
    {"keyctl", "keyctl"},
    {"add_key", "add_key"},
    {"perf_event_open", "perf_event_open"},
    {"userfaultfd", "userfaultfd"},
    {"init_module", "init_module"},
    {"kexec_load", "kexec_load"},
    {"process_vm_readv", "process_vm_readv"},
    {"open_by_handle_at", "open_by_handle_at"},
};

TEST_F(AgentRunSeccompTest, EscapeClassIsRefusedAndAudited) {
    for (const auto& c : kNotified) {
        fs::remove(audit_log_);
        auto r = run_case(c.name);
        EXPECT_EQ(r.exit_code, EPERM) << c.name << ": " << r.out << r.err;
        auto denials = syscall_denials();
        ASSERT_EQ(denials.size(), 1u) << c.name << ": " << read_text(audit_log_);
        EXPECT_EQ(denials[0]["syscall"], c.syscall);
        EXPECT_TRUE(denials[0]["nr"].is_number_integer());
        EXPECT_GT(denials[0]["pid"].get<int>(), 0);
        EXPECT_EQ(denials[0]["agentId"], "test-agent");
    }
}

struct Refusal {
    const char* name;
    int err;
};

// Argument rules and refused groups answer in the filter itself: the
// errno of the rule, no round trip to the supervisor, no syscall.deny.
const Refusal kRefused[] = {
    {"socket-packet", EAFNOSUPPORT},
    {"socket-vsock", EAFNOSUPPORT},
    {"socket-alg", EAFNOSUPPORT},
    {"socket-high-bits", EAFNOSUPPORT},
    {"socket-sock-packet", EPERM},
    {"socket-netlink-audit", EPERM},
    {"clone-newuser", EPERM},
    {"clone-newnet", EPERM},
    {"clone3", ENOSYS},
    {"io_uring_setup", ENOSYS},
    {"ioctl-tiocsti", EPERM},
    {"ioctl-tiocsti-high-bits", EPERM},
    {"ioctl-tioclinux", EPERM},
    {"personality-linux32", EPERM},
    {"personality-read-implies-exec", EPERM},
    {"memfd-execveat", EPERM},
};

TEST_F(AgentRunSeccompTest, ArgumentRulesAnswerWithTheirErrno) {
    for (const auto& c : kRefused) {
        fs::remove(audit_log_);
        auto r = run_case(c.name);
        EXPECT_EQ(r.exit_code, c.err) << c.name << ": " << r.out << r.err;
        EXPECT_TRUE(syscall_denials().empty()) << c.name << ": " << read_text(audit_log_);
    }
}

// The other side of each argument rule: the forms programs use pass.
TEST_F(AgentRunSeccompTest, AllowedFormsOfFilteredSyscallsWork) {
    for (const char* name :
         {"socket-unix", "socket-inet", "socket-inet6", "socket-netlink-route", "clone-plain",
          "ioctl-plain", "personality-query", "personality-linux"}) {
        auto r = run_case(name);
        EXPECT_EQ(r.exit_code, 0) << name << ": " << r.out << r.err;
    }
}

TEST_F(AgentRunSeccompTest, ForeignAbisKillTheAgent) {
#if !defined(__x86_64__)
    GTEST_SKIP() << "x32 and int 0x80 are x86_64 concerns";
#endif
    auto profile = write_profile({}, {});
    for (const char* helper : {"sc_x32", "sc_int80"}) {
        auto r = run({"--profile", profile, "--", agent_helpers_dir() + "/" + helper});
        EXPECT_EQ(r.exit_code, 128 + SIGSYS) << helper << ": " << r.out << r.err;
    }
}

// Milliseconds since midnight of an event's time ("...T04:16:05.133Z").
long ms_of_day(const json& event) {
    std::string t = event["time"].get<std::string>().substr(11, 12);
    return ((std::stol(t.substr(0, 2)) * 60 + std::stol(t.substr(3, 2))) * 60 +
            std::stol(t.substr(6, 2))) *
               1000 +
           std::stol(t.substr(9, 3));
}

// More attempts than the budget: every one is refused, the events stop at
// the budget, the rest are counted in syscall.deny.suppressed while the
// session runs (2 s after the first one held back), and session.end gives
// the total.
TEST_F(AgentRunSeccompTest, SyscallDenialsAreRateLimited) {
    if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 not installed";
    const int attempts = 300;
    std::string script =
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "bad = 0\n"
        "for _ in range(" +
        std::to_string(attempts) +
        "):\n"
        "    if libc.ptrace(0, 0, 0, 0) == 0 or ctypes.get_errno() != 1: bad += 1\n"
        "print(bad)\n"
        "import time; time.sleep(3)\n";
    auto r = run({"--profile", write_profile({}, {}), "--", "python3", "-c", script});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "0\n");
    auto events = audit_events();
    size_t reported = events_named(events, "syscall.deny").size();
    EXPECT_LT(reported, static_cast<size_t>(attempts));
    uint64_t suppressed = 0;
    auto reports = events_named(events, "syscall.deny.suppressed");
    for (const auto& e : reports) suppressed += e["count"].get<uint64_t>();
    auto end = events_named(events, "session.end");
    ASSERT_EQ(end.size(), 1u);
    ASSERT_EQ(reports.size(), 1u) << read_text(audit_log_);
    long before_end = ms_of_day(end[0]) - ms_of_day(reports[0]);
    if (before_end < 0) before_end += 24 * 3600 * 1000;  // midnight between them
    EXPECT_GE(before_end, 500) << "reported by the timer, not only at the end";
    EXPECT_EQ(end[0]["syscallDenialsSuppressed"].get<uint64_t>(), suppressed);
    EXPECT_EQ(reported + suppressed, static_cast<size_t>(attempts));
}

// With agent-run gone, nobody answers the listener: the kernel fails the
// notified syscall (ENOSYS) rather than letting it run.
TEST_F(AgentRunSeccompTest, NotifiedSyscallFailsWhenTheSupervisorIsKilled) {
    auto go = dir_ / "go";
    pid_t supervisor = start(
        {"--profile", write_profile({}, {}), "--", kEscape, "--after", go.string(), "unshare"});
    fs::path ready = go.string() + ".ready", result = go.string() + ".result";
    for (int i = 0; i < 500 && read_text(ready).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_FALSE(read_text(ready).empty()) << read_text(dir_ / "stderr");

    ::kill(supervisor, SIGKILL);
    ::waitpid(supervisor, nullptr, 0);
    write_text(go, "go");
    for (int i = 0; i < 500 && read_text(result).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(read_text(result), std::to_string(ENOSYS) + "\n");
    // The orphan is gone by now; the next launch reaps its cgroup.
    auto r = run({"--profile", write_profile({}, {}), "--", "true"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// agent-run compiles the filter once and keeps it under its run directory:
// the next session with the same policy reads it back; a damaged file is
// compiled again and replaced, and the session runs all the same.
TEST_F(AgentRunSeccompTest, CompiledFilterIsKeptInTheRunDirectory) {
    auto profile = write_profile({}, {});
    fs::path dir = run_dir_ + "/seccomp";
    fs::remove_all(dir);
    auto r = run({"--profile", profile, "--", "true"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
    ASSERT_EQ(files.size(), 1u);
    struct stat st {};
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    ASSERT_EQ(::stat(files[0].c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ino_t first = st.st_ino;

    r = run({"--profile", profile, "--", kEscape, "ptrace"});
    EXPECT_EQ(r.exit_code, EPERM) << r.err;
    ASSERT_EQ(::stat(files[0].c_str(), &st), 0);
    EXPECT_EQ(st.st_ino, first) << "a hit must not rewrite the file";

    write_text(files[0], "damaged");
    r = run({"--profile", profile, "--", kEscape, "ptrace"});
    EXPECT_EQ(r.exit_code, EPERM) << r.err;
    EXPECT_NE(r.err.find("compiling again"), std::string::npos) << r.err;
    EXPECT_NE(read_text(files[0]), "damaged");
}

// ---- ordinary programs, unchanged ----

TEST_F(AgentRunSeccompTest, Python3Runs) {
    if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 not installed";
    auto profile = write_profile({}, {});
    auto r = run({"--profile", profile, "--", "python3", "--version"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("Python 3.", 0), 0u) << r.out;
    std::string script =
        "import json, hashlib, sqlite3, subprocess, threading, asyncio, tempfile, os\n"
        "from multiprocessing import Pool\n"
        "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
        "assert subprocess.run(['true']).returncode == 0\n"
        "with Pool(2) as p: squares = p.map(abs, [-1, -2, -3])\n"
        "db = sqlite3.connect(':memory:'); db.execute('create table t(x)')\n"
        "with tempfile.TemporaryDirectory() as d: open(os.path.join(d, 'f'), 'w').write('x')\n"
        "asyncio.run(asyncio.sleep(0))\n"
        "print(json.dumps(squares), hashlib.sha256(b'x').hexdigest()[:8])\n";
    r = run({"--profile", profile, "--", "python3", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "[1, 2, 3] 2d711642\n") << r.err;
    EXPECT_TRUE(syscall_denials().empty()) << read_text(audit_log_);
}

TEST_F(AgentRunSeccompTest, NodeRuns) {
    if (::system("command -v node >/dev/null 2>&1") != 0) GTEST_SKIP() << "node not installed";
    auto profile = write_profile({}, {});
    std::string script =
        "const fs = require('fs'), os = require('os'), path = require('path');"
        "const cp = require('child_process'), zlib = require('zlib');"
        "const d = fs.mkdtempSync(path.join(os.tmpdir(), 'n'));"
        "fs.writeFileSync(path.join(d, 'f'), 'node');"
        "const out = cp.execFileSync('cat', [path.join(d, 'f')]).toString();"
        "fs.rmSync(d, {recursive: true});"
        "const z = zlib.gunzipSync(zlib.gzipSync(out)).toString();"
        "setTimeout(() => console.log(process.version.startsWith('v'), z), 10);";
    auto r = run({"--profile", profile, "--", "node", "-e", script});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "true node\n") << r.err;
    EXPECT_TRUE(syscall_denials().empty()) << read_text(audit_log_);
}

TEST_F(AgentRunSeccompTest, BashRuns) {
    auto profile = write_profile({}, {});
    auto r = run({"--profile", profile, "--", "bash", "--version"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("GNU bash"), std::string::npos) << r.out;
    auto script = dir_ / "script.sh";
    write_text(script,
               "set -euo pipefail\n"
               "t=$(mktemp -d)\n"
               "for i in 1 2 3; do echo \"$i\" >> \"$t/n\"; done\n"
               "sum=0; while read -r n; do sum=$((sum + n)); done < \"$t/n\"\n"
               "trap 'echo trapped' USR1; kill -USR1 $$\n"
               "echo \"sum=$sum $(sort -r \"$t/n\" | head -1) $(cat < <(echo sub))\"\n"
               "rm -r \"$t\"\n");
    r = run({"--profile", profile, "--", "bash", script.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "trapped\nsum=6 3 sub\n") << r.err;
    EXPECT_TRUE(syscall_denials().empty()) << read_text(audit_log_);
}

TEST_F(AgentRunSeccompTest, GitClonesALocalRepository) {
    if (::system("command -v git >/dev/null 2>&1") != 0) GTEST_SKIP() << "git not installed";
    auto profile = write_profile({}, {});
    // The repository belongs to the agent's account: git refuses to read
    // one owned by somebody else (safe.directory).
    auto id = run({"--profile", profile, "--", "id", "-u"});
    ASSERT_EQ(id.exit_code, 0) << id.err;
    uid_t agent = static_cast<uid_t>(std::stoul(id.out));
    auto src = dir_ / "src";
    std::string make =
        "git init -q " + src.string() + " && cd " + src.string() +
        " && echo hello > a && git add a && git -c user.email=t@example.invalid -c user.name=t "
        "commit -qm first && chown -R " +
        std::to_string(agent) + " " + src.string();
    ASSERT_EQ(::system(make.c_str()), 0);

    auto dst = dir_ / "dst";
    auto r = run({"--profile", profile, "--", "sh", "-c",
                  "git clone -q " + src.string() + " " + dst.string() + " && git -C " +
                      dst.string() + " log --format=%s && cat " + dst.string() + "/a"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "first\nhello\n") << r.err;
    EXPECT_TRUE(syscall_denials().empty()) << read_text(audit_log_);
}

TEST_F(AgentRunSeccompTest, CurlDownloadsFromAnAllowedServer) {
    if (::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl not installed";
    OneShotHttpServer server;
    auto profile = write_profile({"127.0.0.1:" + std::to_string(server.listener.port)}, {});
    auto out = dir_ / "download";
    auto r = run({"--profile", profile, "--", "curl", "-sS", "--max-time", "5", "-o", out.string(),
                  "http://127.0.0.1:" + std::to_string(server.listener.port) + "/order"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_text(out), "order: 1042");
    EXPECT_TRUE(syscall_denials().empty()) << read_text(audit_log_);
}

}  // namespace
}  // namespace cordon::testing
