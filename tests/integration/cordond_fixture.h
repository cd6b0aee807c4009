// SPDX-License-Identifier: Apache-2.0
// Runs the real cordond with a socket, run directory, cgroup root, BPF pin
// directory, profiles and audit log of the test's own, and clients
// (agent-run, cordonctl) as unprivileged users. systemd is not PID 1 on the
// test hosts: the test starts and kills cordond itself, by pid.
#pragma once

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent_run_fixture.h"
#include "cgroup/cgroup.h"
#include "netfilter/netfilter.h"

namespace cordon::testing {

// An account to run a client as.
struct Account {
    uid_t uid = 0;
    gid_t gid = 0;
    std::string name;
    static std::optional<Account> named(const char* name) {
        const passwd* p = ::getpwnam(name);
        if (!p) return std::nullopt;
        return Account{p->pw_uid, p->pw_gid, p->pw_name};
    }
};

struct Process {
    pid_t pid = -1;
    fs::path out, err;
};

class CordondTest : public ::testing::Test {
  protected:
    static inline std::string tag_;
    static inline fs::path base_;  // everything of the test's, under /run
    static inline std::string cgroup_root_;

    static void SetUpTestSuite() {
        tag_ = "cordon-test-cd-" + std::to_string(::getpid());
        base_ = fs::path("/run") / tag_;
        if (auto mount = cgroup::find_cgroup2_mount()) cgroup_root_ = *mount + "/" + tag_;
    }

