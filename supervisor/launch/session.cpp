// SPDX-License-Identifier: Apache-2.0
#include "launch/session.h"
#include "cordon/log.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include <spdlog/spdlog.h>

#include "approval/broker.h"
#include "approval/webhook.h"
#include "audit/audit.h"
#include "audit/rate_limit.h"
#include "cgroup/cgroup.h"
#include "creds/creds.h"
#include "creds/directory.h"
#include "creds/lease.h"
#include "creds/secret_file.h"
#include "daemon/peer.h"
#include "dns/dns.h"
#include "launch/denials.h"
#include "launch/filesystem.h"
#include "launch/identity.h"
#include "launch/init.h"
#include "launch/limits.h"
#include "launch/spawn.h"
#include "launch/terminal.h"
#include "launch/view.h"
#include "netfilter/netfilter.h"
#include "policy/policy.h"
#include "profile/profile.h"
#include "seccomp/cache.h"
#include "seccomp/notify.h"
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

// A layer's error, named by its layer: a refused launch says which layer
// could not be applied ("seccomp: ...", "cgroup: ...").
Error in_layer(const char* layer, Error e) {
    e.what = std::string(layer) + ": " + e.what;
    return e;
}

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

}  // namespace

std::string new_session_id() {
    uuid_t raw;
    uuid_generate_random(raw);
    char text[37];
    uuid_unparse_lower(raw, text);
    return text;
}

namespace {

// Variables every agent gets from its launcher, as a login shell would:
// where to find programs, the terminal and the locale. Nothing else passes
// unless the profile's session.passEnvironment names it, so a launcher's
// AWS_SECRET_ACCESS_KEY or GITHUB_TOKEN never reaches the agent by accident.
bool passes_by_default(const std::string& name) {
    static const std::set<std::string> kNames{"PATH", "TERM",     "COLORTERM", "NO_COLOR",
                                              "LANG", "LANGUAGE", "TZ"};
    return kNames.count(name) || name.rfind("LC_", 0) == 0;
}

// The agent's environment: the passed variables of agent-run's own, the
// account's identity, the delivered credentials and the session's ids.
std::vector<std::string> agent_environment(const profile::Profile& profile,
                                           const std::vector<creds::Delivery>& deliveries,
                                           const Identity& identity, const std::string& session_id,
                                           const std::vector<std::string>& launcher_env,
                                           bool credentials_later, bool approvals) {
    std::set<std::string> passed(profile.pass_environment.begin(), profile.pass_environment.end());
    for (const auto& var : creds::source_variables(profile)) passed.erase(var);

    std::vector<std::string> env;
    for (const std::string& entry : launcher_env) {
        std::string name = entry.substr(0, entry.find('='));
        if (passes_by_default(name) || passed.count(name)) env.push_back(entry);
    }
    // As login(1) and systemd's User= do: the account's own home and name.
    env.push_back("HOME=" + identity.home);
    env.push_back("USER=" + identity.name);
    env.push_back("LOGNAME=" + identity.name);
    for (const auto& d : deliveries)
        if (!d.env.empty()) env.push_back(d.env + "=" + d.value.reveal());
    if (creds::plan_directory(deliveries, identity.uid, identity.gid, credentials_later))
        env.push_back(std::string(creds::kCredentialsDirVariable) + "=" + creds::kCredentialsDir);
    env.push_back("CORDON_SESSION_ID=" + session_id);
    env.push_back("CORDON_AGENT_ID=" + profile.identity.agent_id);
    if (approvals)
        env.push_back(std::string(approval::kAgentSocketVariable) + "=" +
                      approval::kAgentSocketPath);
    return env;
}

std::vector<std::string> environ_of_this_process() {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    return env;
}

// The label a session cgroup carries, so that a later reaper can say
// whose session it was.
std::string session_label(const audit::Subject& s, pid_t supervisor) {
    return json{{"agentId", s.agent_id},
                {"agentType", s.agent_type},
                {"version", s.version},
                {"session", s.session},
                {"supervisorPid", supervisor}}
        .dump();
}

audit::Subject subject_of_label(const std::string& label) {
    auto j = json::parse(label, nullptr, false);
    if (!j.is_object()) return {"unknown", "unknown", "unknown", "unknown"};
    return {j.value("agentId", "unknown"), j.value("agentType", "unknown"),
            j.value("version", "unknown"), j.value("session", "unknown")};
}

}  // namespace

