// SPDX-License-Identifier: Apache-2.0
// Process containment of a real agent-run session: its own pid namespace
// under Cordon's init, its private filesystem view, and its resource
// limits. Each test runs real programs as agents and asserts what the
// kernel answered.
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstdio>
#include <set>

#include "agent_run_fixture.h"
#include "launch/init.h"
#include "launch/view.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

const std::string kHelpers = agent_helpers_dir();

void wait_for_start(const fs::path& audit_log, size_t count = 1) {
    for (int i = 0; i < 300 && events_named(read_events(audit_log), "session.start").size() < count;
         ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

bool wait_for_file(const fs::path& path) {
    for (int i = 0; i < 300 && !fs::exists(path); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return fs::exists(path);
}

// Host pids of processes whose real uid is `uid`.
std::vector<pid_t> processes_of_uid(uid_t uid) {
    std::vector<pid_t> pids;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
        std::string name = e.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::istringstream status(read_text(e.path() / "status"));
        for (std::string line; std::getline(status, line);)
            if (line.rfind("Uid:", 0) == 0 && std::stoul(line.substr(4)) == uid &&
                process_alive(std::stoi(name)))
                pids.push_back(std::stoi(name));
    }
    return pids;
}

// A uid no account has and no other test uses: RLIMIT_NPROC counts
// processes per uid on the whole host.
uid_t private_uid() {
    return 2000000000u + static_cast<uid_t>(::getpid());
}

// How this host's cgroup2 root offers `controller` to Cordon's root.
bool controller_available(const std::string& controller) {
    auto mount = cgroup::find_cgroup2_mount();
    std::istringstream names(read_text(*mount + "/cgroup.controllers"));
    for (std::string name; names >> name;)
        if (name == controller) return true;
    return false;
}

// Sessions of the default profile (no tool, 5 minutes) unless a test needs more.
class ProcessTest : public AgentRunTest {
  protected:
    RunResult run_agent(const std::vector<std::string>& command) {
        std::vector<std::string> args{"--profile", write_profile({}, {}), "--"};
        args.insert(args.end(), command.begin(), command.end());
        return run(args);
    }

    // Runs command as the agent: it must exit 0 and print exactly `expected`.
    void expect_agent_prints(const std::vector<std::string>& command, const std::string& expected) {
        auto r = run_agent(command);
        EXPECT_EQ(r.exit_code, 0) << r.err;
        EXPECT_EQ(r.out, expected);
    }
};

TEST_F(ProcessTest, AgentSeesOnlyItsOwnProcesses) {
    std::string script =
        "import os\n"
        "print(os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        "print(open('/proc/1/comm').read().strip() == open('/proc/self/comm').read().strip())\n";
    // pid 1 is Cordon's init (a copy of agent-run, never exec'd), pid 2 the agent.
    expect_agent_prints({"python3", "-c", script}, "2 [1, 2]\nFalse\n");
    auto start = events_named(audit_events(), "session.start");
    ASSERT_EQ(start.size(), 1u);
    EXPECT_GT(start[0]["pid"].get<int>(), 2) << "session.start names the host's pid of the init";
}

TEST_F(ProcessTest, AnotherSessionCannotReadOrSignalTheAgent) {
    auto profile = write_profile({}, {});
    std::string sleep = unique_sleep();
    pid_t first = start({"--profile", profile, "--", "sleep", sleep});
    // Never left running, whatever fails below.
    struct Stop {
        pid_t pid;
        ~Stop() {
            if (pid > 0 && ::kill(pid, SIGTERM) == 0) ::waitpid(pid, nullptr, 0);
        }
    } stop_first{first};
    wait_for_start(audit_log_);
    std::vector<pid_t> agents;
    for (int i = 0; i < 100 && agents.empty(); ++i) {
        agents = pids_running("sleep " + sleep);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(agents.size(), 1u) << read_text(dir_ / "stderr");
    pid_t target = agents[0];
    // The host sees the first agent and its delivered environment.
    ASSERT_NE(read_text("/proc/" + std::to_string(target) + "/environ").find("CORDON_SESSION_ID="),
              std::string::npos);

    // A second session, same account, tries everything on it by its host pid.
    std::string script =
        "import os,errno\n"
        "pid=" +
        std::to_string(target) +
        "\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        "for f in ('environ','mem'):\n"
        " try:\n  open('/proc/%d/%s'%(pid,f),'rb').read(1); print(f,'ok')\n"
        " except OSError as e: print(f,errno.errorcode[e.errno])\n"
        "for sig in (0,15):\n"
        " try:\n  os.kill(pid,sig); print('kill',sig,'ok')\n"
        " except OSError as e: print('kill',sig,errno.errorcode[e.errno])\n";
    auto second = start({"--profile", profile, "--", "python3", "-c", script});
    auto r = wait(second);

    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "[1, 2]\nenviron ENOENT\nmem ENOENT\nkill 0 ESRCH\nkill 15 ESRCH\n");
    EXPECT_TRUE(process_alive(target)) << "the first session's agent was hit";
    ::kill(first, SIGTERM);
    EXPECT_EQ(wait(first).exit_code, 128 + SIGTERM);
    stop_first.pid = -1;
    auto starts = events_named(audit_events(), "session.start");
    ASSERT_EQ(starts.size(), 2u);
    EXPECT_EQ(starts[0]["uid"], starts[1]["uid"]) << "both sessions run as the same account";
}

TEST_F(ProcessTest, InitHoldsNoPrivilegeAndIgnoresTheAgentsSignals) {
    std::string script =
        "grep -E '^(Uid|CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/1/status; "
        "cat /proc/1/environ >/dev/null 2>&1 && echo environ readable || echo environ closed; "
        "kill -KILL 1; kill -STOP 1; sleep 0.2; echo still here";
    auto r = run_agent({"sh", "-c", script});

    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto start = events_named(audit_events(), "session.start");
    ASSERT_EQ(start.size(), 1u);
    std::string uid = std::to_string(start[0]["uid"].get<uid_t>());
    // pid 1 of a namespace gets from inside it only the signals it
    // handles: SIGKILL and SIGSTOP are dropped.
    EXPECT_EQ(r.out, "Uid:\t" + uid + "\t" + uid + "\t" + uid + "\t" + uid +
                         "\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
                         "CapBnd:\t0000000000000000\nNoNewPrivs:\t1\nenviron closed\n"
                         "still here\n");
}

TEST_F(ProcessTest, SigtermReachesABashTrapThroughTheInit) {
    auto profile = write_profile({}, {});
    auto ready = dir_ / "ready";
    pid_t pid = start({"--profile", profile, "--", "bash", "-c",
                       "trap 'echo got TERM; exit 5' TERM; touch " + ready.string() +
                           "; while :; do sleep 0.05; done"});
    ASSERT_TRUE(wait_for_file(ready)) << read_text(dir_ / "stderr");
    ::kill(pid, SIGTERM);
    auto r = wait(pid);

    EXPECT_EQ(r.exit_code, 5) << r.err;
    EXPECT_EQ(r.out, "got TERM\n");
    auto end = events_named(audit_events(), "session.end");
    ASSERT_EQ(end.size(), 1u);
    EXPECT_EQ(end[0]["exitStatus"], 5);
    EXPECT_EQ(end[0]["reason"], "exit");
}

TEST_F(ProcessTest, ExitStatusesPassThroughTheInit) {
    EXPECT_EQ(run_agent({"true"}).exit_code, 0);
    EXPECT_EQ(run_agent({"sh", "-c", "exit 3"}).exit_code, 3);
    EXPECT_EQ(run_agent({"sh", "-c", "kill -SEGV $$"}).exit_code, 128 + 11);
    EXPECT_EQ(run_agent({"sh", "-c", "kill -KILL $$"}).exit_code, 128 + 9);
    auto ends = events_named(audit_events(), "session.end");
    ASSERT_EQ(ends.size(), 4u);
    EXPECT_EQ(ends[0]["exitStatus"], 0);
    EXPECT_EQ(ends[1]["exitStatus"], 3);
    EXPECT_EQ(ends[2]["signal"], "SIGSEGV");
    EXPECT_FALSE(ends[2].contains("exitStatus"));
    EXPECT_EQ(ends[3]["signal"], "SIGKILL");
}

TEST_F(ProcessTest, OrphanedZombiesAreReaped) {
    // Three orphans, reparented to the init, that exit while the agent runs.
    std::string script =
        "for i in 1 2 3; do (sleep 1 &); done; sleep 0.5; "
        "grep -l '^Name:.sleep' /proc/[0-9]*/status | xargs grep -h '^PPid' | sort | uniq -c; "
        "sleep 1.5; for f in /proc/[0-9]*/stat; do read -r p c s rest < $f && printf '%s%s ' $p "
        "$s; "
        "done";
    // The orphans' parent was pid 1; then only the init (asleep) and sh
    // (running its builtins) are left.
    expect_agent_prints({"sh", "-c", script}, "      3 PPid:\t1\n1S 2R ");
}

TEST_F(ProcessTest, WritingToAnotherCgroupsProcsFails) {
    auto mount = cgroup::find_cgroup2_mount();
    ASSERT_TRUE(mount.ok());
    std::string script =
        "import os,errno\n"
        "for p in ('" +
        cgroup_root_ + "/cgroup.procs','" + *mount +
        "/cgroup.procs'):\n"
        " try:\n  open(p,'w').write(str(os.getpid())); print('moved')\n"
        " except OSError as e: print(errno.errorcode[e.errno])\n";
    // The files are root's, mode 0644: the agent's account cannot open them.
    expect_agent_prints({"python3", "-c", script}, "EACCES\nEACCES\n");
}

TEST_F(ProcessTest, MemfdWithAnElfCannotBeExecuted) {
    if (!launch::memfd_noexec_supported())
        GTEST_SKIP() << "no per-pid-namespace vm.memfd_noexec on this kernel (Linux 6.3)";
    std::string helper = kHelpers + "/pr_memfd_exec";
    // Outside a session (the host's vm.memfd_noexec 0), the same memfd runs.
    if (read_text("/proc/sys/vm/memfd_noexec") == "0\n") {
        int status = std::system((helper + " /bin/true > /dev/null").c_str());
        ASSERT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0) << "the helper cannot run a memfd even on the host";
    }
    auto r = run_agent({helper, "/bin/true"});

    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream lines(r.out);
    std::string execve, fexecve, mfd_exec;
    std::getline(lines, execve);
    std::getline(lines, fexecve);
    std::getline(lines, mfd_exec);
    // Sealed non-executable: the memfd has no execute bit.
    EXPECT_EQ(execve, "execve: EACCES") << r.out;
    EXPECT_EQ(fexecve.rfind("fexecve: E", 0), 0u) << r.out;
    EXPECT_EQ(mfd_exec, "mfd_exec: EACCES") << r.out;
}

// What /proc/PID/mem may write past a mapping's protection on this kernel:
// "always" (FOLL_FORCE, as a debugger does), "ptrace" or "never".
std::string proc_mem_force_mode() {
    std::string cmdline = read_text("/proc/cmdline");
    const std::string key = "proc_mem.force_override=";
    if (auto at = cmdline.find(key); at != std::string::npos)
        return cmdline.substr(at + key.size(), cmdline.find_first_of(" \n", at) - at - key.size());
    FILE* config = ::popen("gzip -dc /proc/config.gz 2>/dev/null", "r");
    if (!config) return "";
    std::string text;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, config)) text.append(buf, n);
    ::pclose(config);
    if (text.find("CONFIG_PROC_MEM_ALWAYS_FORCE=y") != std::string::npos) return "always";
    if (text.find("CONFIG_PROC_MEM_FORCE_PTRACE=y") != std::string::npos) return "ptrace";
    if (text.find("CONFIG_PROC_MEM_NO_FORCE=y") != std::string::npos) return "never";
    return "";
}

