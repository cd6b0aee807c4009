// SPDX-License-Identifier: Apache-2.0
#include "launch/session.h"
#include "cordon/log.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>

#include <spdlog/spdlog.h>

#include "audit/audit.h"
#include "cgroup/cgroup.h"
#include "creds/creds.h"
#include "launch/identity.h"
#include "launch/spawn.h"
#include "netfilter/netfilter.h"
#include "policy/policy.h"
#include "profile/profile.h"
#include "seccomp/seccomp.h"

extern char** environ;

namespace cordon::launch {
namespace {

using nlohmann::json;

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("session");
    return logger;
}

using SysTime = std::chrono::system_clock::time_point;

// The earlier of expiresAt and start + maxDuration, to the nanosecond (the
// policy's deadline is to the second, for display).
SysTime session_deadline(const profile::Profile& profile, SysTime start) {
    SysTime deadline = profile.identity.expires_at;
    if (profile.max_duration) deadline = std::min(deadline, start + *profile.max_duration);
    return deadline;
}

profile::TimePoint now_seconds() {
    return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}

std::string new_session_id() {
    uuid_t raw;
    uuid_generate_random(raw);
    char text[37];
    uuid_unparse_lower(raw, text);
    return text;
}

// Variables every agent gets from its launcher, as a login shell would:
// where to find programs, the terminal and the locale. Nothing else passes
// unless the profile's session.passEnvironment names it, so a launcher's
// AWS_SECRET_ACCESS_KEY or GITHUB_TOKEN never reaches the agent by accident.
bool passes_by_default(const std::string& name) {
    static const std::set<std::string> kNames{"PATH", "TERM", "COLORTERM", "NO_COLOR",
                                              "LANG", "LANGUAGE", "TZ"};
    return kNames.count(name) || name.rfind("LC_", 0) == 0;
}

// The agent's environment: the passed variables of agent-run's own, the
// account's identity, the delivered credentials and the session's ids.
std::vector<std::string> agent_environment(const profile::Profile& profile,
                                           const std::vector<creds::Delivery>& deliveries,
                                           const Identity& identity,
                                           const std::string& session_id) {
    std::set<std::string> passed(profile.pass_environment.begin(), profile.pass_environment.end());
    for (const auto& var : creds::source_variables(profile)) passed.erase(var);

    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string entry(*e);
        std::string name = entry.substr(0, entry.find('='));
        if (passes_by_default(name) || passed.count(name)) env.push_back(entry);
    }
    // As login(1) and systemd's User= do: the account's own home and name.
    env.push_back("HOME=" + identity.home);
    env.push_back("USER=" + identity.name);
    env.push_back("LOGNAME=" + identity.name);
    for (const auto& d : deliveries) env.push_back(d.env + "=" + d.value.reveal());
    env.push_back("CORDON_SESSION_ID=" + session_id);
    env.push_back("CORDON_AGENT_ID=" + profile.identity.agent_id);
    return env;
}

// The label a session cgroup carries, so that a later reaper can say
// whose session it was.
std::string session_label(const audit::Subject& s, pid_t supervisor) {
    return json{{"agentId", s.agent_id}, {"agentType", s.agent_type}, {"version", s.version},
                {"session", s.session}, {"supervisorPid", supervisor}}
        .dump();
}

audit::Subject subject_of_label(const std::string& label) {
    auto j = json::parse(label, nullptr, false);
    if (!j.is_object()) return {"unknown", "unknown", "unknown", "unknown"};
    return {j.value("agentId", "unknown"), j.value("agentType", "unknown"),
            j.value("version", "unknown"), j.value("session", "unknown")};
}

// Removes what crashed supervisors left: session cgroups nobody holds (each
// reported as session.reaped) and policy entries whose cgroup is gone.
void reap_leftovers(const std::string& root, const cgroup::OwnerLocks& locks,
                    netfilter::Netfilter& nf, audit::AuditLog& audit) {
    for (const auto& orphan : cgroup::cleanup_orphans(root, locks)) {
        (void)nf.remove_session(orphan.id);
        audit.emit("session.reaped", subject_of_label(orphan.label),
                   {{"reason", "supervisor-gone"}, {"cgroupId", orphan.id}});
    }

    // Policy entries first, cgroups second: a session that starts meanwhile
    // made its cgroup before its entry, so it is never taken for a leftover.
    auto ids = nf.session_ids();
    std::set<uint64_t> live;
    for (const auto& entry : std::filesystem::directory_iterator(root))
        if (entry.is_directory())
            if (auto id = cgroup::cgroup_id(entry.path())) live.insert(*id);
    for (uint64_t id : ids)
        if (!live.count(id)) (void)nf.remove_session(id);
}