void reap_leftovers(Host& host, const std::string& run_dir, const std::string& approvals_dir,
                    audit::AuditLog& audit) {
    const std::string& root = host.root;
    netfilter::Netfilter& nf = *host.nf;
    for (const auto& orphan : cgroup::cleanup_orphans(root, host.locks)) {
        (void)nf.remove_session(orphan.id);
        audit::Subject dead = subject_of_label(orphan.label);
        // Its files too (resolv.conf), named by the session id of its label.
        if (dead.session.find('/') == std::string::npos && dead.session != "unknown") {
            std::error_code ec;
            std::filesystem::remove_all(run_dir + "/sessions/" + dead.session, ec);
            // and its approvers' socket, which nobody answers any more.
            std::filesystem::remove(approvals_dir + "/" + dead.session + ".sock", ec);
        }
        audit.emit("session.reaped", dead,
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

namespace {

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
    std::unique_ptr<dns::Responder> resolver;
    std::string files_dir;  // resolv.conf and other files laid over the agent's view

    ~Session() {
        // The resolver first: it changes the session's rules until it stops.
        resolver.reset();
        if (!files_dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(files_dir, ec);
        }
        if (cgroup) {
            auto st = cgroup->destroy();
            if (!st) log()->error("{}", st.error().message());
        }
        if (policy_installed && cgroup) (void)nf->remove_session(cgroup->id());
    }
};

std::string default_seccomp_dir(const std::string& configured) {
    if (!configured.empty()) return configured;
    // Beside the running program first (PREFIX/bin/../share/cordon): a
    // package's binaries find their data wherever the package put them.
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    auto beside = exe.parent_path().parent_path() / "share/cordon/seccomp";
    if (!ec && std::filesystem::exists(beside, ec)) return beside.string();
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

}  // namespace

Result<UniqueFd> forwarded_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : kForwardedSignals) sigaddset(&set, sig);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return errno_error("cannot block signals");
    UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd.valid()) return errno_error("cannot create a signalfd");
    return fd;
}

namespace {

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

// Top destinations of session.end, by bytes sent.
constexpr size_t kEndDestinations = 16;

// What the session sent, for session.end: totals, the top destinations and
// the byte budget (null when none) with whether it cut anything.
json traffic_fields(const netfilter::Netfilter& nf, uint64_t cgroup_id, uint64_t budget) {
    json f;
    auto counters = nf.counters(cgroup_id);
    if (!counters) {
        log()->warn("{}", counters.error().message());
        return f;
    }
    f["egressDropped"] = counters->egress_dropped;
    f["denialsLost"] = counters->events_lost;
    f["bytesSent"] = counters->bytes_sent;
    f["packetsSent"] = counters->packets_sent;
    f["unattributedBytes"] = counters->unattributed_bytes;
    f["unixDenied"] = counters->unix_denied;
    f["budgetBytes"] = budget ? json(budget) : json(nullptr);
    f["budgetExceeded"] = counters->budget_dropped > 0;
    json top = json::array();
    if (auto dests = nf.destinations(cgroup_id)) {
        for (size_t i = 0; i < dests->size() && i < kEndDestinations; i++) {
            const auto& d = (*dests)[i];
            top.push_back({{"destination", profile::format_ip(d.address)},
                           {"port", d.port},
                           {"protocol", d.protocol},
                           {"bytes", d.bytes},
                           {"packets", d.packets}});
        }
    }
    f["destinations"] = top;
    return f;
}

// Waits for the agent, forwarding signals, reporting denials and killing
// the session at its deadline. Returns the agent's wait status and why it ended.
struct Ending {
    int wait_status = 0;
    bool deadline = false;
};

Result<UniqueFd> epoll_on(std::initializer_list<int> fds) {
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep.valid()) return errno_error("cannot create an epoll instance");
    for (int fd : fds) {
        if (fd < 0) continue;
        epoll_event ev{EPOLLIN, {.fd = fd}};
        if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
            return errno_error("cannot watch the session's descriptors");
    }
    return ep;
}

Result<Ending> supervise(Session& s, const Child& child, SysTime deadline, int timer_fd,
                         audit::AuditLog& audit, netfilter::DenialStream* denials,
                         DenialReporter& reporter, int signal_fd, seccomp::Notifier* notifier,
                         creds::TokenLease& tokens, approval::Broker* broker) {
    auto ep = epoll_on({child.pidfd.get(), signal_fd, timer_fd, reporter.timer_fd(),
                        denials ? denials->fd() : -1, notifier ? notifier->fd() : -1,
                        notifier ? notifier->timer_fd() : -1, tokens.timer_fd(),
                        broker ? broker->fd() : -1});
    if (!ep) return ep.error();
    // A connection through an open gate is no denial: the broker counts it.
    auto report = [&](const netfilter::Denial& d) {
        if (d.reason != "gate-use") reporter.report(d);
        if (broker && d.gate) broker->on_event(d);
    };
    Ending ending;
    for (;;) {
        epoll_event events[8];
        int n = ::epoll_wait(ep->get(), events, 8, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno_error("epoll_wait failed");
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (denials && fd == denials->fd()) {
                (void)denials->drain(report);
            } else if (notifier && fd == notifier->fd()) {
                // No process of the filter left: nothing more to answer.
                if (!notifier->on_ready(events[i].events))
                    (void)::epoll_ctl(ep->get(), EPOLL_CTL_DEL, fd, nullptr);
            } else if (notifier && fd == notifier->timer_fd()) {
                notifier->on_timer();
            } else if (broker && fd == broker->fd()) {
                broker->on_ready();
            } else if (fd == reporter.timer_fd()) {
                reporter.on_timer();
            } else if (fd == tokens.timer_fd()) {
                // Blocks the loop for the token endpoint's answer (creds/http.h bounds it).
                tokens.on_timer();
            } else if (fd == signal_fd) {
                signalfd_siginfo si{};
                while (::read(signal_fd, &si, sizeof si) == sizeof si)
                    ::syscall(SYS_pidfd_send_signal, child.pidfd.get(), si.ssi_signo, nullptr, 0);
            } else if (fd == timer_fd && !ending.deadline) {
                // The kill before anything that writes: nothing the agent did
                // to stderr may hold it up.
                ending.deadline = true;
                if (auto st = s.cgroup->kill_all(); !st) log()->error("{}", st.error().message());
                audit.emit("session.expire", s.subject,
                           {{"pid", child.pid}, {"deadline", audit::format_time(deadline)}});
            } else if (fd == child.pidfd.get()) {
                auto status = reap(child);
                if (!status) return status.error();
                ending.wait_status = *status;
                // The agent is gone: what it left in the ring buffer, all of it.
                while (denials) {
                    auto drained = denials->drain(report);
                    if (!drained || *drained < netfilter::DenialStream::kMaxDenialsPerDrain) break;
                }
                reporter.flush();
                return ending;
            }
        }
    }
}

