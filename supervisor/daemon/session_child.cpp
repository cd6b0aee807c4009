// SPDX-License-Identifier: Apache-2.0
#include "daemon/session_child.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "audit/audit.h"
#include "cordon/log.h"
#include "daemon/state.h"
#include "launch/init.h"
#include "launch/session.h"

namespace cordon::daemon {
namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("daemon");
    return logger;
}

// The connection becomes fd 3 and stdio 0 to 2; nothing else of cordond's
// stays open (its socket, other clients, its BPF maps).
void take_descriptors(const ChildSpec& spec) {
    int high[4];
    const int from[4] = {spec.stdio[0], spec.stdio[1], spec.stdio[2], spec.conn};
    for (int i = 0; i < 4; ++i) high[i] = ::fcntl(from[i], F_DUPFD, 100);
    for (int i = 0; i < 4; ++i) ::dup2(high[i], i);
    ::close_range(4, ~0u, 0);
    ::fcntl(3, F_SETFD, FD_CLOEXEC);
    // cordond reads without waiting; the child waits for its one client.
    ::fcntl(3, F_SETFL, ::fcntl(3, F_GETFL) & ~O_NONBLOCK);
}

// cordond's blocked and ignored signals are not the session's.
void reset_signals() {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGCHLD}) ::signal(sig, SIG_DFL);
}

// Enters the client's working directory with the client's own rights, so
// that no one starts an agent where they could not go themselves; "/" when
// that fails, with a warning on the client's stderr.
void enter_working_dir(const ChildSpec& spec) {
    const Peer& p = spec.peer;
    bool entered = ::setgroups(p.groups.size(), p.groups.data()) == 0 && ::setegid(p.gid) == 0 &&
                   ::seteuid(p.uid) == 0 && ::chdir(spec.request.cwd.c_str()) == 0;
    int err = errno;
    if (::seteuid(0) != 0 || ::setegid(0) != 0 || ::setgroups(0, nullptr) != 0) ::_exit(125);
    if (entered) return;
    log()->warn("cannot enter {} as {}: {}: the agent starts in /", spec.request.cwd, p.user,
                std::strerror(err));
    (void)::chdir("/");
}

// PATH decides which file a bare command name runs: the client's.
void take_path(const LaunchRequest& request) {
    for (const auto& entry : request.env)
        if (entry.rfind("PATH=", 0) == 0) ::setenv("PATH", entry.c_str() + 5, 1);
}

// The session as the client and cordond see it; written once the agent runs.
class Reporter {
  public:
    Reporter(const ChildSpec& spec) : spec_(spec) {}

    void started(const launch::StartedSession& s) {
        std::lock_guard lock(mu_);
        SessionRecord r;
        r.session = s.id;
        r.profile = spec_.profile_name;
        r.user = s.user;
        r.uid = s.uid;
        r.launcher_uid = spec_.peer.uid;
        r.agent_pid = s.agent_pid;
        r.supervisor_pid = ::getpid();
        r.supervisor_start = process_start_time(::getpid()).value_or(0);
        r.started = audit::now_rfc3339();
        r.deadline = s.deadline;
        r.cgroup_path = s.cgroup_path;
        r.cgroup_id = s.cgroup_id;
        r.agent_id = spec_.agent_id;
        r.agent_type = spec_.agent_type;
        r.version = spec_.version;
        record_ = r;
        save();
        (void)send_message(3, {{"event", "started"}, {"session", s.id}, {"pid", s.agent_pid}});
    }

    void denied() { ++denials_; }

    // Writes the denial count when it changed; the control thread calls it.
    void flush() {
        std::lock_guard lock(mu_);
        if (record_ && record_->denials != denials_) save();
    }

    void finished(int status) {
        std::lock_guard lock(mu_);
        remove_record(spec_.config->run_dir, spec_.session_id);
        record_.reset();
        (void)send_message(3, {{"event", "exit"}, {"status", status}});
    }

  private:
    void save() {
        record_->denials = denials_;
        if (auto st = write_record(spec_.config->run_dir, *record_); !st)
            log()->warn("{}", st.error().message());
    }

    const ChildSpec& spec_;
    std::mutex mu_;
    std::optional<SessionRecord> record_;
    std::atomic<uint64_t> denials_{0};
};

// Reads the client's messages: a signal to forward goes to this process,
// where run_session's signalfd takes it. The client gone is a hangup.
// The signal a client's control message asks for, or 0: anything but
// {"op": "signal", "signal": N} with an integer N is ignored, never thrown
// at (an exception in this thread would end the session's supervisor).
int signal_asked(const nlohmann::json& body) {
    if (!body.is_object()) return 0;
    auto op = body.find("op");
    auto sig = body.find("signal");
    if (op == body.end() || !op->is_string() || *op != "signal") return 0;
    if (sig == body.end() || !sig->is_number_integer()) return 0;
    int64_t n = sig->get<int64_t>();
    return n > 0 && n < 65 ? static_cast<int>(n) : 0;
}

void control_loop(Reporter& reporter) {
    for (;;) {
        pollfd p{3, POLLIN, 0};
        int n = ::poll(&p, 1, 1000);
        reporter.flush();
        if (n <= 0) continue;
        auto m = receive_message(3, 1024);
        if (!m || !*m) {
            ::kill(::getpid(), SIGHUP);
            for (;;) {
                ::sleep(1);
                reporter.flush();
            }
        }
        int sig = signal_asked((*m)->body);
        for (int forwarded : launch::kForwardedSignals)
            if (sig == forwarded) ::kill(::getpid(), sig);
    }
}

}  // namespace

void run_session_child(const ChildSpec& spec) {
    ::setsid();
    reset_signals();
    take_descriptors(spec);
    enter_working_dir(spec);
    take_path(spec.request);

    Reporter reporter(spec);
    // Before the thread starts, so that it inherits the mask: a forwarded
    // signal waits for run_session's signalfd instead of ending the child.
    (void)launch::forwarded_signals();  // the mask stays; run_session makes its own signalfd
    std::thread(control_loop, std::ref(reporter)).detach();

    launch::SessionOptions options = session_options(*spec.config);
    options.profile_path = spec.profile_path;
    options.command = spec.request.argv;
    options.session_id = spec.session_id;
    options.launcher_uid = spec.peer.uid;
    options.launcher_login_uid = spec.peer.login_uid;
    options.environment = spec.request.env;
    options.on_start = [&reporter](const launch::StartedSession& s) { reporter.started(s); };
    options.on_denial = [&reporter] { reporter.denied(); };
    int status = launch::kExitFailure;
    try {
        status = launch::run_session(options);
    } catch (const std::exception& e) {
        log()->error("internal error: {} (the session was killed; please report this)", e.what());
    }
    reporter.finished(status);
    ::_exit(status);
}

}  // namespace cordon::daemon