TEST_F(ProcessTest, ProcSelfMemWriteToReadOnlyMappingIsAsTheKernelAllows) {
    std::string mode = proc_mem_force_mode();
    if (mode.empty())
        GTEST_SKIP() << "cannot tell the kernel's proc_mem.force_override (no /proc/config.gz)";
    auto r = run_agent({kHelpers + "/pr_procmem"});

    EXPECT_EQ(r.exit_code, 0) << r.err;
    // "always": the write is forced through the read-only protection, as
    // for a debugger, but only into the agent's own private copy. "ptrace"
    // (the writer is no ptracer of itself) and "never": refused.
    if (mode == "always")
        EXPECT_EQ(r.out, "write: ok\nbyte: B\n");
    else
        EXPECT_EQ(r.out, "write: EIO\nbyte: A\n") << "mode " << mode;
}

TEST_F(ProcessTest, ForkBombIsContainedByThePidsLimit) {
    uid_t uid = private_uid();
    auto profile = write_profile(
        {}, {}, "3s", {{"session", {{"user", std::to_string(uid)}}}, {"limits", {{"pids", 16}}}});
    auto r = run({"--profile", profile, "--", kHelpers + "/pr_forkbomb"});

    EXPECT_EQ(r.exit_code, 124) << r.err;
    // 16 tasks: the init, the agent and 14 children; the 15th fork fails.
    EXPECT_EQ(r.out, "forked 14, then EAGAIN\n") << r.err;
    EXPECT_EQ(processes_of_uid(uid), std::vector<pid_t>{}) << "a process survived its session";
    EXPECT_EQ(leftover_cgroups(), 0u);
    auto end = events_named(audit_events(), "session.end");
    ASSERT_EQ(end.size(), 1u);
    EXPECT_EQ(end[0]["reason"], "deadline");
}

