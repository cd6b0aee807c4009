// SPDX-License-Identifier: Apache-2.0
// End to end, from a red-team review of agent-run: an agent that attacks
// its supervisor (its locks, its signals, its audit log) and what it must
// not achieve. Real agent-run, real agents, the real kernel.
#include <sys/shm.h>
#include <sys/stat.h>
#include <termios.h>

#include <grp.h>
#include <pwd.h>

#include <cstring>
#include <set>

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
    // The pid the agent knows is of its own pid namespace: on the host, its
    // session's init (session.start's pid) is the one to watch.
    auto first = events_named(audit_events(), "session.start");
    ASSERT_EQ(first.size(), 1u) << read_text(audit_log_);
    pid_t agent = first[0]["pid"].get<pid_t>();

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

// As in `(agent-run ... 2>&1 >/dev/null) | head -1`: the reader of
// agent-run's stderr, where its audit events go, reads a line and leaves.
// agent-run must not die of SIGPIPE: the agent is still killed at its deadline.
TEST_F(AgentRunTest, ClosedStderrPipeDoesNotSaveTheAgentFromItsDeadline) {
    auto profile = write_profile({}, {}, "2s");
    auto pidfile = dir_ / "agent.pid";
    std::string sleep = unique_sleep();
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd reader(p[0]), writer(p[1]);
    stdio_[2] = writer.get();
    pid_t pid = start({"--audit-log", "-", "--profile", profile, "--", "sh", "-c",
                       "echo $$ > " + pidfile.string() + "; exec sleep " + sleep});
    writer.reset();
    std::string line;
    char c = 0;
    while (::read(reader.get(), &c, 1) == 1 && c != '\n') line += c;
    reader.reset();
    ASSERT_TRUE(wait_for_file(pidfile));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the exec
    auto agents = pids_running("sleep " + sleep);

    auto r = wait(pid, std::chrono::seconds(15));

    EXPECT_FALSE(line.empty()) << "agent-run wrote nothing to stderr";
    EXPECT_EQ(r.exit_code, 124) << "141 is death by SIGPIPE";
    ASSERT_EQ(agents.size(), 1u) << "the agent never ran";
    EXPECT_FALSE(process_alive(agents[0])) << "agent " << agents[0] << " outlived its deadline";
    EXPECT_EQ(leftover_cgroups(), 0u);
    if (process_alive(agents[0])) ::kill(agents[0], SIGKILL);
}

