// SPDX-License-Identifier: Apache-2.0
// Runs the real agent-run binary as a test would run it from a shell, under
// a cgroup root and BPF pin directory of the test's own, removed at the end.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cgroup/cgroup.h"
#include "cordon/fd.h"
#include "launch/view.h"
#include "netfilter/netfilter.h"

extern char** environ;

namespace cordon::testing {

namespace fs = std::filesystem;

inline std::string read_text(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

inline void write_text(const fs::path& p, const std::string& text) {
    std::ofstream out(p);
    out << text;
}

// The test helpers where an agent can run them: CORDON_HELPERS_DIR, or,
// when the build lies beneath a directory each session replaces with a
// private one (a checkout under /tmp), a copy under /run made once per test
// process and removed when it exits.
inline const std::string& agent_helpers_dir() {
    static const std::string dir = [] {
        std::string built = CORDON_HELPERS_DIR;
        if (launch::scratch_dir_of(built).empty()) return built;
        static std::string staged = "/run/cordon-test-helpers-" + std::to_string(::getpid());
        fs::remove_all(staged);
        fs::copy(built, staged, fs::copy_options::recursive);
        fs::permissions(staged, fs::perms::owner_all | fs::perms::group_read |
                                    fs::perms::group_exec | fs::perms::others_read |
                                    fs::perms::others_exec);
        std::atexit([] {
            std::error_code ec;
            fs::remove_all(staged, ec);
        });
        return staged;
    }();
    return dir;
}

// Audit events of a log file, one JSON object per line.
inline std::vector<nlohmann::json> read_events(const fs::path& p) {
    std::vector<nlohmann::json> events;
    std::istringstream lines(read_text(p));
    std::string line;
    while (std::getline(lines, line))
        if (!line.empty()) events.push_back(nlohmann::json::parse(line));
    return events;
}

inline std::vector<nlohmann::json> events_named(const std::vector<nlohmann::json>& all,
                                                const std::string& name) {
    std::vector<nlohmann::json> out;
    for (const auto& e : all)
        if (e.value("event", "") == name) out.push_back(e);
    return out;
}

// A TCP or UDP socket bound on a loopback address and an ephemeral port.
struct Listener {
    UniqueFd fd;
    uint16_t port = 0;

    static Listener on(const char* address, int type = SOCK_STREAM) {
        Listener l;
        bool v6 = std::string(address).find(':') != std::string::npos;
        l.fd.reset(::socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0));
        sockaddr_storage ss{};
        socklen_t len;
        if (v6) {
            auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
            a->sin6_family = AF_INET6;
            inet_pton(AF_INET6, address, &a->sin6_addr);
            len = sizeof *a;
        } else {
            auto* a = reinterpret_cast<sockaddr_in*>(&ss);
            a->sin_family = AF_INET;
            inet_pton(AF_INET, address, &a->sin_addr);
            len = sizeof *a;
        }
        if (::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return l;
        if (type == SOCK_STREAM) ::listen(l.fd.get(), 64);
        getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
        l.port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                          : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
        return l;
    }
};

// True while pid names a live process (a zombie, killed and waiting for
// its reaper, is not alive).
inline bool process_alive(pid_t pid) {
    for (int i = 0; i < 50; ++i) {
        std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
        std::string pid_field, comm, state;
        if (!(stat >> pid_field >> comm >> state) || state == "Z" || state == "X") return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

// Host pids of live processes whose command line (arguments joined by
// spaces) starts with `marker`. An agent knows only the pids of its own pid
// namespace; the test finds its processes by what they run.
inline std::vector<pid_t> pids_running(const std::string& marker) {
    std::vector<pid_t> pids;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/proc", ec)) {
        std::string name = e.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string cmdline = read_text(e.path() / "cmdline");
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        pid_t pid = std::stoi(name);
        if (cmdline.rfind(marker, 0) == 0 && pid != ::getpid() && process_alive(pid))
            pids.push_back(pid);
    }
    return pids;
}

// A `sleep` duration no other process runs: "300.PID<n>", for pids_running.
inline std::string unique_sleep() {
    static int n = 0;
    return "300." + std::to_string(::getpid()) + std::to_string(++n);
}

// Answers one HTTP request on a loopback listener, from a thread.
struct OneShotHttpServer {
    Listener listener = Listener::on("127.0.0.1");
    std::thread thread;

    OneShotHttpServer() {
        thread = std::thread([fd = listener.fd.get()] {
            int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) return;
            char buf[4096];
            (void)!::read(c, buf, sizeof buf);
            const char reply[] =
                "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\norder: 1042";
            (void)!::write(c, reply, sizeof reply - 1);
            ::close(c);
        });
    }
    ~OneShotHttpServer() {
        ::shutdown(listener.fd.get(), SHUT_RDWR);
        thread.join();
    }
};

struct RunResult {
    int exit_code = -1;  // as a shell reports it: 128+N for signal N
    std::string out;
    std::string err;
};

class AgentRunTest : public ::testing::Test {
  protected:
    static inline std::string cgroup_name_;
    static inline std::string pin_dir_;
    static inline std::string cgroup_root_;
    static inline std::string run_dir_;  // agent-run's --run-dir: its lock directories

    static void SetUpTestSuite() {
        cgroup_name_ = "cordon-test-ar-" + std::to_string(::getpid());
        pin_dir_ = "/sys/fs/bpf/cordon-test-ar-" + std::to_string(::getpid());
        run_dir_ = "/run/cordon-test-ar-" + std::to_string(::getpid());
        if (auto mount = cgroup::find_cgroup2_mount()) cgroup_root_ = *mount + "/" + cgroup_name_;
    }

    static void TearDownTestSuite() {
        (void)netfilter::Netfilter::detach(pin_dir_);
        if (!cgroup_root_.empty()) {
            if (auto locks = cgroup::OwnerLocks::open(lock_dir()))
                (void)cgroup::cleanup_orphans(cgroup_root_, *locks);
            ::rmdir(cgroup_root_.c_str());
        }
        std::error_code ignored;
        fs::remove_all(run_dir_, ignored);
    }

    // Where agent-run keeps the lock files of the test root's sessions.
    static std::string lock_dir() { return cgroup::owner_lock_dir(run_dir_, cgroup_name_); }

    void SetUp() override {
        if (::geteuid() != 0)
            GTEST_SKIP() << "needs root: creates cgroups and attaches BPF programs";
        if (cgroup_root_.empty()) GTEST_SKIP() << "no cgroup2 mount on this host";
        // Not below /tmp: the agent has a private /tmp of its own, and the
        // files it writes here must reach the test.
        dir_ = fs::path("/run") / ("cordon-test-" + std::to_string(::getpid()) + "-" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        fs::permissions(dir_, fs::perms::all);
        // The audit log in a directory only root can write: agent-run
        // refuses one where others could replace the file.
        audit_dir_ = dir_.string() + "-audit";
        fs::remove_all(audit_dir_);
        fs::create_directories(audit_dir_);
        fs::permissions(audit_dir_, fs::perms::owner_all);
        audit_log_ = audit_dir_ / "audit.jsonl";
    }

    void TearDown() override {
        if (!dir_.empty()) fs::remove_all(dir_);
        if (!audit_dir_.empty()) fs::remove_all(audit_dir_);
    }

    // A profile allowing `allowed` endpoints through tool "allowed_tool" and
    // listing `denied` endpoints under the denied tool "denied_tool".
    fs::path write_profile(const std::vector<std::string>& allowed,
                           const std::vector<std::string>& denied,
                           const std::string& max_duration = "5m",
                           nlohmann::json extra = nlohmann::json::object()) {
        nlohmann::json p = {
            {"apiVersion", "cordon/v1"},
            {"identity",
             {{"agentId", "test-agent"},
              {"agentType", "test"},
              {"version", "0.0.1"},
              {"expiresAt", "2099-01-01T00:00:00Z"}}},
            {"session", {{"maxDuration", max_duration}}},
            {"allowedTools", {"allowed_tool"}},
            {"deniedTools", {"denied_tool"}},
            {"tools",
             {{"allowed_tool", {{"endpoints", allowed}}},
              {"denied_tool", {{"endpoints", denied}}}}},
        };
        p.merge_patch(extra);
        auto path = dir_ / "profile.json";
        write_text(path, p.dump(2));
        return path;
    }

    // Starts agent-run (behind wrapper_, when set); returns its pid. Output
    // goes to files in dir_, stdio_ descriptors replace those that are set.
    pid_t start(const std::vector<std::string>& args) {
        std::vector<std::string> full = wrapper_;
        full.push_back(CORDON_AGENT_RUN);
        full.insert(full.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : full) argv.push_back(a.data());
        argv.push_back(nullptr);

        std::vector<std::string> env_strings;
        auto overridden = [&](const std::string& entry) {
            std::string name = entry.substr(0, entry.find('=') + 1);
            for (const auto& e : extra_env_)
                if (e.rfind(name, 0) == 0) return true;
            return false;
        };
        for (char** e = environ; *e; ++e)
            if (!overridden(*e)) env_strings.emplace_back(*e);
        env_strings.push_back("CORDON_CGROUP=" + cgroup_name_);
        env_strings.push_back("CORDON_BPF_PIN_DIR=" + pin_dir_);
        env_strings.push_back("CORDON_RUN_DIR=" + run_dir_);
        env_strings.push_back("CORDON_AUDIT_LOG=" + audit_log_.string());
        for (auto& e : extra_env_) env_strings.push_back(e);
        std::vector<char*> envp;
        for (auto& e : env_strings) envp.push_back(e.data());
        envp.push_back(nullptr);

        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        std::string out = (dir_ / "stdout").string(), err = (dir_ / "stderr").string();
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                         0644);
        for (int fd = 0; fd < 3; ++fd)
            if (stdio_[fd] >= 0) posix_spawn_file_actions_adddup2(&actions, stdio_[fd], fd);
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        // A process group of its own is never orphaned: stop signals apply to it.
        if (own_process_group_) posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
        pid_t pid = -1;
        int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&actions);
        EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
        return pid;
    }

    // Waits for agent-run started by start(); kills it after timeout.
    RunResult wait(pid_t pid, std::chrono::seconds timeout = std::chrono::seconds(30)) {
        RunResult r;
        auto deadline = std::chrono::steady_clock::now() + timeout;
        int status = 0;
        while (::waitpid(pid, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, &status, 0);
                ADD_FAILURE() << "agent-run did not finish within " << timeout.count() << "s";
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        r.out = read_text(dir_ / "stdout");
        r.err = read_text(dir_ / "stderr");
        return r;
    }

    RunResult run(const std::vector<std::string>& args,
                  std::chrono::seconds timeout = std::chrono::seconds(30)) {
        return wait(start(args), timeout);
    }

    std::vector<nlohmann::json> audit_events() const { return read_events(audit_log_); }

    // Session cgroups left under the test's root.
    size_t leftover_cgroups() const {
        size_t n = 0;
        if (fs::exists(cgroup_root_))
            for (const auto& e : fs::directory_iterator(cgroup_root_)) n += e.is_directory();
        return n;
    }

    // Policy entries left in the pinned maps.
    size_t leftover_sessions() const {
        auto nf = netfilter::Netfilter::open_or_attach(cgroup_root_, pin_dir_);
        if (!nf) {
            ADD_FAILURE() << nf.error().message();
            return 0;
        }
        return (*nf)->session_ids().size();
    }

    fs::path dir_;
    fs::path audit_dir_;
    fs::path audit_log_;
    std::vector<std::string> extra_env_;  // NAME=value, replacing the test's own NAME
    // A command agent-run is started through (argv[0] a full path), e.g.
    // one that enters a network namespace first.
    std::vector<std::string> wrapper_;
    // Descriptors to give agent-run as stdin, stdout, stderr; -1: the default.
    int stdio_[3] = {-1, -1, -1};
    bool own_process_group_ = false;  // start agent-run in a process group of its own
};

// A python3 one-liner that connects (TCP) or sends (UDP) and prints
// "ok" or the errno name.
inline std::string py_connect(const std::string& host, uint16_t port, bool udp = false) {
    std::string family = host.find(':') != std::string::npos ? "AF_INET6" : "AF_INET";
    std::string body =
        udp ? "s=socket.socket(socket." + family + ",socket.SOCK_DGRAM); s.sendto(b'x',('" + host +
                  "'," + std::to_string(port) + "))"
            : "s=socket.socket(socket." + family + "); s.settimeout(3); s.connect(('" + host +
                  "'," + std::to_string(port) + "))";
    return "import socket,errno\ntry:\n " + body +
           "\n print('ok')\nexcept OSError as e:\n print(errno.errorcode.get(e.errno, str(e)))";
}

}  // namespace cordon::testing