// How long the last audit lines may wait for a full or stopped stderr.
constexpr std::chrono::seconds kAuditFlushTimeout{2};

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
    std::map<std::string, creds::Secret> client_secrets;  // of oauth sources, read once
    creds::Secret subject_token;                          // the user's, for token exchange
    // Some credential of a gated tool is a file a grant writes once the
    // agent runs: the credentials directory is mounted from the start.
    bool credentials_later = false;
    std::vector<dns::Upstream> upstreams;       // empty when no allowed tool has a name
    std::optional<landlock::Ruleset> landlock;  // when the profile has a filesystem section
    std::string cgroup2_mount;
    LimitsPlan limits;
    bool seal_memfd_exec = false;  // the kernel keeps vm.memfd_noexec per pid namespace
    std::vector<std::string> warnings;
    std::string working_dir;    // where the agent starts
    dev_t working_dir_dev = 0;  // and the directory that was, when planned
    ino_t working_dir_ino = 0;
};

constexpr const char* kNoMemfdNoexecWarning =
    "this kernel has no per-pid-namespace vm.memfd_noexec (Linux 6.3): the agent can "
    "create an executable memfd and run a program it wrote there";

// How the profile's limits apply on this host, and what the kernel lacks.
Status plan_containment(Plan& plan) {
    // Without a cgroup2 mount no session can start (open_host says so), but
    // --check still shows the profile, with every limit on its fallback.
    std::vector<std::string> available;
    if (auto mount = cgroup::find_cgroup2_mount()) {
        plan.cgroup2_mount = *mount;
        auto listed = available_controllers(*mount);
        if (!listed) return listed.error();
        available = std::move(*listed);
    }
    auto now = std::chrono::system_clock::now();
    auto duration =
        std::chrono::ceil<std::chrono::seconds>(session_deadline(plan.profile, now) - now);
    plan.limits = plan_limits(plan.profile.limits, available, duration);
    plan.warnings = plan.limits.warnings;
    plan.seal_memfd_exec = memfd_noexec_supported();
    if (!plan.seal_memfd_exec) plan.warnings.push_back(kNoMemfdNoexecWarning);
    return ok_status();
}

// The resolvers --dns-upstream names (parsed once, for the start-time
// resolution and the session's resolver alike), or none when it is unset.
Result<std::vector<dns::Upstream>> configured_upstreams(const SessionOptions& options) {
    if (options.dns_upstream.empty()) return std::vector<dns::Upstream>{};
    auto upstreams = dns::parse_upstreams(options.dns_upstream);
    if (!upstreams) {
        // A mistyped --dns-upstream is the command line's error, not the profile's.
        Error e = upstreams.error();
        e.what = "--dns-upstream: " + e.what;
        return e;
    }
    return upstreams;
}

// Whether anyone is in a group: a listed member, or an account whose
// primary group it is.
bool group_has_members(gid_t gid) {
    if (const group* gr = ::getgrgid(gid); gr && gr->gr_mem && gr->gr_mem[0]) return true;
    bool found = false;
    ::setpwent();
    while (const passwd* pw = ::getpwent())
        if (pw->pw_gid == gid) {
            found = true;
            break;
        }
    ::endpwent();
    return found;
}