// agent-run's exit status for a wait status, as shells report it.
int exit_status_of(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    return 128 + (wait_status & 0x7f);
}

json end_fields(int wait_status, std::chrono::steady_clock::time_point started,
                const std::string& reason) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count();
    json f{{"reason", reason}, {"durationMs", ms}};
    if (WIFEXITED(wait_status))
        f["exitStatus"] = WEXITSTATUS(wait_status);
    else
        f["signal"] = ::sigabbrev_np(wait_status & 0x7f)
                          ? std::string("SIG") + ::sigabbrev_np(wait_status & 0x7f)
                          : std::to_string(wait_status & 0x7f);
    return f;
}

// Everything a running session holds, released in reverse order of
// acquisition whatever way the session ends.
struct Session {
    std::string id;
    audit::Subject subject;
    std::unique_ptr<netfilter::Netfilter> nf;
    std::optional<cgroup::SessionCgroup> cgroup;
    bool policy_installed = false;

    ~Session() {
        if (cgroup) {
            auto st = cgroup->destroy();
            if (!st) log()->error("{}", st.error().message());
        }
        if (policy_installed && cgroup) (void)nf->remove_session(cgroup->id());
    }
};

std::string default_seccomp_dir(const std::string& configured) {
    if (!configured.empty()) return configured;
    std::string installed = std::string(CORDON_DATA_DIR) + "/seccomp";
    if (std::filesystem::exists(installed)) return installed;
    return std::string(CORDON_SOURCE_DIR) + "/profiles/seccomp";
}

// Signals that would end or stop agent-run and leave its agent running
// past the deadline: SIGPIPE when stderr or the audit pipe closes (writes
// then fail with EPIPE, and go on), and the terminal stop signals (the agent
// is in a session of its own; a stopped agent-run would never kill it).
Status ignore_signals() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    for (int sig : {SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU})
        if (::sigaction(sig, &ignore, nullptr) != 0)
            return errno_error(std::string("cannot ignore SIG") + ::sigabbrev_np(sig));
    return ok_status();
}

// Blocks the signals agent-run forwards and returns a signalfd for them:
// those a caller stops, reloads or resizes a program with.
Result<UniqueFd> forwarded_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH})
        sigaddset(&set, sig);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return errno_error("cannot block signals");
    UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd.valid()) return errno_error("cannot create a signalfd");
    return fd;
}

// A timer that fires at the session's deadline (wall clock: expiresAt is one).
Result<UniqueFd> deadline_timer(SysTime deadline) {
    UniqueFd fd(::timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!fd.valid()) return errno_error("cannot create a timerfd");
    itimerspec spec{};
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch());
    spec.it_value.tv_sec = ns.count() / 1000000000;
    spec.it_value.tv_nsec = ns.count() % 1000000000;
    if (::timerfd_settime(fd.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0)
        return errno_error("cannot arm the deadline timer");
    return fd;
}

json denial_fields(const netfilter::Denial& d, const profile::Profile& profile) {
    json f{{"pid", d.pid},      {"comm", d.comm},         {"destination", nullptr},
           {"port", nullptr},   {"protocol", d.protocol}, {"hook", d.hook},
           {"reason", d.reason}, {"tool", nullptr}};
    // Refused at socket() or setsockopt(): there is no destination yet.
    if (d.hook == "sock_create" || d.hook == "setsockopt") return f;
    f["destination"] = profile::format_ip(d.address);
    f["port"] = d.port;
    auto proto = d.protocol == "udp" ? profile::Protocol::udp : profile::Protocol::tcp;
    if (auto tool = policy::tool_for(profile, d.address, d.port, proto)) f["tool"] = *tool;
    if (d.hook == "egress") {
        // Packets leave in softirq context too, where no task is theirs.
        f["pid"] = nullptr;
        f["comm"] = nullptr;
        f["drops"] = d.drops;
    }
    return f;
}

// Waits for the agent, forwarding signals, reporting denials and killing
// the session at its deadline. Returns the agent's wait status and why it ended.
struct Ending {
    int wait_status = 0;
    bool deadline = false;
};

