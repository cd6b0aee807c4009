// SPDX-License-Identifier: Apache-2.0
#include "daemon/server.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "audit/audit.h"
#include "audit/rate_limit.h"
#include "cordon/log.h"
#include "daemon/audit_tail.h"
#include "daemon/notify.h"
#include "daemon/peer.h"
#include "daemon/profiles.h"
#include "daemon/protocol.h"
#include "daemon/session_child.h"
#include "daemon/state.h"
#include "launch/session.h"

namespace cordon::daemon {
namespace {

using nlohmann::json;
using SysClock = std::chrono::system_clock;
using namespace std::chrono_literals;

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("daemon");
    return logger;
}

std::shared_ptr<spdlog::logger> audit_log() {
    static auto logger = layer_logger("audit");
    return logger;
}

// A client has this long to send its request once connected.
constexpr auto kRequestTimeout = std::chrono::seconds(5);
// Connections waiting for their request, at most; more are closed at once.
constexpr size_t kMaxPendingClients = 64;
// Of those, one account's, so that no user can keep the others out.
constexpr size_t kMaxPendingPerUser = 8;
// A session child kills its agent at the deadline; cordond steps in after this.
constexpr auto kDeadlineGrace = std::chrono::seconds(2);

audit::Subject subject_of(const SessionRecord& r) {
    return {r.agent_id, r.agent_type, r.version, r.session};
}

Result<UniqueFd> open_pidfd(pid_t pid) {
    UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!fd.valid()) return errno_error("cannot open a pidfd for " + std::to_string(pid));
    return fd;
}

// Writes "1" to the cgroup's cgroup.kill: every process in it gets SIGKILL.
bool kill_cgroup(const std::string& path) {
    std::ofstream out(path + "/cgroup.kill");
    out << "1";
    out.close();
    return static_cast<bool>(out);
}

// The socket's directory is 0755 (anyone may reach the socket), the
// socket 0666: the kernel's SO_PEERCRED decides, not file modes.
Result<UniqueFd> listen_on(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path dir = fs::path(path).parent_path();
    if (fs::create_directories(dir, ec))
        fs::permissions(dir,
                        fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec,
                        ec);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return plain_error("socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return errno_error("cannot create the API socket");
    ::unlink(path.c_str());  // a dead cordond's; the instance lock says none is alive
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return errno_error("cannot bind " + path);
    if (::chmod(path.c_str(), 0666) != 0) return errno_error("cannot chmod " + path);
    if (::listen(fd.get(), 64) != 0) return errno_error("cannot listen on " + path);
    return fd;
}

// One cordond per run directory: a second one would adopt the first's sessions.
Result<UniqueFd> instance_lock(const std::string& run_dir) {
    std::error_code ec;
    std::filesystem::create_directories(run_dir, ec);
    std::filesystem::permissions(run_dir, std::filesystem::perms::owner_all, ec);
    std::filesystem::create_directories(state_dir(run_dir), ec);
    std::filesystem::permissions(state_dir(run_dir), std::filesystem::perms::owner_all, ec);
    std::string path = run_dir + "/cordond.lock";
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) return errno_error("cannot open " + path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0)
        return errno_error("cannot lock " + path,
                           "another cordond runs with this run directory; stop it first");
    return fd;
}

struct Pending {
    UniqueFd conn;
    std::chrono::steady_clock::time_point since;
    uid_t uid = 0;
};

// The connecting process's uid as the kernel recorded it (unix(7)).
uid_t peer_uid(int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.uid : uid_t(-1);
}

// A session cordond knows: its supervising child (its own, or adopted).
struct Tracked {
    pid_t pid = 0;
    UniqueFd pidfd;
    bool own_child = false;
    uid_t launcher_uid = 0;
    bool expired = false;  // cordond killed it at its deadline
};

class Daemon {
  public:
    Daemon(Config config, std::string config_path)
        : config_(std::move(config)), config_path_(std::move(config_path)) {}

    Status start();
    void loop();