// Approvers who cannot exist, or none but the launcher: requests nobody can
// grant, told before the session starts rather than when it waits. Also a
// tool both allowed and gated, which waits for approval.
std::vector<std::string> approver_warnings(const profile::Profile& profile,
                                           const SessionOptions& options) {
    const profile::ApprovalPolicy& approval = profile.approval;
    std::vector<std::string> warnings;
    for (const auto& tool : profile.allowed_tools)
        if (std::find(profile.approval_required.begin(), profile.approval_required.end(), tool) !=
            profile.approval_required.end())
            warnings.push_back("allowedTools and approvalRequired both name " + tool +
                               ": it waits for approval (approvalRequired wins); take it out of "
                               "one of them");
    uid_t launcher = options.launcher_uid.value_or(::getuid());
    bool only_launcher = approval.approvers.groups.empty() && !approval.approvers.users.empty();
    for (const auto& user : approval.approvers.users) {
        auto uid = daemon::uid_of(user);
        if (!uid)
            warnings.push_back("approval.approvers.users: no account \"" + user +
                               "\" on this host: it cannot approve");
        if (uid != launcher) only_launcher = false;
    }
    for (const auto& group : approval.approvers.groups)
        if (auto gid = daemon::gid_of(group); !gid)
            warnings.push_back("approval.approvers.groups: no group \"" + group +
                               "\" on this host: its members cannot approve");
        else if (!group_has_members(*gid))
            warnings.push_back("approval.approvers.groups: group \"" + group +
                               "\" has no members: nobody in it can approve (add one: gpasswd "
                               "-a USER " +
                               group + ")");
    if (only_launcher && !approval.allow_self_approval)
        warnings.push_back(
            "approval.approvers names only the launcher of this session, who may "
            "not grant its own requests: they cannot be granted (name another "
            "approver, or set approval.allowSelfApproval)");
    bool root_launches = launcher == 0;
    if (root_launches && approval.approvers.users.empty() && approval.approvers.groups.empty() &&
        !approval.allow_self_approval)
        warnings.push_back(
            "approval.approvers names nobody, so only root may approve, and root launches this "
            "session: its requests cannot be granted (name approvers, or launch it as another "
            "user through cordond)");
    return warnings;
}

// The webhook's URL: the profile's, or read from its protected urlFile.
Result<std::string> webhook_url(const profile::ApprovalWebhook& hook) {
    if (hook.url_file.empty()) return hook.url;
    auto url = creds::read_secret_file(hook.url_file, "approval.webhook.urlFile");
    if (!url) return url.error();
    const std::string& text = url->reveal();
    if (text.rfind("https://", 0) != 0 && text.rfind("http://", 0) != 0)
        return plain_error("approval.webhook.urlFile: " + hook.url_file +
                               " does not hold an http:// or https:// URL",
                           "write the webhook's URL alone into it");
    return text;
}

// The webhook's URL file, key and CA bundle, checked as credential files
// are, so that --check finds what would stop the launch.
Status check_webhook_files(const Plan& plan) {
    const auto& hook = plan.profile.approval.webhook;
    if (!hook || plan.policy.gated_tools.empty()) return ok_status();
    if (auto url = webhook_url(*hook); !url) return url.error();
    auto key = creds::read_secret_file(hook->secret_file, "approval.webhook.secretFile");
    if (!key) return key.error();
    if (!hook->ca_bundle.empty())
        return creds::check_trusted_file(hook->ca_bundle, "approval.webhook.caBundle");
    return ok_status();
}

// The credentials of the allowed tools and of those a grant may open.
std::vector<std::string> needed_credentials(const policy::EffectivePolicy& policy) {
    std::vector<std::string> needed = policy.credentials;
    needed.insert(needed.end(), policy.gated_credentials.begin(), policy.gated_credentials.end());
    return needed;
}

Result<Plan> plan_session(const SessionOptions& options) {
    // The agent inherits stdio: none of it may be a socket the filter cannot see.
    if (auto st = refuse_inet_stdio(); !st) return st.error();
    auto upstreams = configured_upstreams(options);
    if (!upstreams) return upstreams.error();
    // Names resolved when the session starts go to the same resolvers as the
    // agent's later queries.
    policy::Resolver resolve =
        upstreams->empty() ? policy::system_resolver() : dns::upstream_resolver(*upstreams);

    Plan plan;
    try {
        auto now = now_seconds();
        plan.profile = profile::load_profile(options.profile_path, now);
        plan.policy = policy::compute_policy(plan.profile, now, resolve);
    } catch (const profile::ProfileError& e) {
        // load_profile's messages start with the file; compute_policy's do not.
        std::string what = e.what();
        if (what.rfind(options.profile_path, 0) != 0) what = options.profile_path + ": " + what;
        return plain_error(what);
    } catch (const std::exception& e) {
        return plain_error(options.profile_path + ": " + e.what());
    }
    // Compiled once per distinct policy: the run directory keeps the programs.
    auto filter =
        seccomp::build_cached(plan.profile.syscalls, default_seccomp_dir(options.seccomp_dir),
                              options.run_dir + "/seccomp");
    if (!filter) return in_layer("seccomp", filter.error());
    plan.filter = std::move(*filter);
    auto identity = resolve_identity(plan.profile.user, options.launcher_uid.value_or(::getuid()));
    if (!identity) return identity.error();
    plan.identity = std::move(*identity);
    if (plan.identity.root()) log()->warn("{}", kRootAgentWarning);
    if (!options.command.empty())
        if (auto st = refuse_command_in_scratch(options.command[0]); !st) return st.error();
    if (plan.profile.filesystem) {
        auto rules = filesystem_rules(*plan.profile.filesystem, options.command, plan.identity);
        if (!rules) return rules.error();
        plan.landlock = std::move(*rules);
    }
    if (auto st = plan_containment(plan); !st) return st.error();
    std::string cwd_warning;
    plan.working_dir = agent_working_dir(cwd_warning);
    // "." is the directory the caller entered (cordond enters it with the
    // caller's rights); the path may have been swapped since.
    struct stat cwd {};
    if (plan.working_dir != "/" && ::stat(".", &cwd) == 0) {
        plan.working_dir_dev = cwd.st_dev;
        plan.working_dir_ino = cwd.st_ino;
    }
    if (!cwd_warning.empty()) plan.warnings.push_back(cwd_warning);
    if (!plan.policy.gated_tools.empty())
        for (auto& w : approver_warnings(plan.profile, options)) plan.warnings.push_back(w);
    for (const auto& w : plan.warnings) log()->warn("{}", w);
    auto loaded = creds::load_static(plan.profile, needed_credentials(plan.policy),
                                     options.subject_token_file);
    if (!loaded) return loaded.error();
    if (auto st = check_webhook_files(plan); !st) return st.error();
    plan.deliveries = std::move(loaded->deliveries);
    plan.client_secrets = std::move(loaded->client_secrets);
    plan.subject_token = std::move(loaded->subject_token);
    // The host's resolvers matter only when some allowed tool is reached by name.
    if (upstreams->empty() && !plan.policy.dns_names.empty()) upstreams = dns::system_upstreams();
    if (!upstreams) return upstreams.error();
    plan.upstreams = std::move(*upstreams);
    return plan;
}