Result<Ending> supervise(Session& s, const Child& child, const profile::Profile& profile,
                         SysTime deadline, audit::AuditLog& audit,
                         netfilter::DenialStream* denials, int signal_fd) {
    auto timer = deadline_timer(deadline);
    if (!timer) return timer.error();
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep.valid()) return errno_error("cannot create an epoll instance");
    int fds[] = {child.pidfd.get(), signal_fd, timer->get(), denials ? denials->fd() : -1};
    for (int fd : fds) {
        if (fd < 0) continue;
        epoll_event ev{EPOLLIN, {.fd = fd}};
        if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
            return errno_error("cannot watch the session's descriptors");
    }
    auto report = [&](const netfilter::Denial& d) {
        audit.emit("net.deny", s.subject, denial_fields(d, profile));
    };
    Ending ending;
    for (;;) {
        epoll_event events[4];
        int n = ::epoll_wait(ep.get(), events, 4, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error("epoll_wait failed");
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (denials && fd == denials->fd()) {
                (void)denials->drain(report);
            } else if (fd == signal_fd) {
                signalfd_siginfo si{};
                while (::read(signal_fd, &si, sizeof si) == sizeof si)
                    ::syscall(SYS_pidfd_send_signal, child.pidfd.get(), si.ssi_signo, nullptr, 0);
            } else if (fd == timer->get() && !ending.deadline) {
                ending.deadline = true;
                audit.emit("session.expire", s.subject,
                           {{"pid", child.pid}, {"deadline", audit::format_time(deadline)}});
                if (auto st = s.cgroup->kill_all(); !st) log()->error("{}", st.error().message());
            } else if (fd == child.pidfd.get()) {
                auto status = reap(child);
                if (!status) return status.error();
                ending.wait_status = *status;
                if (denials) (void)denials->drain(report);
                return ending;
            }
        }
    }
}

// Capabilities do not guard what root owns: Cordon's own files among them.
constexpr const char* kRootAgentWarning =
    "the agent runs as root (session.user): without capabilities, but it owns what root "
    "owns, so it can leave its cgroup, unpin the BPF links that filter its network and kill "
    "agent-run; use an unprivileged account";

// What a session will be, worked out before anything is created: a
// profile that fails here starts nothing, and --check fails the same way.
struct Plan {
    profile::Profile profile;
    policy::EffectivePolicy policy;
    seccomp::Program filter;
    Identity identity;
    std::vector<creds::Delivery> deliveries;
};

Result<Plan> plan_session(const SessionOptions& options) {
    Plan plan;
    try {
        auto now = now_seconds();
        plan.profile = profile::load_profile(options.profile_path, now);
        plan.policy = policy::compute_policy(plan.profile, now, policy::system_resolver());
    } catch (const profile::ProfileError& e) {
        // load_profile's messages start with the file; compute_policy's do not.
        std::string what = e.what();
        if (what.rfind(options.profile_path, 0) != 0) what = options.profile_path + ": " + what;
        return plain_error(what);
    } catch (const std::exception& e) {
        return plain_error(options.profile_path + ": " + e.what());
    }
    auto filter = seccomp::build(plan.profile.syscalls, default_seccomp_dir(options.seccomp_dir));
    if (!filter) return filter.error();
    plan.filter = std::move(*filter);
    auto identity = resolve_identity(plan.profile.user, ::getuid());
    if (!identity) return identity.error();
    plan.identity = std::move(*identity);
    if (plan.identity.root()) log()->warn("{}", kRootAgentWarning);
    auto deliveries = creds::load_static(plan.profile, plan.policy.credentials);
    if (!deliveries) return deliveries.error();
    plan.deliveries = std::move(*deliveries);
    return plan;
}

}  // namespace

int check_profile(const SessionOptions& options) {
    auto plan = plan_session(options);
    if (!plan) {
        log()->error("{}", plan.error().message());
        return kExitFailure;
    }
    auto out = policy::to_json(plan->policy, plan->profile);
    out["runAs"] = {{"user", plan->identity.name}, {"uid", plan->identity.uid}};
    out["seccompInstructions"] = plan->filter.size();
    if (plan->identity.root()) out["warnings"].push_back(kRootAgentWarning);
    std::cout << out.dump(2) << "\n";
    return 0;
}

