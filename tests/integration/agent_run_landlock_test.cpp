// SPDX-License-Identifier: Apache-2.0
// The profile's filesystem section, end to end: real agent-run, real
// agents, the kernel's Landlock. Every file the agent is refused is one its
// account could reach by mode, so only Landlock stands in the way.
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>

#include "agent_run_fixture.h"
#include "landlock/landlock.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

class AgentRunLandlockTest : public AgentRunTest {
  protected:
    void SetUp() override {
        AgentRunTest::SetUp();
        if (IsSkipped()) return;
        if (landlock::abi_version() < 1)
            GTEST_SKIP() << "this kernel has no Landlock (abi_version " << landlock::abi_version()
                         << ")";
        // Outside the agent's private /tmp and /var/tmp, which it would not see.
        tree_ =
            fs::path("/run") / ("cordon-landlock-" + std::to_string(::getpid()) + "-" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(tree_);
        for (const char* d : {"allowed", "workspace", "elsewhere", "tools"}) {
            fs::create_directories(tree_ / d);
            fs::permissions(tree_ / d, fs::perms::all);
        }
        fs::permissions(tree_, fs::perms::all);
        write_text(tree_ / "allowed" / "notes.txt", "allowed text");
        write_text(tree_ / "secret.txt", "secret text");
        fs::copy_file("/usr/bin/true", tree_ / "tools" / "tool");
        for (const auto& f : {tree_ / "allowed" / "notes.txt", tree_ / "secret.txt"})
            fs::permissions(f, fs::perms::owner_all | fs::perms::group_read |
                                   fs::perms::others_read | fs::perms::others_write);
    }

    void TearDown() override {
        if (!tree_.empty()) fs::remove_all(tree_);
        AgentRunTest::TearDown();
    }

    fs::path write_fs_profile(json filesystem) {
        return write_profile({}, {}, "5m", {{"filesystem", std::move(filesystem)}});
    }

    fs::path tree_;
};

// A python3 agent that tries each access and prints what it got, one
// "name: ok" or "name: ERRNO" line each.
std::string probe_script(const fs::path& tree) {
    std::string t = tree.string();
    return "import errno, subprocess\n"
           "def attempt(name, f):\n"
           "    try:\n"
           "        f()\n"
           "        print(name + ': ok')\n"
           "    except OSError as e:\n"
           "        print(name + ': ' + errno.errorcode.get(e.errno, str(e)))\n"
           "attempt('read allowed', lambda: open('" +
           t +
           "/allowed/notes.txt').read())\n"
           "attempt('read outside', lambda: open('" +
           t +
           "/secret.txt').read())\n"
           "attempt('write workspace', lambda: open('" +
           t +
           "/workspace/out.txt', 'w').write('x'))\n"
           "attempt('write read-only', lambda: open('" +
           t +
           "/allowed/notes.txt', 'a').write('x'))\n"
           "attempt('write outside', lambda: open('" +
           t +
           "/elsewhere/out.txt', 'w').write('x'))\n"
           "attempt('write over outside', lambda: open('" +
           t +
           "/secret.txt', 'a').write('x'))\n"
           "attempt('exec listed', lambda: subprocess.run(['/usr/bin/id', '-u'], check=True, "
           "stdout=subprocess.DEVNULL))\n"
           "attempt('exec in a listed directory', lambda: subprocess.run(['" +
           t +
           "/tools/tool'], check=True))\n"
           "attempt('exec unlisted', lambda: subprocess.run(['/usr/bin/whoami'], check=True))\n";
}

TEST_F(AgentRunLandlockTest, ReadsWritesAndExecutesOnlyWhatTheProfileLists) {
    auto profile = write_fs_profile({{"read", {(tree_ / "allowed").string()}},
                                     {"write", {(tree_ / "workspace").string()}},
                                     {"execute", {"/usr/bin/id", (tree_ / "tools").string()}}});
    auto r = run({"--profile", profile, "--", "python3", "-c", probe_script(tree_)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out,
              "read allowed: ok\n"
              "read outside: EACCES\n"
              "write workspace: ok\n"
              "write read-only: EACCES\n"
              "write outside: EACCES\n"
              "write over outside: EACCES\n"
              "exec listed: ok\n"
              "exec in a listed directory: ok\n"
              "exec unlisted: EACCES\n");
    EXPECT_EQ(read_text(tree_ / "workspace" / "out.txt"), "x");
    EXPECT_FALSE(fs::exists(tree_ / "elsewhere" / "out.txt"));
    EXPECT_EQ(read_text(tree_ / "secret.txt"), "secret text");

    auto start = events_named(audit_events(), "session.start");
    ASSERT_EQ(start.size(), 1u) << read_text(audit_log_);
    const json& fsf = start[0]["filesystem"];
    EXPECT_EQ(fsf["landlockAbi"], landlock::abi_version());
    EXPECT_EQ(fsf["read"][0], (tree_ / "allowed").string()) << fsf.dump();
    EXPECT_EQ(fsf["write"][0], (tree_ / "workspace").string()) << fsf.dump();
    EXPECT_EQ(fsf["execute"][0], "/usr/bin/id") << fsf.dump();
}

TEST_F(AgentRunLandlockTest, WithoutTheSectionNothingChanges) {
    auto profile = write_profile({}, {});
    auto r = run({"--profile", profile, "--", "cat", (tree_ / "secret.txt").string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "secret text");
    auto start = events_named(audit_events(), "session.start");
    ASSERT_EQ(start.size(), 1u);
    EXPECT_TRUE(start[0]["filesystem"].is_null()) << start[0].dump();
}

// The defaults alone are enough for the ordinary interpreters.
TEST_F(AgentRunLandlockTest, Python3AndBashRunUnderTheDefaults) {
    auto profile = write_fs_profile(json::object());
    auto r = run({"--profile", profile, "--", "python3", "-c",
                  "import json, ssl, sqlite3, tempfile, locale\n"
                  "with tempfile.NamedTemporaryFile() as f: f.write(b'x')\n"
                  "print(json.dumps({'ok': 1}))"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "{\"ok\": 1}\n");

    profile = write_fs_profile({{"execute", {"/usr/bin/cat"}}});
    r = run({"--profile", profile, "--", "bash", "-c",
             "cat /etc/hostname > /dev/null && echo cat-ran; ls / > /dev/null 2>&1 || echo "
             "ls-refused"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "cat-ran\nls-refused\n");
}

// The session mounts its own /proc, /tmp, /var/tmp and /dev/shm; rules on
// the host's directories would not reach them, so the init adds its own.
TEST_F(AgentRunLandlockTest, SessionsOwnMountsAreReachable) {
    auto profile = write_fs_profile(json::object());
    auto r = run({"--profile", profile, "--", "bash", "-c",
                  "for d in /tmp /var/tmp /dev/shm; do echo x > $d/f && echo $d-written; done; "
                  "read -r name _ < /proc/self/status && echo $name; "
                  "echo x > /run/cordon-landlock-$$ 2>/dev/null || echo run-refused"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "/tmp-written\n/var/tmp-written\n/dev/shm-written\nName:\nrun-refused\n");
}

// A coding agent: git, its helpers, and a workspace to commit in.
TEST_F(AgentRunLandlockTest, GitCommitsInItsWorkspace) {
    auto profile = write_fs_profile({{"write", {(tree_ / "workspace").string()}},
                                     {"execute", {"/usr/bin/git", "/usr/lib/git-core"}}});
    std::string repo = (tree_ / "workspace" / "repo").string();
    std::string script = "git init -q " + repo + " && cd " + repo +
                         " && echo hello > a.txt && git add a.txt && git -c user.name=agent "
                         "-c user.email=agent@example.test commit -q -m first && git log "
                         "--format=%s && git init -q " +
                         (tree_ / "elsewhere" / "repo").string() + " 2>/dev/null || echo refused";
    auto r = run({"--profile", profile, "--", "sh", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "first\nrefused\n");
    EXPECT_TRUE(fs::exists(tree_ / "workspace" / "repo" / ".git"));
    EXPECT_FALSE(fs::exists(tree_ / "elsewhere" / "repo"));
}

// A script named as the command runs: its interpreter is added with it.
TEST_F(AgentRunLandlockTest, ScriptCommandRunsWithItsInterpreter) {
    auto script = tree_ / "allowed" / "agent.sh";
    write_text(script, "#!/bin/sh\necho script-ran\n");
    fs::permissions(script, fs::perms::all);
    auto profile = write_fs_profile(json::object());
    auto r = run({"--profile", profile, "--", script.string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "script-ran\n");
}

// ABI 6: an agent under a filesystem section cannot signal a process
// outside its Landlock domain, even one of its own account: here the
// session's init (pid 1 of its namespace), which is not confined. Signal 0
// asks only whether the signal would be allowed.
TEST_F(AgentRunLandlockTest, AgentCannotSignalProcessesOutsideItsDomain) {
    if (landlock::abi_version() < 6) GTEST_SKIP() << "Landlock ABI 6 (scopes) is missing";
    const std::string kill =
        "import os, errno\ntry:\n os.kill(1, 0)\n print('allowed')\nexcept OSError as e:\n"
        " print(errno.errorcode[e.errno])";
    auto confined =
        run({"--profile", write_fs_profile(json::object()), "--", "python3", "-c", kill});
    EXPECT_EQ(confined.exit_code, 0) << confined.err;
    EXPECT_EQ(confined.out, "EPERM\n");
    auto plain = run({"--profile", write_profile({}, {}), "--", "python3", "-c", kill});
    EXPECT_EQ(plain.exit_code, 0) << plain.err;
    EXPECT_EQ(plain.out, "allowed\n") << "without Landlock the init is the agent's own account";
}

TEST_F(AgentRunLandlockTest, MissingPathIsRefusedNamingTheKey) {
    auto ran = dir_ / "ran";
    auto profile = write_fs_profile(
        {{"read", {"/usr"}}, {"write", {(tree_ / "workspace").string(), "/nonexistent/ws"}}});
    for (bool check : {true, false}) {
        auto r = check ? run({"--check", "--profile", profile})
                       : run({"--profile", profile, "--", "touch", ran.string()});
        EXPECT_EQ(r.exit_code, 125);
        EXPECT_NE(r.err.find("filesystem.write[1]: cannot open /nonexistent/ws for a Landlock "
                             "rule: No such file or directory (create it or remove it from the "
                             "profile)"),
                  std::string::npos)
            << r.err;
    }
    EXPECT_FALSE(fs::exists(ran)) << "the agent ran";
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunLandlockTest, RelativePathIsRefused) {
    auto ran = dir_ / "ran";
    auto profile = write_fs_profile({{"execute", {"bin/tool"}}});
    auto r = run({"--profile", profile, "--", "touch", ran.string()});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("filesystem.execute[0]: \"bin/tool\" is not an absolute path"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(ran));
}

TEST_F(AgentRunLandlockTest, CheckReportsTheKernelsAbiAndTheRules) {
    auto profile = write_fs_profile({{"read", {(tree_ / "allowed").string()}}});
    auto r = run({"--check", "--profile", profile});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto out = json::parse(r.out);
    EXPECT_EQ(out["landlock"]["abi"], landlock::abi_version());
    auto enforced = out["landlock"]["enforced"];
    EXPECT_EQ(enforced[0], "execute");
    if (landlock::abi_version() >= 3) {
        EXPECT_NE(std::find(enforced.begin(), enforced.end(), "truncate"), enforced.end());
    }
    EXPECT_EQ(out["filesystem"]["read"][0], (tree_ / "allowed").string()) << r.out;
    EXPECT_NE(
        std::find(out["filesystem"]["write"].begin(), out["filesystem"]["write"].end(), "/tmp"),
        out["filesystem"]["write"].end())
        << r.out;

    // Without the section, --check still says what the kernel offers.
    r = run({"--check", "--profile", write_profile({}, {})});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    out = json::parse(r.out);
    EXPECT_EQ(out["landlock"]["abi"], landlock::abi_version());
    EXPECT_FALSE(out.contains("filesystem"));
}

}  // namespace
}  // namespace cordon::testing