// The session's resolver, whose learned addresses join the policy's own
// rules, and whose refusals share the kernel's denial budget.
Result<std::unique_ptr<dns::Responder>> start_resolver(Session& s, const Plan& plan,
                                                       audit::AuditLog& audit,
                                                       DenialReporter& reporter) {
    auto apply_learned = [&s, &plan](const std::vector<netfilter::Rule>& learned) {
        std::vector<netfilter::Rule> rules = policy::installed_rules(plan.policy);
        rules.insert(rules.end(), learned.begin(), learned.end());
        return s.nf->replace_rules(s.cgroup->id(), rules);
    };
    auto report = [&s, &audit, &reporter](const std::string& event, const json& fields) {
        if (event == "net.deny") return reporter.report_fields(fields);
        audit.emit(event, s.subject, fields);
    };
    // The kernel's counters per destination: an address still in use
    // outlives its TTL.
    auto packets_sent = [&s] {
        std::map<profile::Ip6, uint64_t> sent;
        if (auto dests = s.nf->destinations(s.cgroup->id()))
            for (const auto& d : *dests) sent[d.address] += d.packets;
        return sent;
    };
    return dns::Responder::start({&plan.policy, plan.profile.dns, plan.upstreams, 0},
                                 {apply_learned, report, packets_sent});
}

// What the agent sees of the filesystem: its own resolv.conf naming the
// session's resolver, in a root-owned directory of the session's own.
Result<MountPlan> agent_mounts(Session& s, const std::string& run_dir) {
    namespace fs = std::filesystem;
    std::string sessions = run_dir + "/sessions";
    s.files_dir = sessions + "/" + s.id;
    std::error_code ec;
    fs::create_directories(s.files_dir, ec);
    // The child binds these files as root, before it drops its identity.
    if (!ec) fs::permissions(sessions, fs::perms::owner_all, ec);
    if (ec) return plain_error("cannot create " + s.files_dir + ": " + ec.message());
    std::string path = s.files_dir + "/resolv.conf";
    std::ofstream out(path);
    out << "# Cordon session " << s.id << ": names resolve through the session's resolver only.\n"
        << "nameserver " << s.resolver->address_text() << "\n"
        << "options timeout:5 attempts:2\n";
    out.close();
    if (!out) return errno_error("cannot write " + path);
    fs::permissions(path,
                    fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                        fs::perms::others_read,
                    ec);
    auto view = dns_view(path);
    if (view) add_private_view(*view);
    return view;
}

// The credentials directory of the file deliveries, mounted in the
// agent's view; none without them.
Result<std::optional<creds::CredentialsDir>> credentials_view(const Plan& plan, MountPlan& mounts) {
    auto dir = creds::plan_directory(plan.deliveries, plan.identity.uid, plan.identity.gid,
                                     plan.credentials_later);
    if (dir)
        if (auto st = creds::ensure_mount_point(); !st) return st.error();
    add_credentials_view(mounts, dir);
    return dir;
}

// The session resolver as --check shows it: the names it answers for, how
// long what it learns stays, and where it asks.
json dns_json(const Plan& plan) {
    json names = json::array(), upstreams = json::array();
    for (const auto& n : plan.policy.dns_names)
        names.push_back({{"name", n.endpoint.hostname}, {"tool", n.tool}});
    for (const auto& u : plan.upstreams)
        upstreams.push_back(u.address + ":" + std::to_string(u.port));
    return {{"resolver", "a per-session address in 127.53.0.0/16, port 53"},
            {"names", names},
            {"minTtl", plan.profile.dns.min_ttl.count()},
            {"maxTtl", plan.profile.dns.max_ttl.count()},
            {"upstreams", upstreams}};
}

}  // namespace