  private:
    Status watch(int fd) {
        epoll_event ev{EPOLLIN, {.fd = fd}};
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
            return errno_error("cannot watch a descriptor");
        return ok_status();
    }
    void unwatch(int fd) { (void)::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

    void reload_profiles();
    void adopt_sessions();
    void on_accept();
    void on_request(int fd);
    void on_session_exit(std::string id);
    void on_tick();
    bool on_signal();  // false: time to stop

    json handle(int fd, Message& m);
    Result<const InstalledProfile*> authorize(const LaunchRequest& request, const Peer& peer);
    json launch(int fd, Message& m, const Peer& peer);
    json sessions(const Peer& peer);
    json stop(const json& body, const Peer& peer);
    void refuse(const Peer& peer, const std::string& what, const std::string& why,
                const audit::Subject& subject = {});
    void enforce_deadline(const SessionRecord& r, Tracked& t, bool at_adoption = false);

    Config config_;
    std::string config_path_;
    ProfileSet profiles_;
    std::optional<launch::Host> host_;
    std::unique_ptr<audit::AuditLog> audit_;
    std::optional<AuditTail> audit_tail_;
    UniqueFd lock_, listen_, epoll_, signals_, tick_;
    std::map<int, Pending> pending_;
    std::map<std::string, Tracked> sessions_;
    std::map<uid_t, audit::DenialLimiter> refusal_limits_;
};

Status Daemon::start() {
    auto lock = instance_lock(config_.run_dir);
    if (!lock) return lock.error();
    lock_ = std::move(*lock);
    auto audit = audit::AuditLog::open(config_.audit_log);
    if (!audit) return audit.error();
    audit_ = std::move(*audit);
    if (config_.audit_to_log) audit_tail_.emplace(config_.audit_log);
    auto host = launch::open_host(session_options(config_));
    if (!host) return host.error();
    host_ = std::move(*host);
    reload_profiles();
    adopt_sessions();
    launch::reap_leftovers(*host_, config_.run_dir, config_.approvals_dir, *audit_);

    epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&set, sig);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    signals_ = UniqueFd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    tick_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    itimerspec every_second{{1, 0}, {1, 0}};
    if (!epoll_.valid() || !signals_.valid() || !tick_.valid() ||
        ::timerfd_settime(tick_.get(), 0, &every_second, nullptr) != 0)
        return errno_error("cannot set up cordond's event loop");
    auto listener = listen_on(config_.socket);
    if (!listener) return listener.error();
    listen_ = std::move(*listener);
    for (int fd : {listen_.get(), signals_.get(), tick_.get()})
        if (auto st = watch(fd); !st) return st;
    for (auto& [_, t] : sessions_)
        if (auto st = watch(t.pidfd.get()); !st) return st;
    return ok_status();
}

void Daemon::reload_profiles() {
    profiles_ = load_profiles(config_.profiles_dir,
                              std::chrono::floor<std::chrono::seconds>(SysClock::now()));
    for (const auto& e : profiles_.errors) log()->error("{}", e.message());
    std::string names;
    for (const auto& [name, _] : profiles_.by_name) names += (names.empty() ? "" : ", ") + name;
    log()->info("{} profile(s) from {}: {}", profiles_.by_name.size(), config_.profiles_dir,
                names.empty() ? "none" : names);
}

// The sessions a previous cordond started whose supervising child still
// runs: tracked again, and their deadlines enforced from here too. Those
// whose child is gone lose their record; reap_leftovers kills what is left.
void Daemon::adopt_sessions() {
    for (auto& r : read_records(config_.run_dir)) {
        auto pidfd = open_pidfd(r.supervisor_pid);
        if (!pidfd || process_start_time(r.supervisor_pid) != r.supervisor_start) {
            remove_record(config_.run_dir, r.session);
            continue;
        }
        Tracked t{r.supervisor_pid, std::move(*pidfd), false, r.launcher_uid, false};
        audit_->emit("session.adopt", subject_of(r),
                     {{"pid", r.agent_pid},
                      {"supervisorPid", r.supervisor_pid},
                      {"deadline", audit::format_time(r.deadline)}});
        enforce_deadline(r, t, true);
        sessions_.emplace(r.session, std::move(t));
    }
}