    static void TearDownTestSuite() {
        // A test that failed mid-session leaves its session running (cordond
        // sessions outlive cordond): the test's sessions are killed through
        // their cgroups, below the test's own root, until the root is gone.
        for (int i = 0; i < 100 && !cgroup_root_.empty() && fs::exists(cgroup_root_); ++i) {
            std::error_code ec;
            for (const auto& e : fs::directory_iterator(cgroup_root_, ec))
                if (e.is_directory()) std::ofstream(e.path() / "cgroup.kill") << "1";
            if (auto locks = cgroup::OwnerLocks::open(cgroup::owner_lock_dir(run_dir(), tag_)))
                (void)cgroup::cleanup_orphans(cgroup_root_, *locks);
            if (::rmdir(cgroup_root_.c_str()) == 0) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        (void)netfilter::Netfilter::detach(pin_dir());
        std::error_code ignored;
        fs::remove_all(base_, ignored);
    }

    static std::string pin_dir() { return "/sys/fs/bpf/" + tag_; }
    static fs::path run_dir() { return base_ / "daemon"; }
    static fs::path socket() { return base_ / "sock" / "cordond.sock"; }
    static fs::path profiles_dir() { return base_ / "profiles"; }
    static fs::path bin_dir() { return base_ / "bin"; }

    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root: cordond creates cgroups and BPF links";
        if (cgroup_root_.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
        nobody_ = Account::named("nobody");
        other_ = Account::named("cordon-agent");
        if (!nobody_ || !other_)
            GTEST_SKIP() << "needs the accounts nobody and cordon-agent (install-deps.sh)";
        std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        dir_ = base_ / name;
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        fs::create_directories(profiles_dir());
        for (const auto& e : fs::directory_iterator(profiles_dir())) fs::remove(e.path());
        fs::permissions(base_, fs::perms::owner_all | fs::perms::group_exec |
                                   fs::perms::others_exec | fs::perms::group_read |
                                   fs::perms::others_read);
        fs::permissions(dir_, fs::perms::all);
        stage_binaries();
        // Beside dir_, not in it: cordond refuses a log in a directory
        // others can write, and dir_ is open to the agents.
        audit_log_ = base_ / (name + ".audit.jsonl");
        fs::remove(audit_log_);
        config_ = dir_ / "cordond.json";
        write_text(config_, nlohmann::json{{"socket", socket().string()},
                                           {"runDir", run_dir().string()},
                                           {"cgroup", tag_},
                                           {"bpfPinDir", pin_dir()},
                                           {"profilesDir", profiles_dir().string()},
                                           {"auditLog", audit_log_.string()},
                                           {"adminGroups", {"cordon-test-admins-none"}}}
                                .dump(2));
    }

    void TearDown() override {
        stop_daemon(SIGTERM);
        for (pid_t pid : started_) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }

    // The clients, where every account can run them.
    static void stage_binaries() {
        if (fs::exists(bin_dir() / "cordonctl")) return;
        fs::create_directories(bin_dir());
        fs::copy_file(CORDON_AGENT_RUN, bin_dir() / "agent-run");
        fs::copy_file(CORDON_CORDONCTL, bin_dir() / "cordonctl");
        fs::permissions(bin_dir(), fs::perms::owner_all | fs::perms::group_exec |
                                       fs::perms::others_exec | fs::perms::group_read |
                                       fs::perms::others_read);
    }

    // A profile under profiles_dir() named NAME, launchable by `users`.
    void write_profile(const std::string& name, const std::vector<std::string>& users,
                       const std::string& max_duration = "5m",
                       nlohmann::json extra = nlohmann::json::object()) {
        nlohmann::json p = {
            {"apiVersion", "cordon/v1"},
            {"identity",
             {{"agentId", name + "-agent"},
              {"agentType", "test"},
              {"version", "0.0.1"},
              {"expiresAt", "2099-01-01T00:00:00Z"}}},
            {"session", {{"maxDuration", max_duration}}},
            {"allowedTools", nlohmann::json::array()},
            {"launchers", {{"users", users}}},
        };
        p.merge_patch(extra);
        write_text(profiles_dir() / (name + ".json"), p.dump(2));
    }

    // Starts cordond and waits for its socket to answer.
    void start_daemon() {
        std::vector<std::string> argv = daemon_wrapper_;
        for (const char* a : {CORDON_CORDOND, "--config", config_.c_str()}) argv.push_back(a);
        Process p = spawn_as(std::nullopt, argv, "cordond");
        daemon_ = p.pid;
        for (int i = 0; i < 500; ++i) {
            if (connectable()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        ADD_FAILURE() << "cordond did not serve within 10 s: " << read_text(p.err);
    }

    void stop_daemon(int sig) {
        if (daemon_ <= 0) return;
        ::kill(daemon_, sig);
        ::waitpid(daemon_, nullptr, 0);
        started_.erase(std::remove(started_.begin(), started_.end(), daemon_), started_.end());
        daemon_ = -1;
    }

    static bool connectable() {
        UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, socket().c_str(), sizeof addr.sun_path - 1);
        return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    }

    // Runs argv as `as` (root when unset) in /, its stdout and stderr in
    // files named after `label`, with CORDON_SOCKET naming the test's socket.
    Process spawn_as(const std::optional<Account>& as, const std::vector<std::string>& argv,
                     const std::string& label) {
        Process p{-1, dir_ / (label + ".out"), dir_ / (label + ".err")};
        pid_t pid = ::fork();
        if (pid == 0) {
            int out = ::open(p.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            int err = ::open(p.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            ::dup2(in, 0);
            ::dup2(out, 1);
            ::dup2(err, 2);
            ::setpgid(0, 0);
            if (::chdir("/") != 0) ::_exit(120);
            if (!into_cgroup_.empty()) write_text(into_cgroup_ + "/cgroup.procs", "0");
            if (as && (::setgroups(0, nullptr) != 0 || ::setresgid(as->gid, as->gid, as->gid) ||
                       ::setresuid(as->uid, as->uid, as->uid)))
                ::_exit(121);
            ::setenv("CORDON_SOCKET", socket().c_str(), 1);
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            ::execv(args[0], args.data());
            ::_exit(127);
        }
        p.pid = pid;
        started_.push_back(pid);
        return p;
    }

    // agent-run through cordond, as `as`, running command under profile.
    Process launch(const Account& as, const std::string& profile,
                   const std::vector<std::string>& command,
                   const std::string& label = "agent-run") {
        std::vector<std::string> argv{(bin_dir() / "agent-run").string(), "--profile", profile,
                                      "--"};
        argv.insert(argv.end(), command.begin(), command.end());
        return spawn_as(as, argv, label);
    }

    RunResult wait(const Process& p, std::chrono::seconds timeout = std::chrono::seconds(30)) {
        RunResult r;
        auto deadline = std::chrono::steady_clock::now() + timeout;
        int status = 0;
        while (::waitpid(p.pid, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(p.pid, SIGKILL);
                ::waitpid(p.pid, &status, 0);
                ADD_FAILURE() << "pid " << p.pid << " did not finish within " << timeout.count()
                              << "s";
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        started_.erase(std::remove(started_.begin(), started_.end(), p.pid), started_.end());
        r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        r.out = read_text(p.out);
        r.err = read_text(p.err);
        return r;
    }

    RunResult cordonctl(const std::optional<Account>& as, const std::vector<std::string>& args) {
        std::vector<std::string> argv{(bin_dir() / "cordonctl").string()};
        argv.insert(argv.end(), args.begin(), args.end());
        return wait(spawn_as(as, argv, "cordonctl"));
    }

    // The live sessions, as root's cordonctl sees them.
    nlohmann::json sessions() {
        auto r = cordonctl(std::nullopt, {"sessions", "--json"});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return j.is_array() ? j : nlohmann::json::array();
    }

    // Waits until `count` sessions run (their agents started).
    nlohmann::json wait_for_sessions(size_t count) {
        for (int i = 0; i < 250; ++i) {
            auto list = sessions();
            if (list.size() == count) return list;
            std::this_thread::sleep_for(std::chrono::milliseconds(40));
        }
        ADD_FAILURE() << "expected " << count << " live sessions";
        return sessions();
    }

    std::vector<nlohmann::json> audit_events() const { return read_events(audit_log_); }

    fs::path dir_, audit_log_, config_;
    std::optional<Account> nobody_, other_;
    pid_t daemon_ = -1;
    std::string into_cgroup_;
    std::vector<std::string> daemon_wrapper_;  // a command cordond is started through  // a cgroup
                                               // to start processes in (cgroup "auto")
    std::vector<pid_t> started_;
};

}  // namespace cordon::testing