Result<Host> open_host(const SessionOptions& options) {
    auto mount = cgroup::find_cgroup2_mount();
    if (!mount) return mount.error();
    std::string root = *mount + "/" + options.cgroup_name;
    if (auto st = cgroup::ensure_dir(root); !st) return in_layer("cgroup", st.error());
    auto nf = netfilter::Netfilter::open_or_attach(root, options.bpf_pin_dir, options.netfilter);
    if (!nf) return in_layer("network filter (BPF)", nf.error());
    // Lock files no agent can open (see OwnerLocks).
    auto locks =
        cgroup::OwnerLocks::open(cgroup::owner_lock_dir(options.run_dir, options.cgroup_name));
    if (!locks) return locks.error();
    return Host{root, std::move(*nf), std::move(*locks)};
}

namespace {

// The session's cgroup, its resolver, then its policy entry, which names
// the resolver as the session's only way to port 53.
Status install_session(Session& s, const audit::Subject& subject, const Plan& plan, Host& host,
                       audit::AuditLog& audit, DenialReporter& reporter) {
    s.id = subject.session;
    s.subject = subject;
    s.nf = std::move(host.nf);
    auto cg = cgroup::SessionCgroup::create(host.root, s.id, session_label(s.subject, ::getpid()),
                                            &host.locks);
    if (!cg) return in_layer("cgroup", cg.error());
    s.cgroup = std::move(*cg);
    auto resolver = start_resolver(s, plan, audit, reporter);
    if (!resolver) return in_layer("DNS", resolver.error());
    s.resolver = std::move(*resolver);
    netfilter::Resolver dns_server{s.resolver->address(), 53};
    const auto& policy = plan.policy;
    // A gated tool's rules are there from the start, closed (approval/broker.h).
    if (auto st = s.nf->add_session(s.cgroup->id(), policy::installed_rules(policy), dns_server,
                                    policy.egress_budget, !policy.gated_tools.empty());
        !st)
        return in_layer("network filter (BPF)", st.error());
    s.policy_installed = true;
    return ok_status();
}

// Spawns the agent; the credentials it received are wiped from the plan
// and the spawn environment, so the supervisor keeps no copy.
Result<Child> start_agent(Session& s, Plan& plan, const SessionOptions& options,
                          const MountPlan& mounts,
                          const std::optional<creds::CredentialsDir>& credentials) {
    auto env = agent_environment(plan.profile, plan.deliveries, plan.identity, s.id,
                                 options.environment.value_or(environ_of_this_process()),
                                 plan.credentials_later, !plan.policy.gated_tools.empty());
    SpawnSpec spec{options.command, std::move(env), s.cgroup->dir_fd(),   &plan.filter,
                   &plan.identity,  &mounts,        &plan.limits.rlimits, plan.seal_memfd_exec};
    if (plan.landlock) spec.landlock = &*plan.landlock;
    spec.working_dir = plan.working_dir.c_str();
    spec.working_dir_dev = plan.working_dir_dev;
    spec.working_dir_ino = plan.working_dir_ino;
    if (credentials) spec.credentials = &*credentials;
    auto child = spawn(spec);
    plan.deliveries.clear();
    for (auto& entry : spec.env) ::explicit_bzero(entry.data(), entry.size());
    return child;
}

// Answers the escape class the agent's filter hands over, reporting each
// refusal as syscall.deny; none when the filter notifies nothing.
Result<std::unique_ptr<seccomp::Notifier>> syscall_notifier(Child& child,
                                                            const audit::Subject& subject,
                                                            audit::AuditLog& audit) {
    if (!child.listener.valid()) return std::unique_ptr<seccomp::Notifier>{};
    auto emit = [&audit, subject](const std::string& event, const json& fields) {
        audit.emit(event, subject, fields);
    };
    auto n = seccomp::Notifier::create(std::move(child.listener), emit);
    if (!n) return n.error();
    return std::make_unique<seccomp::Notifier>(std::move(*n));
}

// The profile's webhook, when it has one and some tool needs approval:
// each delivery's outcome is on the record.
Result<std::unique_ptr<approval::Webhook>> approval_webhook(const Plan& plan,
                                                            audit::AuditLog& audit,
                                                            const audit::Subject& subject) {
    const auto& hook = plan.profile.approval.webhook;
    if (!hook || plan.policy.gated_tools.empty()) return std::unique_ptr<approval::Webhook>{};
    approval::WebhookConfig config;
    auto url = webhook_url(*hook);
    if (!url) return url.error();
    config.url = std::move(*url);
    config.secret_file = hook->secret_file;
    config.ca_bundle = hook->ca_bundle;
    auto on_result = [&audit, subject](const approval::DeliveryResult& r) {
        audit.emit(r.delivered ? "approval.notify" : "approval.notify.error", subject,
                   approval::to_json(r));
    };
    return approval::Webhook::start(config, on_result);
}

// The value of NAME in the launcher's environment: cordond's client's, or
// this process's.
const char* launcher_env(const SessionOptions& options, const std::string& name) {
    if (!options.environment) return std::getenv(name.c_str());
    for (const std::string& entry : *options.environment)
        if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
            entry[name.size()] == '=')
            return entry.c_str() + name.size() + 1;
    return nullptr;
}

