// SPDX-License-Identifier: Apache-2.0
// End to end, from a red-team review of agent-run: an agent that attacks
// its supervisor (its locks, its signals, its audit log) and what it must
// not achieve. Real agent-run, real agents, the real kernel.
#include <sys/stat.h>

#include <pwd.h>

#include "agent_run_fixture.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

// Waits until path exists, at most timeout.
bool wait_for_file(const fs::path& path, std::chrono::seconds timeout = std::chrono::seconds(6)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!fs::exists(path)) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

// The agent takes shared flocks on Cordon's root cgroup directory and on its
// own session's, where a supervisor that trusted cgroup directory locks
// would block forever (root) or take the session for a live one (its own).
TEST_F(AgentRunTest, AgentHoldingCgroupDirLocksIsStillReapedPromptly) {
    auto profile = write_profile({}, {});
    auto mount = cgroup::find_cgroup2_mount();
    ASSERT_TRUE(mount.ok());
    auto pidfile = dir_ / "agent.pid";
    auto locked = dir_ / "locked";
    std::string script =
        "import fcntl,os,time\n"
        "def lock(p):\n"
        " fd=os.open(p,os.O_RDONLY|os.O_DIRECTORY); fcntl.flock(fd,fcntl.LOCK_SH); return fd\n"
        "own='" +
        *mount +
        "'+open('/proc/self/cgroup').read().split('::',1)[1].strip()\n"
        "a=lock('" +
        cgroup_root_ +
        "')\n"
        "open('" +
        pidfile.string() +
        "','w').write(str(os.getpid()))\n"
        "b=lock(own)\n"
        "open('" +
        locked.string() +
        "','w').write('locked')\n"
        "time.sleep(300)\n";
    pid_t supervisor = start({"--profile", profile, "--", "python3", "-c", script});
    ASSERT_TRUE(wait_for_file(pidfile)) << read_text(dir_ / "stderr");
    pid_t agent = std::stoi(read_text(pidfile));

    ::kill(supervisor, SIGKILL);
    ::waitpid(supervisor, nullptr, 0);
    // Both locks held: the agent's own cgroup lock may wait for the dead supervisor's.
    EXPECT_TRUE(wait_for_file(locked)) << "the agent never got its locks";

    auto r = run({"--profile", profile, "--", "true"}, std::chrono::seconds(10));

    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto events = audit_events();
    auto starts = events_named(events, "session.start");
    auto reaped = events_named(events, "session.reaped");
    ASSERT_GE(starts.size(), 1u) << read_text(audit_log_);
    ASSERT_EQ(reaped.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(reaped[0]["session"], starts[0]["session"]);
    EXPECT_EQ(reaped[0]["reason"], "supervisor-gone");
    EXPECT_FALSE(process_alive(agent)) << "agent " << agent << " outlived its reaped session";
    EXPECT_EQ(leftover_cgroups(), 0u);
    EXPECT_EQ(leftover_sessions(), 0u);
    if (process_alive(agent)) ::kill(agent, SIGKILL);  // never leave it behind
}

// Session ownership rests on lock files the agent cannot reach, and
// agent-run refuses a lock directory others could open.
TEST_F(AgentRunTest, SessionLockFilesAreInADirectoryOnlyRootCanOpen) {
    auto profile = write_profile({}, {});
    std::string locks = lock_dir();
    auto r = run({"--profile", profile, "--", "sh", "-c",
                  "ls " + locks + " >/dev/null 2>&1 && echo opened || echo refused"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "refused\n");
    struct stat st {};
    ASSERT_EQ(::stat(locks.c_str(), &st), 0) << locks;
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    EXPECT_TRUE(fs::is_empty(locks)) << "a finished session left its lock file";

    ASSERT_EQ(::chmod(locks.c_str(), 0755), 0);
    r = run({"--profile", profile, "--", "true"});
    ::chmod(locks.c_str(), 0700);
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("lock directory " + locks + " has mode 0755"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("chmod 0700 " + locks), std::string::npos) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

}  // namespace
}  // namespace cordon::testing