TEST_F(ProcessTest, AnAccountAlreadyAtItsPidsLimitStartsNothing) {
    if (controller_available("pids")) GTEST_SKIP() << "pids.max counts the session's tasks only";
    if (!fs::exists("/usr/bin/setpriv")) GTEST_SKIP() << "needs setpriv (util-linux)";
    uid_t uid = private_uid();
    // One process of the account elsewhere, and the session's init: 2 of 2.
    pid_t other = ::fork();
    if (other == 0) {
        std::string reuid = "--reuid=" + std::to_string(uid);
        ::execl("/usr/bin/setpriv", "setpriv", reuid.c_str(), "--regid=65534", "--clear-groups",
                "sleep", "30", nullptr);
        ::_exit(127);
    }
    for (int i = 0; i < 100 && processes_of_uid(uid).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto profile = write_profile(
        {}, {}, "5m", {{"session", {{"user", std::to_string(uid)}}}, {"limits", {{"pids", 2}}}});
    auto r = run({"--profile", profile, "--", "true"});
    ::kill(other, SIGKILL);
    ::waitpid(other, nullptr, 0);

    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("cannot prepare the agent: forking the agent from the session's init "
                         "failed: Resource temporarily unavailable (nothing was started; the "
                         "account is at its limits.pids"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(ProcessTest, MemoryHogIsStoppedByTheMemoryLimit) {
    auto profile = write_profile({}, {}, "30s", {{"limits", {{"memory", "64M"}}}});
    auto r = run({"--profile", profile, "--", kHelpers + "/pr_memhog"});

    if (controller_available("memory")) {
        // memory.max: the kernel's OOM killer ends the hog.
        EXPECT_EQ(r.exit_code, 128 + SIGKILL) << r.out << r.err;
        return;
    }
    // RLIMIT_AS: the allocation that would pass 64 MiB of address space fails.
    EXPECT_EQ(r.exit_code, 0) << r.err;
    unsigned mib = 0;
    char err[32] = {};
    ASSERT_EQ(std::sscanf(r.out.c_str(), "allocated %u MiB, then %31s", &mib, err), 2) << r.out;
    EXPECT_STREQ(err, "ENOMEM");
    EXPECT_LT(mib, 64u);
    EXPECT_GE(mib, 32u) << "the limit bit far below 64M";
}

TEST_F(ProcessTest, LimitsAreShownInCheckAndSessionStart) {
    auto profile = write_profile({}, {}, "10s",
                                 {{"limits", {{"pids", 64}, {"memory", "1G"}, {"cpu", "50%"}}}});
    auto check = run({"--check", "--profile", profile});
    ASSERT_EQ(check.exit_code, 0) << check.err;
    json out = json::parse(check.out);
    json limits = out["limits"];
    EXPECT_EQ(limits["pids"]["max"], 64);
    EXPECT_EQ(limits["memory"]["bytes"], 1ull << 30);
    EXPECT_EQ(limits["cpu"]["percentOfOneCpu"], 50);
    std::string warnings = out.contains("warnings") ? out["warnings"].dump() : "";
    for (const char* controller : {"pids", "memory", "cpu"}) {
        bool fallback = !controller_available(controller);
        std::string warning = std::string("limits.") + controller + ": the cgroup " + controller +
                              " controller is not available";
        EXPECT_EQ(warnings.find(warning) != std::string::npos, fallback) << warnings;
        EXPECT_EQ(check.err.find(warning) != std::string::npos, fallback) << check.err;
        if (!fallback) {
            EXPECT_EQ(limits[controller]["enforcedBy"],
                      std::string("cgroup ") + controller + " controller");
        }
    }
    if (!controller_available("cpu")) {
        EXPECT_EQ(limits["cpu"]["enforcedBy"], "RLIMIT_CPU");
        EXPECT_EQ(limits["cpu"]["rlimit"], 5) << "half of 10 s";
    }
    if (!controller_available("pids")) {
        EXPECT_EQ(limits["pids"]["enforcedBy"], "RLIMIT_NPROC");
    }

    auto r = run({"--profile", profile, "--", "bash", "-c", "ulimit -u; ulimit -v; ulimit -t"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (!controller_available("pids") && !controller_available("memory") &&
        !controller_available("cpu")) {
        EXPECT_EQ(r.out, "64\n1048576\n5\n");
    }
    auto start = events_named(audit_events(), "session.start");
    ASSERT_EQ(start.size(), 1u);
    EXPECT_EQ(start[0]["limits"], limits);
}

TEST_F(ProcessTest, BadLimitsExit125AndStartNothing) {
    auto profile = write_profile({}, {}, "5m", {{"limits", {{"cpu", "1.5"}}}});
    auto r = run({"--profile", profile, "--", "true"});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("limits.cpu: \"1.5\" is not a CPU share (expected a share of one CPU in "
                         "percent"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(ProcessTest, TmpVarTmpAndDevShmAreEmptyAndPrivate) {
    std::string marker = "cordon-private-" + std::to_string(::getpid());
    std::string host_file = "/tmp/cordon-host-" + std::to_string(::getpid());
    write_text(host_file, "host");
    std::string script;
    std::string expected;
    for (const char* dir : {"/tmp", "/var/tmp", "/dev/shm", "/run/lock"}) {
        if (!fs::is_directory(dir)) continue;
        script += std::string("echo \"") + dir + " $(ls -A " + dir + " | wc -l) $(stat -c %a " +
                  dir + ") $(grep ' " + dir + " ' /proc/self/mounts | tail -1 | awk '{print $3, " +
                  "($4 ~ /size=262144k/) ? \"capped\" : \"uncapped\"}')\"; ";
        expected += std::string(dir) + " 0 1777 tmpfs capped\n";
    }
    script += "echo secret > /tmp/" + marker + " && echo written";
    auto first = run_agent({"sh", "-c", script});
    auto second =
        run_agent({"sh", "-c", "ls -A /tmp; cat /tmp/" + marker + " 2>/dev/null || echo absent"});
    bool leaked = fs::exists("/tmp/" + marker);
    fs::remove(host_file);
    fs::remove("/tmp/" + marker);

    EXPECT_EQ(first.exit_code, 0) << first.err;
    EXPECT_EQ(first.out, expected + "written\n");
    EXPECT_EQ(second.out, "absent\n") << "one session's /tmp is seen by the next";
    EXPECT_FALSE(leaked) << "the agent's /tmp file reached the host";
}

// What lies in the host's /tmp the agent never sees: a command there is
// refused before anything starts, and a working directory there becomes /.
TEST_F(ProcessTest, HostTmpPathsAreRefusedOrLeftBehind) {
    fs::path dir = "/tmp/cordon-hidden-" + std::to_string(::getpid());
    fs::create_directories(dir);
    fs::permissions(dir, fs::perms::all);
    fs::copy_file("/bin/true", dir / "tool");
    auto refused = run_agent({(dir / "tool").string()});
    wrapper_ = {"/usr/bin/env", "-C", dir.string()};
    auto moved = run_agent({"sh", "-c", "pwd"});
    wrapper_ = {};
    fs::remove_all(dir);

    EXPECT_EQ(refused.exit_code, 125);
    EXPECT_NE(refused.err.find("cannot execute " + (dir / "tool").string() +
                               ": it is beneath /tmp, which the session replaces with an "
                               "empty private /tmp"),
              std::string::npos)
        << refused.err;
    EXPECT_EQ(moved.exit_code, 0) << moved.err;
    EXPECT_EQ(moved.out, "/\n");
    EXPECT_NE(moved.err.find("the working directory " + dir.string() + " is beneath /tmp"),
              std::string::npos)
        << moved.err;
}

// A listening Unix socket at path, bound by the test.
UniqueFd listen_unix(const fs::path& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd.get(), 1) != 0)
        ADD_FAILURE() << "cannot listen on " << path << ": " << std::strerror(errno);
    return fd;
}

TEST_F(ProcessTest, HostControlSocketsAreMasked) {
    // Sockets of the test's own in a /run/user directory of its own name, as
    // a user's session bus and rootless engines have them.
    bool made_run_user = !fs::exists("/run/user");
    fs::path user_dir = fs::path("/run/user") / ("cordon-test-" + std::to_string(::getpid()));
    fs::create_directories(user_dir / "podman");
    fs::permissions(user_dir, fs::perms::all);
    auto bus = listen_unix(user_dir / "bus");
    auto docker = listen_unix(user_dir / "docker.sock");
    auto podman = listen_unix(user_dir / "podman" / "podman.sock");

    std::vector<std::string> sockets;
    for (const auto& path : launch::host_control_sockets())
        if (fs::is_socket(path)) sockets.push_back(fs::canonical(path));
    std::string script, expected;
    for (const auto& path : sockets) {
        script += "if [ -S " + path + " ]; then echo " + path + " socket; elif [ -c " + path +
                  " ]; then echo " + path + " null; else echo " + path + " missing; fi; ";
        expected += path + " null\n";
    }
    auto r = run_agent({"sh", "-c", script});
    fs::remove_all(user_dir);
    if (made_run_user) fs::remove("/run/user");

    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_GE(sockets.size(), 3u) << "the test's own sockets are not in the list";
    EXPECT_EQ(r.out, expected);
}

// The owner of /proc/PID/environ: root for a non-dumpable process,
// whatever its uid (proc(5), /proc/pid and PR_SET_DUMPABLE).
uid_t environ_owner(pid_t pid) {
    struct stat st {};
    return ::stat(("/proc/" + std::to_string(pid) + "/environ").c_str(), &st) == 0 ? st.st_uid : -1;
}

TEST_F(ProcessTest, AgentRunIsNotDumpableFromItsStart) {
    const passwd* nobody = ::getpwnam("nobody");
    if (!nobody || !fs::exists("/usr/bin/setpriv"))
        GTEST_SKIP() << "needs the nobody account and setpriv (util-linux)";
    std::string as_nobody_uid = "--reuid=" + std::to_string(nobody->pw_uid);
    std::string as_nobody_gid = "--regid=" + std::to_string(nobody->pw_gid);
    // agent-run --check as nobody, held while it reads a credential from a FIFO.
    auto fifo = dir_ / "token.fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    // A secret file must be its reader's own (or root's) and nobody else's.
    ASSERT_EQ(::chown(fifo.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
    json extra = {
        {"tools", {{"allowed_tool", {{"credentials", {"token"}}}}}},
        {"credentials",
         {{"token", {{"source", {{"file", fifo.string()}}}, {"deliver", {{"env", "T"}}}}}}}};
    auto profile = write_profile({}, {}, "5m", extra);
    wrapper_ = {"/usr/bin/setpriv", as_nobody_uid, as_nobody_gid, "--clear-groups"};
    pid_t check = start({"--check", "--profile", profile});
    bool waiting = false;  // in the kernel's FIFO open (wait_for_partner)
    for (int i = 0; i < 300 && !waiting; ++i) {
        waiting = read_text("/proc/" + std::to_string(check) + "/comm") == "agent-run\n" &&
                  read_text("/proc/" + std::to_string(check) + "/wchan").find("wait_for_partner") !=
                      std::string::npos;
        if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    uid_t owner = environ_owner(check);
    std::ofstream(fifo) << "token\n";
    auto r = wait(check);

    // The same wrapper starts an ordinary program, dumpable, owned by nobody.
    wrapper_ = {};
    pid_t control = ::fork();
    if (control == 0) {
        ::execl("/usr/bin/setpriv", "setpriv", as_nobody_uid.c_str(), as_nobody_gid.c_str(),
                "--clear-groups", "sleep", "5", nullptr);
        ::_exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    uid_t control_owner = environ_owner(control);
    ::kill(control, SIGKILL);
    ::waitpid(control, nullptr, 0);

    ASSERT_TRUE(waiting) << "agent-run never waited on the FIFO: " << r.err;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(control_owner, nobody->pw_uid);
    EXPECT_EQ(owner, 0u) << "agent-run as nobody is dumpable";
}

}  // namespace
}  // namespace cordon::testing