// The account sudo ran the launcher for, when the launcher is root: sudo
// sets SUDO_UID, and on hosts without pam_loginuid it is all there is to tell.
std::optional<uid_t> sudo_uid(const SessionOptions& options) {
    if (options.launcher_uid.value_or(::getuid()) != 0) return std::nullopt;
    const char* value = launcher_env(options, "SUDO_UID");
    if (!value) return std::nullopt;
    uint32_t uid = 0;
    const char* end = value + std::strlen(value);
    auto [rest, ec] = std::from_chars(value, end, uid);
    if (ec != std::errc() || rest != end || rest == value || uid == 4294967295u)
        return std::nullopt;
    return static_cast<uid_t>(uid);
}

// The accounts the launcher is known by besides its uid.
std::vector<uid_t> launcher_accounts(const SessionOptions& options) {
    std::vector<uid_t> out;
    auto login = options.launcher_uid ? options.launcher_login_uid : daemon::login_uid_of(0);
    if (login) out.push_back(*login);
    if (auto uid = sudo_uid(options)) out.push_back(*uid);
    return out;
}

// The approval broker of a session with gated tools (none without), and
// its socket laid into the agent's view.
Result<std::unique_ptr<approval::Broker>> start_broker(Session& s, const Plan& plan,
                                                       const SessionOptions& options,
                                                       SysTime deadline, audit::AuditLog& audit,
                                                       approval::Webhook* webhook,
                                                       creds::TokenLease& tokens,
                                                       MountPlan& mounts) {
    if (plan.policy.gated_tools.empty()) return std::unique_ptr<approval::Broker>{};
    approval::BrokerConfig config;
    config.profile = &plan.profile;
    config.policy = &plan.policy;
    config.session_id = s.id;
    config.launcher_uid = options.launcher_uid.value_or(::getuid());
    config.launcher_accounts = launcher_accounts(options);
    config.agent_uid = plan.identity.uid;
    config.deadline = deadline;
    config.approvals_dir = options.approvals_dir;
    config.agent_dir = s.files_dir + "/approval";
    uint64_t cgroup_id = s.cgroup->id();
    netfilter::Netfilter& nf = *s.nf;
    approval::BrokerHooks hooks;
    hooks.open_gate = [&nf, cgroup_id](uint16_t gate, std::optional<uint32_t> uses,
                                       std::chrono::steady_clock::time_point closes_at) {
        return nf.open_gate(cgroup_id, gate, uses, closes_at);
    };
    hooks.close_gate = [&nf, cgroup_id](uint16_t gate) { return nf.close_gate(cgroup_id, gate); };
    hooks.gate_state = [&nf, cgroup_id](uint16_t gate) { return nf.gate_state(cgroup_id, gate); };
    hooks.open_credentials = [&tokens](const std::string& tool) { return tokens.open_tool(tool); };
    hooks.close_credentials = [&tokens](const std::string& tool) { tokens.close_tool(tool); };
    hooks.audit = [&audit, subject = s.subject](const std::string& event, const json& fields) {
        audit.emit(event, subject, fields);
    };
    if (webhook)
        hooks.notify = [webhook, subject = s.subject](const std::string& event, json body) {
            body["agentId"] = subject.agent_id;
            body["agentType"] = subject.agent_type;
            body["version"] = subject.version;
            webhook->notify(event, body);
        };
    if (auto st = creds::ensure_mount_point(approval::kAgentSocketDir); !st) return st.error();
    auto broker = approval::Broker::start(std::move(config), std::move(hooks));
    if (!broker) return broker.error();
    add_approval_view(mounts, s.files_dir + "/approval");
    return broker;
}