// Past its deadline and still there: its child did not kill it (it was
// stopped, or the deadline passed while no cordond ran), so cordond does:
// at once when adopting it, else after the child's grace period.
void Daemon::enforce_deadline(const SessionRecord& r, Tracked& t, bool at_adoption) {
    if (t.expired || SysClock::now() < r.deadline + (at_adoption ? 0s : kDeadlineGrace)) return;
    if (r.cgroup_path.rfind(host_->root + "/", 0) != 0) return;
    if (!std::filesystem::exists(r.cgroup_path)) return;
    t.expired = true;
    kill_cgroup(r.cgroup_path);
    audit_->emit(
        "session.expire", subject_of(r),
        {{"pid", r.agent_pid}, {"deadline", audit::format_time(r.deadline)}, {"by", "cordond"}});
}

void Daemon::on_accept() {
    for (;;) {
        UniqueFd conn(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!conn.valid()) return;
        uid_t uid = peer_uid(conn.get());
        auto mine = std::count_if(pending_.begin(), pending_.end(),
                                  [uid](const auto& p) { return p.second.uid == uid; });
        if (pending_.size() >= kMaxPendingClients ||
            static_cast<size_t>(mine) >= kMaxPendingPerUser) {
            (void)send_message(conn.get(), error_answer("cordond is busy; try again"));
            continue;
        }
        int fd = conn.get();
        if (!watch(fd)) continue;
        pending_[fd] = {std::move(conn), std::chrono::steady_clock::now(), uid};
    }
}

void Daemon::on_request(int fd) {
    auto it = pending_.find(fd);
    if (it == pending_.end()) return;
    Pending client = std::move(it->second);
    pending_.erase(it);
    unwatch(fd);
    auto m = receive_message(fd, kMaxRequestBytes);
    if (!m) {
        log()->warn("request refused: {}", m.error().message());
        (void)send_message(fd, error_answer(m.error().message(), true));
        return;
    }
    if (!*m) return;  // the client left without asking
    json answer = handle(fd, **m);
    if (!answer.is_null()) (void)send_message(fd, answer);
}

json Daemon::handle(int fd, Message& m) {
    auto peer = peer_of(fd);
    if (!peer) return error_answer(peer.error().message());
    std::string op = m.body.value("op", json("")).is_string() ? m.body.value("op", "") : "";
    if (op == "launch") return launch(fd, m, *peer);
    if (!m.fds.empty()) return error_answer("only launch takes descriptors");
    if (op == "sessions") return sessions(*peer);
    if (op == "stop") return stop(m.body, *peer);
    return error_answer("op: expected launch, sessions or stop, got " +
                        m.body.value("op", json()).dump());
}

// What a client wrote, at most 200 characters of it.
std::string clipped(const std::string& text) {
    return text.size() > 200 ? text.substr(0, 200) + "..." : text;
}