int run_session(const SessionOptions& options) {
    auto started = std::chrono::steady_clock::now();
    auto fail = [](const Error& e) {
        log()->error("{}", e.message());
        return kExitFailure;
    };
    if (::geteuid() != 0)
        return fail(plain_error("agent-run standalone must run as root",
                                "it creates cgroups and attaches BPF programs; use sudo"));
    if (auto st = ignore_signals(); !st) return fail(st.error());

    // 1. Profile, policy, filter, identity, credentials: refuse before
    // touching the kernel.
    auto plan = plan_session(options);
    if (!plan) return fail(plan.error());
    const auto& profile = plan->profile;
    const auto& policy = plan->policy;
    const auto& identity = plan->identity;
    auto& deliveries = plan->deliveries;

    auto audit = audit::AuditLog::open(options.audit_log);
    if (!audit) return fail(audit.error());

    // 2. Cordon's root cgroup and the BPF programs attached to it, shared by
    // every session; then whatever a crashed supervisor left behind.
    auto mount = cgroup::find_cgroup2_mount();
    if (!mount) return fail(mount.error());
    std::string root = *mount + "/" + options.cgroup_name;
    if (auto st = cgroup::ensure_dir(root); !st) return fail(st.error());
    auto nf = netfilter::Netfilter::open_or_attach(root, options.bpf_pin_dir);
    if (!nf) return fail(nf.error());
    // Who owns which session: lock files no agent can open (see OwnerLocks).
    auto locks =
        cgroup::OwnerLocks::open(cgroup::owner_lock_dir(options.run_dir, options.cgroup_name));
    if (!locks) return fail(locks.error());
    reap_leftovers(root, *locks, **nf, **audit);

    // 3. The session: its cgroup, then its policy in the maps, before any
    // process can run in it.
    Session s;
    s.id = new_session_id();
    s.subject = {profile.identity.agent_id, profile.identity.agent_type, profile.identity.version,
                 s.id};
    s.nf = std::move(*nf);
    auto cg =
        cgroup::SessionCgroup::create(root, s.id, session_label(s.subject, ::getpid()), &*locks);
    if (!cg) return fail(cg.error());
    s.cgroup = std::move(*cg);
    if (auto st = s.nf->add_session(s.cgroup->id(), policy.rules); !st) return fail(st.error());
    s.policy_installed = true;
    auto denials = s.nf->watch(s.cgroup->id());
    if (!denials) return fail(denials.error());

    // 4. The agent, contained from its first instruction.
    auto signals = forwarded_signals();
    if (!signals) return fail(signals.error());
    MountPlan mounts;  // its own mount namespace, so far with nothing laid over the host's
    SpawnSpec spec{options.command, agent_environment(profile, deliveries, identity, s.id),
                   s.cgroup->dir_fd(), &plan->filter, &identity, &mounts};
    auto child = spawn(spec);
    if (!child) {
        log()->error("{}", child.error().message());
        if (!is_exec_failure(child.error())) return kExitFailure;
        return child.error().err == ENOENT ? kExitNotFound : kExitNotExecutable;
    }
    // The agent has them; the supervisor keeps no copy.
    deliveries.clear();
    for (auto& entry : spec.env) ::explicit_bzero(entry.data(), entry.size());
    auto deadline = session_deadline(profile, std::chrono::system_clock::now());
    auto start = policy::start_fields(policy, child->pid);
    start["deadline"] = audit::format_time(deadline);
    start["user"] = identity.name;
    start["uid"] = identity.uid;
    (*audit)->emit("session.start", s.subject, start);

    // 5. Until the agent exits or the deadline passes.
    auto ending =
        supervise(s, *child, profile, deadline, **audit, denials->get(), signals->get());
    if (!ending) {
        (void)s.cgroup->kill_all();
        return fail(ending.error());
    }

    // 6. The session ends with its agent: nothing it started outlives it.
    if (auto st = s.cgroup->kill_all(); !st) log()->warn("{}", st.error().message());
    auto end = end_fields(ending->wait_status, started, ending->deadline ? "deadline" : "exit");
    if (auto counters = s.nf->counters(s.cgroup->id())) {
        end["egressDropped"] = counters->egress_dropped;
        end["denialsLost"] = counters->events_lost;
    }
    (*audit)->emit("session.end", s.subject, end);
    return ending->deadline ? kExitDeadline : exit_status_of(ending->wait_status);
}

}  // namespace cordon::launch