// An agent whose many threads call unshare (user notification) without
// pause: agent-run answers them in batches between its other duties, so
// the deadline still comes on time and each refusal stands.
TEST_F(AgentRunTest, NotificationFloodDoesNotHoldOffTheDeadline) {
    auto profile = write_profile({}, {}, "2s");

    auto start_time = std::chrono::steady_clock::now();
    auto r = run({"--profile", profile, "--", agent_helpers_dir() + "/sc_notify_flood", "1000"},
                 std::chrono::seconds(40));
    auto took = std::chrono::steady_clock::now() - start_time;

    EXPECT_EQ(r.exit_code, 124) << r.err.substr(0, 2000);
    EXPECT_LT(took, std::chrono::seconds(15)) << "the deadline was 2s";
    auto events = audit_events();
    auto ends = events_named(events, "session.end");
    ASSERT_EQ(ends.size(), 1u);
    EXPECT_EQ(ends[0]["reason"], "deadline");
    auto denials = events_named(events, "syscall.deny");
    ASSERT_FALSE(denials.empty());
    EXPECT_EQ(denials[0]["syscall"], "unshare");
    EXPECT_GT(ends[0]["syscallDenialsSuppressed"].get<uint64_t>(), 0u);
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// The same with denied connects: agent-run reads the ring buffer in
// batches, so a flood of net.deny events does not hold off the deadline.
TEST_F(AgentRunTest, DenialFloodDoesNotHoldOffTheDeadline) {
    auto profile = write_profile({}, {}, "2s");

    auto start_time = std::chrono::steady_clock::now();
    auto r = run({"--profile", profile, "--", agent_helpers_dir() + "/nf_connect_flood", "200"},
                 std::chrono::seconds(60));
    auto took = std::chrono::steady_clock::now() - start_time;

    EXPECT_EQ(r.exit_code, 124) << r.err.substr(0, 2000);
    EXPECT_LT(took, std::chrono::seconds(10)) << "the deadline was 2s";
    auto events = audit_events();
    auto ends = events_named(events, "session.end");
    ASSERT_EQ(ends.size(), 1u);
    EXPECT_EQ(ends[0]["reason"], "deadline");
    EXPECT_FALSE(events_named(events, "net.deny").empty());
    EXPECT_GT(ends[0]["denialsSuppressed"].get<uint64_t>(), 0u);
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// A pseudo-terminal pair: the test holds the terminal's side, the agent the other.
void open_pty(UniqueFd& master, UniqueFd& slave) {
    master.reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    ASSERT_TRUE(master.valid()) << std::strerror(errno);
    ASSERT_EQ(::grantpt(master.get()), 0);
    ASSERT_EQ(::unlockpt(master.get()), 0);
    slave.reset(::open(::ptsname(master.get()), O_RDWR | O_NOCTTY | O_CLOEXEC));
    ASSERT_TRUE(slave.valid()) << std::strerror(errno);
}

// With a terminal as stderr, agent-run's audit events go to that terminal:
// an agent that suspended its output (tcflow TCOOFF) would leave agent-run
// blocked on its next write, the deadline's event among them.
TEST_F(AgentRunTest, AgentCannotSuspendTheTerminalAgentRunWritesTo) {
    UniqueFd master, slave;
    ASSERT_NO_FATAL_FAILURE(open_pty(master, slave));
    stdio_[0] = slave.get();
    stdio_[2] = slave.get();
    auto profile = write_profile({}, {}, "2s");
    std::string script =
        "import errno, termios, time\n"
        "try:\n termios.tcflow(2, termios.TCOOFF); print('suspended', flush=True)\n"
        "except termios.error as e:\n print(errno.errorcode[e.args[0]], flush=True)\n"
        "time.sleep(60)";

    auto start_time = std::chrono::steady_clock::now();
    auto r = run({"--audit-log", "-", "--profile", profile, "--", "python3", "-c", script},
                 std::chrono::seconds(30));
    auto took = std::chrono::steady_clock::now() - start_time;

    EXPECT_EQ(r.out, "EPERM\n");
    EXPECT_EQ(r.exit_code, 124);
    EXPECT_LT(took, std::chrono::seconds(10)) << "the deadline was 2s";
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// A caller that reads stdout to its end before stderr leaves agent-run's
// stderr pipe unread. An agent that fills that pipe (through a non-blocking
// moment of the description they share) must not hold off its own
// deadline: agent-run kills before it writes, and never blocks on stderr.
TEST_F(AgentRunTest, FullStderrPipeDoesNotHoldOffTheDeadline) {
    auto profile = write_profile({}, {}, "2s");
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd reader(p[0]), writer(p[1]);
    stdio_[2] = writer.get();
    std::string script =
        "import fcntl, os, time\n"
        "flags = fcntl.fcntl(2, fcntl.F_GETFL)\n"
        "fcntl.fcntl(2, fcntl.F_SETFL, flags | os.O_NONBLOCK)\n"
        "try:\n while True: os.write(2, b'x' * 4096)\n"
        "except BlockingIOError: pass\n"
        "fcntl.fcntl(2, fcntl.F_SETFL, flags)\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(60)";

    auto start_time = std::chrono::steady_clock::now();
    pid_t pid = start({"--audit-log", "-", "--profile", profile, "--", "python3", "-c", script});
    writer.reset();
    auto r = wait(pid, std::chrono::seconds(30));
    auto took = std::chrono::steady_clock::now() - start_time;
    std::string err;
    char buf[65536];
    ::fcntl(reader.get(), F_SETFL, O_NONBLOCK);
    for (ssize_t n; (n = ::read(reader.get(), buf, sizeof buf)) > 0;) err.append(buf, n);

    EXPECT_EQ(r.exit_code, 124);
    EXPECT_LT(took, std::chrono::seconds(10)) << "the deadline was 2s";
    EXPECT_GE(err.size(), 4096u) << "the agent did not fill the pipe";
    EXPECT_FALSE(r.out.empty()) << "the agent never got past filling the pipe";
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// A terminal's output also stops when it receives its stop character, which
// the agent can set to what the terminal itself sends (ESC, the start of
// every reply to a query): the test sends it as that terminal would. The
// deadline still comes, and the terminal's modes are restored after.
TEST_F(AgentRunTest, StoppedTerminalDoesNotHoldOffTheDeadlineAndIsRestored) {
    UniqueFd master, slave;
    ASSERT_NO_FATAL_FAILURE(open_pty(master, slave));
    termios before{};
    ASSERT_EQ(::tcgetattr(slave.get(), &before), 0);
    stdio_[0] = slave.get();
    stdio_[2] = slave.get();
    auto profile = write_profile({}, {}, "3s");
    auto ready = dir_ / "ready";
    std::string script =
        "import termios, time\n"
        "a = termios.tcgetattr(2)\n"
        "a[0] |= termios.IXON; a[3] &= ~termios.ISIG; a[6][termios.VSTOP] = b'\\x1b'\n"
        "termios.tcsetattr(2, termios.TCSANOW, a)\n"
        "open('" +
        ready.string() +
        "', 'w').close()\n"
        "time.sleep(60)";

    auto start_time = std::chrono::steady_clock::now();
    pid_t pid = start({"--audit-log", "-", "--profile", profile, "--", "python3", "-c", script});
    ASSERT_TRUE(wait_for_file(ready));
    ASSERT_EQ(::write(master.get(), "\x1b", 1), 1);
    auto r = wait(pid, std::chrono::seconds(30));
    auto took = std::chrono::steady_clock::now() - start_time;
    termios after{};
    ASSERT_EQ(::tcgetattr(slave.get(), &after), 0);

    EXPECT_EQ(r.exit_code, 124);
    EXPECT_LT(took, std::chrono::seconds(10)) << "the deadline was 3s";
    EXPECT_EQ(after.c_cc[VSTOP], before.c_cc[VSTOP]) << "the agent's stop character stayed";
    EXPECT_EQ(after.c_iflag, before.c_iflag);
    EXPECT_EQ(after.c_lflag, before.c_lflag);
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// SysV IPC is per IPC namespace, and its objects stay until removed: an
// agent in the host's namespace could read a world-readable segment of the
// host's, talk to another session through one, or leave memory behind that
// no cgroup accounts for after its session ended.
TEST_F(AgentRunTest, SysvIpcNeitherReachesTheHostNorOutlivesTheSession) {
    key_t host_key = 0x43000000 + ::getpid(), agent_key = host_key + 0x100000;
    int host_segment = ::shmget(host_key, 4096, IPC_CREAT | IPC_EXCL | 0666);
    ASSERT_GE(host_segment, 0) << std::strerror(errno);
    auto profile = write_profile({}, {});

    auto r = run({"--profile", profile, "--", agent_helpers_dir() + "/pr_sysvipc",
                  std::to_string(host_key), std::to_string(agent_key)});

    int left = ::shmget(agent_key, 0, 0);
    int left_errno = errno;
    ::shmctl(host_segment, IPC_RMID, nullptr);
    if (left >= 0) ::shmctl(left, IPC_RMID, nullptr);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "ENOENT\ncreated\n") << "the host's segment is out of the agent's sight";
    EXPECT_LT(left, 0) << "the agent's segment outlived its session";
    EXPECT_EQ(left_errno, ENOENT);
}

// Waits until the audit log reports the session started.
void wait_for_start(const fs::path& audit_log) {
    for (int i = 0; i < 300 && events_named(read_events(audit_log), "session.start").empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

TEST_F(AgentRunTest, ForwardsSigquitSigusr1Sigusr2) {
    auto profile = write_profile({}, {});
    for (int sig : {SIGQUIT, SIGUSR1, SIGUSR2}) {
        pid_t pid = start({"--profile", profile, "--", "sleep", "60"});
        wait_for_start(audit_log_);
        ::kill(pid, sig);
        auto r = wait(pid);
        EXPECT_EQ(r.exit_code, 128 + sig) << "signal " << sig << ": " << r.err;
        // The agent died of it and agent-run reported it: agent-run did not die instead.
        auto end = events_named(audit_events(), "session.end");
        ASSERT_EQ(end.size(), 1u) << "signal " << sig << ": " << read_text(audit_log_);
        EXPECT_EQ(end[0]["signal"], std::string("SIG") + ::sigabbrev_np(sig));
        fs::remove(audit_log_);
    }
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunTest, ForwardsSigwinch) {
    auto profile = write_profile({}, {});
    auto ready = dir_ / "ready";
    pid_t pid =
        start({"--profile", profile, "--", "sh", "-c",
               "trap 'exit 9' WINCH; touch " + ready.string() + "; while :; do sleep 0.1; done"});
    ASSERT_TRUE(wait_for_file(ready)) << read_text(dir_ / "stderr");
    ::kill(pid, SIGWINCH);
    auto r = wait(pid);
    EXPECT_EQ(r.exit_code, 9) << r.err;
}

// A stopped agent-run would never fire the deadline.
TEST_F(AgentRunTest, StopSignalsDoNotFreezeTheDeadline) {
    own_process_group_ = true;
    auto profile = write_profile({}, {}, "2s");
    pid_t pid = start({"--profile", profile, "--", "sleep", "300"});
    wait_for_start(audit_log_);
    for (int sig : {SIGTSTP, SIGTTIN, SIGTTOU}) ::kill(pid, sig);
    auto r = wait(pid, std::chrono::seconds(15));
    EXPECT_EQ(r.exit_code, 124) << r.err;
    auto end = events_named(audit_events(), "session.end");
    ASSERT_EQ(end.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(end[0]["reason"], "deadline");
}

// What agent-run ignores (SIGPIPE, the stop signals), the agent does not
// inherit. Only the standard signals are checked: glibc's posix_spawn, which
// starts agent-run here, leaves its own internal signals (32, 33) ignored,
// and glibc does not let a program change those.
TEST_F(AgentRunTest, AgentInheritsNoIgnoredSignal) {
    auto profile = write_profile({}, {});
    auto r =
        run({"--profile", profile, "--", "sed", "-n", "s/^SigIgn:\\t//p", "/proc/self/status"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    uint64_t ignored = std::stoull(r.out, nullptr, 16);
    EXPECT_EQ(ignored & ((1ULL << 31) - 1), 0u) << "SigIgn " << r.out;
}

// The audit log is the record to trust: agent-run writes it only where
// nobody else could have, and never through a symbolic link.
TEST_F(AgentRunTest, AuditLogThroughASymlinkIsRefused) {
    auto profile = write_profile({}, {});
    auto target = dir_ / "elsewhere.jsonl";
    fs::create_symlink(target, audit_log_);
    auto r = run({"--profile", profile, "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("cannot open audit log " + audit_log_.string()), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(target)) << "agent-run followed the link";
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunTest, AuditLogOthersCanWriteIsRefused) {
    auto profile = write_profile({}, {});
    for (auto mode : {0620, 0602, 0666}) {
        write_text(audit_log_, "");
        ASSERT_EQ(::chmod(audit_log_.c_str(), mode), 0);
        auto r = run({"--profile", profile, "--", "true"});
        EXPECT_EQ(r.exit_code, 125) << std::oct << mode;
        EXPECT_NE(r.err.find("is writable by group or others"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("chmod 0600 " + audit_log_.string()), std::string::npos) << r.err;
        EXPECT_EQ(read_text(audit_log_), "") << "agent-run wrote to it";
    }
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunTest, AuditLogOfAnotherUserIsRefused) {
    auto profile = write_profile({}, {});
    const passwd* agent = ::getpwnam("cordon-agent");
    if (!agent) agent = ::getpwnam("nobody");
    ASSERT_NE(agent, nullptr);
    write_text(audit_log_, "");
    ASSERT_EQ(::chmod(audit_log_.c_str(), 0600), 0);
    ASSERT_EQ(::chown(audit_log_.c_str(), agent->pw_uid, agent->pw_gid), 0);
    auto r = run({"--profile", profile, "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("is owned by uid " + std::to_string(agent->pw_uid)), std::string::npos)
        << r.err;
    EXPECT_EQ(read_text(audit_log_), "");
}

// An agent that can write the log's directory could rename the log away
// and leave a forged one in its place.
TEST_F(AgentRunTest, AuditLogInADirectoryOthersCanWriteIsRefused) {
    auto profile = write_profile({}, {});
    auto open_dir = dir_ / "logs";  // dir_ itself is open to the agent
    fs::create_directories(open_dir);
    for (auto mode : {fs::perms::all, fs::perms::owner_all | fs::perms::group_write}) {
        fs::permissions(open_dir, mode);
        auto log = open_dir / "audit.jsonl";
        auto r = run({"--audit-log", log.string(), "--profile", profile, "--", "true"});
        EXPECT_EQ(r.exit_code, 125);
        EXPECT_NE(r.err.find("its directory " + open_dir.string() + " can be changed by others"),
                  std::string::npos)
            << r.err;
        EXPECT_FALSE(fs::exists(log)) << "agent-run created the log there";
    }
    // A sticky directory (as /tmp) keeps others from renaming our file; the
    // directories above count too, so dir_ (0777) is no place for one.
    auto sticky = audit_dir_ / "sticky";
    fs::create_directories(sticky);
    fs::permissions(sticky, fs::perms::all | fs::perms::sticky_bit);
    auto r =
        run({"--audit-log", (sticky / "audit.jsonl").string(), "--profile", profile, "--", "true"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(AgentRunTest, FreshAuditLogIsMode0600WhateverTheUmask) {
    auto profile = write_profile({}, {});
    mode_t old = ::umask(0);
    auto r = run({"--profile", profile, "--", "true"});
    ::umask(old);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    struct stat st {};
    ASSERT_EQ(::stat(audit_log_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(st.st_uid, 0u);
    EXPECT_EQ(events_named(audit_events(), "session.end").size(), 1u);

    // A log that passes the checks is appended to.
    r = run({"--profile", profile, "--", "true"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(events_named(audit_events(), "session.end").size(), 2u);
}

// A command the agent's account cannot run: the message says as whom.
TEST_F(AgentRunTest, UnexecutableCommandNamesTheAgentAccount) {
    auto profile = write_profile({}, {});
    auto hidden = dir_ / "root-only";
    fs::create_directory(hidden);
    ASSERT_EQ(::chmod(hidden.c_str(), 0700), 0);
    auto script = hidden / "x.sh";
    write_text(script, "#!/bin/sh\necho ran\n");
    ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
    const passwd* agent = ::getpwnam("cordon-agent");
    if (!agent) agent = ::getpwnam("nobody");
    ASSERT_NE(agent, nullptr);

    auto r = run({"--profile", profile, "--", script.string()});

    EXPECT_EQ(r.exit_code, 126) << r.err;
    EXPECT_EQ(r.out, "");
    std::string expected = "cannot execute " + script.string() + " as " + agent->pw_name +
                           " (uid " + std::to_string(agent->pw_uid) + "): Permission denied (";
    EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// 127 for a command found nowhere on PATH, even where a PATH directory is
// closed to the agent; 126 for one found but not executable.
TEST_F(AgentRunTest, CommandSearchOnPathTellsMissingFromUnexecutable) {
    auto profile = write_profile({}, {});
    auto closed = dir_ / "closed";
    auto bin = dir_ / "bin";
    fs::create_directory(closed);
    fs::create_directory(bin);
    ASSERT_EQ(::chmod(closed.c_str(), 0700), 0);
    ASSERT_EQ(::chmod(bin.c_str(), 0755), 0);
    write_text(bin / "cordon-noexec", "#!/bin/sh\necho ran\n");
    ASSERT_EQ(::chmod((bin / "cordon-noexec").c_str(), 0644), 0);
    extra_env_.push_back("PATH=" + closed.string() + ":" + bin.string() + ":/usr/bin:/bin");

    auto r = run({"--profile", profile, "--", "no-such-command-cordon"});
    EXPECT_EQ(r.exit_code, 127) << r.err;
    EXPECT_NE(r.err.find("cannot execute no-such-command-cordon as "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;

    r = run({"--profile", profile, "--", "cordon-noexec"});
    EXPECT_EQ(r.exit_code, 126) << r.err;
    EXPECT_NE(r.err.find("cannot execute cordon-noexec as "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");

    r = run({"--profile", profile, "--", "sh", "-c", "echo found"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "found\n");
}

// The set*id calls the child makes reach the kernel for its one thread:
// every id and the supplementary groups are the account's.
TEST_F(AgentRunTest, AgentHasItsAccountsIdsAndGroups) {
    auto profile = write_profile({}, {});
    const passwd* agent = ::getpwnam("cordon-agent");
    if (!agent) agent = ::getpwnam("nobody");
    ASSERT_NE(agent, nullptr);
    gid_t groups[64];
    int n = 64;
    ASSERT_GE(::getgrouplist(agent->pw_name, agent->pw_gid, groups, &n), 0);
    std::string uid = std::to_string(agent->pw_uid), gid = std::to_string(agent->pw_gid);
    std::string expected = "Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid + "\nGid:\t" +
                           gid + "\t" + gid + "\t" + gid + "\t" + gid + "\n";
    auto r = run({"--profile", profile, "--", "grep", "-E", "^(Uid|Gid):", "/proc/self/status"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, expected);
    r = run({"--profile", profile, "--", "id", "-G"});
    std::set<std::string> want, got;
    for (int i = 0; i < n; ++i) want.insert(std::to_string(groups[i]));
    std::istringstream ids(r.out);
    for (std::string g; ids >> g;) got.insert(g);
    EXPECT_EQ(got, want) << r.out;
}

// With stderr a file opened by `2> FILE` (no O_APPEND), the audit events
// and the agent's own writes share one offset: neither overwrites the other.
TEST_F(AgentRunTest, AgentStderrToAFileDoesNotOverwriteAuditLines) {
    fs::path err = dir_ / "stderr.txt";
    // From /: a checkout under /tmp would add agent-run's warning about it.
    wrapper_ = {"/bin/sh", "-c", "cd / && exec \"$0\" \"$@\" 2>" + err.string()};
    auto r = run({"--profile", write_profile({}, {}), "--audit-log", "-", "--", "sh", "-c",
                  "sleep 0.3; echo AGENT-LINE >&2"});
    wrapper_ = {};
    EXPECT_EQ(r.exit_code, 0) << read_text(err);
    std::string text = read_text(err);
    EXPECT_NE(text.find("AGENT-LINE\n"), std::string::npos) << text;
    std::vector<std::string> events;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
        if (line != "AGENT-LINE")
            events.push_back(nlohmann::json::parse(line, nullptr, false).value("event", "?"));
    EXPECT_EQ(events, (std::vector<std::string>{"session.start", "session.end"})) << text;
}

}  // namespace
}  // namespace cordon::testing