// The same fit for a log line: quoted, control characters escaped (a
// newline in a profile name must not forge a line).
std::string quoted(const std::string& text) {
    return json(clipped(text)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Each refusal is on the record, up to a budget per uid (as for denials,
// audit/rate_limit.h): a client that asks in a loop cannot fill the disk.
// What is held back is counted in the next refusal that is written.
void Daemon::refuse(const Peer& peer, const std::string& what, const std::string& why,
                    const audit::Subject& subject) {
    auto now = audit::DenialLimiter::Clock::now();
    auto [it, _] =
        refusal_limits_.try_emplace(peer.uid, audit::kDenialBurst, audit::kDenialsPerSecond, now);
    if (!it->second.admit(now)) return;
    json fields = {{"request", clipped(what)},
                   {"uid", peer.uid},
                   {"user", peer.user},
                   {"pid", peer.pid},
                   {"reason", why}};
    if (uint64_t held = it->second.take_suppressed(); held > 0) fields["earlierSuppressed"] = held;
    log()->warn("{} refused to {} (uid {}, pid {}): {}", quoted(what), peer.user, peer.uid,
                peer.pid, why);
    audit_->emit("request.refused", subject, fields);
}

// The installed profile the caller may launch now; else the refusal's text.
Result<const InstalledProfile*> Daemon::authorize(const LaunchRequest& request, const Peer& peer) {
    const InstalledProfile* p = profiles_.find(request.profile);
    if (!p) {
        refuse(peer, "launch " + request.profile, "no such installed profile");
        return plain_error("no installed profile " + request.profile + " in " +
                           config_.profiles_dir +
                           " (cordond launches only those; `cordonctl validate` checks one)");
    }
    if (!may_launch(p->launchers, peer)) {
        refuse(peer, "launch " + p->name, "not in the profile's launchers",
               {p->agent_id, p->agent_type, p->version, ""});
        return plain_error(peer.user + " (uid " + std::to_string(peer.uid) +
                           ") may not launch profile " + p->name +
                           ": not in its launchers (ask an administrator to add you to "
                           "launchers.users or one of launchers.groups)");
    }
    auto own = std::count_if(sessions_.begin(), sessions_.end(),
                             [&peer](const auto& s) { return s.second.launcher_uid == peer.uid; });
    audit::Subject subject{p->agent_id, p->agent_type, p->version, ""};
    if (peer.uid != 0 && static_cast<unsigned>(own) >= config_.max_sessions_per_user) {
        refuse(peer, "launch " + p->name, "maxSessionsPerUser reached", subject);
        return plain_error(peer.user + " runs " + std::to_string(own) +
                           " sessions, the most one user may (maxSessionsPerUser); end one first");
    }
    if (sessions_.size() >= config_.max_sessions) {
        refuse(peer, "launch " + p->name, "maxSessions reached", subject);
        return plain_error("cordond runs its most sessions (maxSessions " +
                           std::to_string(config_.max_sessions) + "); try again later");
    }
    return p;
}

json Daemon::launch(int fd, Message& m, const Peer& peer) {
    auto request = parse_launch(m.body);
    if (!request) return error_answer("launch request: " + request.error().message(), true);
    if (m.fds.size() != 3)
        return error_answer("launch request: expected stdin, stdout and stderr attached", true);
    auto allowed = authorize(*request, peer);
    if (!allowed) return error_answer(allowed.error().message(), true);
    const InstalledProfile& p = **allowed;
    ChildSpec spec{&config_,
                   std::move(*request),
                   launch::new_session_id(),
                   p.name,
                   p.agent_id,
                   p.agent_type,
                   p.version,
                   p.path,
                   peer,
                   fd,
                   {m.fds[0].get(), m.fds[1].get(), m.fds[2].get()}};
    pid_t pid = ::fork();
    if (pid < 0) return error_answer(std::string("cannot fork: ") + std::strerror(errno), true);
    if (pid == 0) run_session_child(spec);
    log()->info("session {}: profile {} for {} (uid {}), supervisor pid {}", spec.session_id,
                p.name, peer.user, peer.uid, pid);
    auto pidfd = open_pidfd(pid);
    if (!pidfd) {
        log()->error("{}", pidfd.error().message());
        return json();
    }
    if (!watch(pidfd->get())) log()->error("cannot watch session {}", spec.session_id);
    sessions_.emplace(spec.session_id, Tracked{pid, std::move(*pidfd), true, peer.uid, false});
    return json();  // the child answers from here on
}

json Daemon::sessions(const Peer& peer) {
    bool admin = is_admin(peer, config_.admin_groups);
    json list = json::array();
    for (const auto& r : read_records(config_.run_dir)) {
        if (!admin && r.launcher_uid != peer.uid && r.uid != peer.uid) continue;
        json j = to_json(r);
        auto counters = host_->nf->counters(r.cgroup_id);
        j["bytesOut"] = counters ? json(counters->bytes_sent) : json(nullptr);
        list.push_back(j);
    }
    return {{"ok", true}, {"sessions", list}};
}

json Daemon::stop(const json& body, const Peer& peer) {
    std::string id = body.value("session", json("")).is_string() ? body.value("session", "") : "";
    for (const auto& r : read_records(config_.run_dir)) {
        if (r.session != id) continue;
        audit::Subject subject = subject_of(r);
        if (!is_admin(peer, config_.admin_groups) && r.launcher_uid != peer.uid) {
            refuse(peer, "stop " + id, "neither its launcher nor an administrator", subject);
            return error_answer(
                "you may stop only your own sessions (root and members of "
                "cordond's adminGroups may stop any)");
        }
        if (r.cgroup_path.rfind(host_->root + "/", 0) != 0 || !kill_cgroup(r.cgroup_path))
            return error_answer("cannot kill the cgroup of session " + id);
        audit_->emit("session.stop", subject, {{"uid", peer.uid}, {"user", peer.user}});
        return {{"ok", true}, {"session", id}};
    }
    return error_answer("no live session " + id + " (cordonctl sessions lists them)");
}

// The supervising child ended. Normally it removed its record; if it did
// not (it was killed), its agent lost its supervisor and is killed too.
void Daemon::on_session_exit(std::string id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    unwatch(it->second.pidfd.get());
    siginfo_t info{};
    if (it->second.own_child) (void)::waitid(P_PIDFD, it->second.pidfd.get(), &info, WEXITED);
    sessions_.erase(it);
    remove_record(config_.run_dir, id);
    launch::reap_leftovers(*host_, config_.run_dir, config_.approvals_dir, *audit_);
}

void Daemon::on_tick() {
    uint64_t expirations;
    (void)!::read(tick_.get(), &expirations, sizeof expirations);
    auto now = std::chrono::steady_clock::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (now - it->second.since < kRequestTimeout) {
            ++it;
            continue;
        }
        (void)send_message(it->first, error_answer("no request within 5 s"));
        unwatch(it->first);
        it = pending_.erase(it);
    }
    for (const auto& r : read_records(config_.run_dir))
        if (auto t = sessions_.find(r.session); t != sessions_.end())
            enforce_deadline(r, t->second);
    if (audit_tail_)
        audit_tail_->poll([](const std::string& line) { audit_log()->info("audit: {}", line); });
}

bool Daemon::on_signal() {
    signalfd_siginfo si{};
    while (::read(signals_.get(), &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            notify_service_manager("RELOADING=1");
            reload_profiles();
            notify_service_manager("READY=1");
            continue;
        }
        log()->info("SIG{}: cordond stops; {} live session(s) go on and will be adopted",
                    ::sigabbrev_np(static_cast<int>(si.ssi_signo)), sessions_.size());
        return false;
    }
    return true;
}

void Daemon::loop() {
    notify_service_manager("READY=1\nSTATUS=serving " + config_.socket);
    log()->info("serving {}", config_.socket);
    for (;;) {
        epoll_event events[16];
        int n = ::epoll_wait(epoll_.get(), events, 16, -1);
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == listen_.get()) {
                on_accept();
            } else if (fd == signals_.get()) {
                if (!on_signal()) return;
            } else if (fd == tick_.get()) {
                on_tick();
            } else if (pending_.count(fd)) {
                on_request(fd);
            } else {
                auto it = std::find_if(sessions_.begin(), sessions_.end(),
                                       [fd](const auto& s) { return s.second.pidfd.get() == fd; });
                if (it != sessions_.end()) on_session_exit(std::string(it->first));
            }
        }
    }
}

}  // namespace

int serve(const Config& config, const std::string& config_path) {
    Daemon d(config, config_path);
    if (auto st = d.start(); !st) {
        log()->error("{}", st.error().message());
        return 1;
    }
    d.loop();
    notify_service_manager("STOPPING=1");
    ::unlink(config.socket.c_str());
    return 0;
}

}  // namespace cordon::daemon