json start_event(const Plan& plan, pid_t pid, SysTime deadline) {
    auto start = policy::start_fields(plan.policy, pid);
    start["deadline"] = audit::format_time(deadline);
    start["user"] = plan.identity.name;
    start["uid"] = plan.identity.uid;
    start["filesystem"] = plan.landlock ? plan.landlock->summary : json(nullptr);
    start["limits"] = plan.limits.fields;
    return start;
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
    out["dns"] = dns_json(*plan);
    out["landlock"] = landlock::kernel_json();
    // What the kernel could enforce; only a filesystem section applies it.
    out["landlock"]["applied"] = plan->landlock.has_value();
    if (plan->landlock) out["filesystem"] = plan->landlock->summary;
    out["limits"] = plan->limits.fields;
    if (plan->identity.root()) out["warnings"].push_back(kRootAgentWarning);
    for (const auto& w : plan->warnings) out["warnings"].push_back(w);
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
    auto audit = audit::AuditLog::open(options.audit_log);
    if (!audit) return fail(audit.error());
    // From here a failure is also on the record: a session that could not
    // start (a full map, a missing kernel feature) is an audited decision.
    const auto& identity = plan->profile.identity;
    audit::Subject subject{identity.agent_id, identity.agent_type, identity.version,
                           options.session_id.empty() ? new_session_id() : options.session_id};
    auto refuse = [&](const Error& e) {
        (*audit)->emit("session.error", subject, {{"error", e.message()}});
        return fail(e);
    };

    // 2. What every session shares; then what a crashed supervisor left.
    auto host = open_host(options);
    if (!host) return refuse(host.error());
    reap_leftovers(*host, options.run_dir, options.approvals_dir, **audit);

    // 3. The session, before any process can run in it. The reporter
    // outlives the session, whose resolver reports to it until teardown.
    // Signals are blocked first: the resolver's thread inherits the mask.
    auto reporter =
        DenialReporter::create(subject, plan->profile, plan->policy, **audit, options.on_denial);
    if (!reporter) return refuse(reporter.error());
    auto signals = forwarded_signals();
    if (!signals) return refuse(signals.error());
    Session s;
    if (auto st = install_session(s, subject, *plan, *host, **audit, **reporter); !st)
        return refuse(st.error());
    if (auto st =
            apply_cgroup_limits(plan->limits, plan->cgroup2_mount, host->root, s.cgroup->path());
        !st)
        return refuse(st.error());
    auto denials = s.nf->watch(s.cgroup->id());
    if (!denials) return refuse(denials.error());

    // Tokens for the allowed tools, revoked when `tokens` goes.
    // Those of gated tools wait for a grant (approval/broker.h).
    std::set<std::string> deferred(plan->policy.gated_credentials.begin(),
                                   plan->policy.gated_credentials.end());
    auto tokens = creds::TokenLease::issue(plan->profile, **audit, s.subject, plan->client_secrets,
                                           plan->subject_token, deferred);
    if (!tokens) return refuse(in_layer("credentials", tokens.error()));
    (*tokens)->defer_static(plan->deliveries);
    plan->credentials_later = (*tokens)->delivers_later();
    for (auto& d : (*tokens)->deliveries()) plan->deliveries.push_back(std::move(d));

    // 4. The agent, contained from its first instruction, and its
    // deadline's timer armed before it starts.
    auto deadline = session_deadline(plan->profile, std::chrono::system_clock::now());
    auto timer = deadline_timer(deadline);
    if (!timer) return refuse(timer.error());
    TerminalGuard terminal;
    auto mounts = agent_mounts(s, options.run_dir);
    if (!mounts) return refuse(in_layer("mount namespace", mounts.error()));
    auto webhook = approval_webhook(*plan, **audit, s.subject);
    if (!webhook) return refuse(in_layer("approval", webhook.error()));
    auto broker =
        start_broker(s, *plan, options, deadline, **audit, webhook->get(), **tokens, *mounts);
    if (!broker) return refuse(in_layer("approval", broker.error()));
    auto credentials = credentials_view(*plan, *mounts);
    if (!credentials) return refuse(in_layer("credentials", credentials.error()));
    auto child = start_agent(s, *plan, options, *mounts, *credentials);
    if (!child) {
        (void)refuse(child.error());
        if (!is_exec_failure(child.error())) return kExitFailure;
        return child.error().err == ENOENT ? kExitNotFound : kExitNotExecutable;
    }
    (*audit)->emit("session.start", s.subject, start_event(*plan, child->pid, deadline));
    if (options.on_start)
        options.on_start({s.id, s.cgroup->path(), s.cgroup->id(), child->pid, plan->identity.name,
                          plan->identity.uid, deadline});
    auto notifier = syscall_notifier(*child, s.subject, **audit);
    if (!notifier) {
        (void)s.cgroup->kill_all();
        return refuse(notifier.error());
    }
    // Tokens that expire before the session are refreshed in its credentials directory.
    if (auto st = (*tokens)->watch(child->pid, plan->identity.uid, plan->identity.gid, deadline);
        !st) {
        (void)s.cgroup->kill_all();
        return refuse(in_layer("credentials", st.error()));
    }

    // 5. Until the agent exits or the deadline passes.
    auto ending = supervise(s, *child, deadline, timer->get(), **audit, denials->get(), **reporter,
                            signals->get(), notifier->get(), **tokens, broker->get());
    if (!ending) {
        (void)s.cgroup->kill_all();
        return refuse(ending.error());
    }

    // 6. The session ends with its agent: nothing it started outlives it,
    // and its resolver stops answering.
    if (auto st = s.cgroup->kill_all(); !st) log()->warn("{}", st.error().message());
    s.resolver.reset();
    if (*broker) (*broker)->end();
    (*tokens)->revoke_all();
    auto end = end_fields(ending->wait_status, started, ending->deadline ? "deadline" : "exit");
    end.update(traffic_fields(*s.nf, s.cgroup->id(), plan->policy.egress_budget));
    end["denialsSuppressed"] = (*reporter)->total_suppressed();
    if (*notifier) {
        (*notifier)->flush();
        end["syscallDenialsSuppressed"] = (*notifier)->total_suppressed();
    }
    (*audit)->emit("session.end", s.subject, end);

    // 7. What the agent did to the terminal ends with it; the last audit
    // lines get a bounded wait for a full or stopped stderr, which is then
    // the only place to say they were lost.
    terminal.restore();
    release_stdin_stdout();
    (void)(*audit)->flush(kAuditFlushTimeout);
    return ending->deadline ? kExitDeadline : exit_status_of(ending->wait_status);
}

}  // namespace cordon::launch
