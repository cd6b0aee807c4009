// SPDX-License-Identifier: Apache-2.0
#include "launch/spawn.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <initializer_list>
#include <iterator>

#include "launch/init.h"

#include "landlock/landlock.h"

#include "cordon/fd_passing.h"

namespace cordon::launch {
namespace {

// argv and envp as the C arrays execve wants, built before clone3.
struct CArgs {
    explicit CArgs(const std::vector<std::string>& strings) {
        for (const auto& s : strings) ptrs.push_back(const_cast<char*>(s.c_str()));
        ptrs.push_back(nullptr);
    }
    std::vector<char*> ptrs;
};

// The child's steps, named in the error when one fails.
enum class Stage : int {
    session,
    descriptors,
    core_limit,
    mounts,
    working_dir,
    credentials,
    memfd_noexec,
    resource_limits,
    identity,
    init_hardening,
    signals,
    fork_agent,
    no_new_privs,
    landlock,
    seccomp,
    listener,
    exec
};

constexpr const char* kStageNames[] = {"setsid",
                                       "closing inherited descriptors",
                                       "disabling core dumps",
                                       "mount namespace",
                                       "changing to the working directory",
                                       "writing the credentials directory",
                                       "setting vm.memfd_noexec in the pid namespace",
                                       "setting resource limits",
                                       "switching user and dropping capabilities",
                                       "making the session's init non-dumpable",
                                       "blocking the signals the init forwards",
                                       "forking the agent from the session's init",
                                       "no_new_privs",
                                       "applying the Landlock ruleset",
                                       "installing the seccomp filter",
                                       "passing the seccomp listener to agent-run",
                                       "execve"};

static_assert(std::size(kStageNames) == static_cast<size_t>(Stage::exec) + 1, "one name per stage");

struct ChildFailure {
    Stage stage;
    int err;
};

// Reports the failed stage and errno through the pipe and exits. Async-signal-safe.
// Whether `path` is the working directory the session was planned with.
bool is_directory(const char* path, const SpawnSpec& spec) {
    struct stat st {};
    return ::stat(path, &st) == 0 && st.st_dev == spec.working_dir_dev &&
           st.st_ino == spec.working_dir_ino;
}

[[noreturn]] void child_fail(int report_fd, Stage stage, int err) {
    ChildFailure f{stage, err};
    (void)!::write(report_fd, &f, sizeof f);
    ::_exit(kExitNotExecutable);
}

}  // namespace

// The files execvpe tries for a command without a '/', in PATH order (its
// own PATH, as glibc reads it, with glibc's default when unset).
std::vector<std::string> path_candidates(const std::string& command) {
    std::vector<std::string> out;
    if (command.find('/') != std::string::npos) return out;
    const char* path = ::getenv("PATH");
    std::string dirs = path ? path : "/bin:/usr/bin";
    for (size_t start = 0;;) {
        size_t end = dirs.find(':', start);
        std::string dir = dirs.substr(start, end == std::string::npos ? end : end - start);
        out.push_back((dir.empty() ? "." : dir) + "/" + command);
        if (end == std::string::npos) return out;
        start = end + 1;
    }
}

namespace {

// True when the agent can see a regular file among the candidates.
// Async-signal-safe.
bool sees_a_file(char* const* candidates) {
    struct stat st {};
    for (; *candidates; ++candidates)
        if (::stat(*candidates, &st) == 0 && S_ISREG(st.st_mode)) return true;
    return false;
}

// Closes every descriptor from 3 up but those in `keep` (any order; -1
// entries are ignored). Async-signal-safe; 0, or -1 with errno set.
int close_all_but(std::initializer_list<int> keep) {
    int sorted[8];
    size_t n = 0;
    for (int fd : keep) {
        if (fd < 3) continue;
        if (n == std::size(sorted)) return errno = EINVAL, -1;
        size_t i = n++;
        for (; i > 0 && sorted[i - 1] > fd; --i) sorted[i] = sorted[i - 1];
        sorted[i] = fd;
    }
    unsigned int from = 3;
    for (size_t i = 0; i < n; ++i) {
        int fd = sorted[i];
        if (fd < static_cast<int>(from)) continue;
        if (fd > static_cast<int>(from) && ::syscall(SYS_close_range, from, fd - 1U, 0U) != 0)
            return -1;
        from = fd + 1U;
    }
    return ::syscall(SYS_close_range, from, UINT_MAX, 0U) != 0 ? -1 : 0;
}

// Passes the filter's listener to agent-run over `sock` (SCM_RIGHTS), then
// closes both: the agent keeps neither. Async-signal-safe; 0 or -errno.
int send_listener(int sock, int listener) {
    int rc = send_fd(sock, listener, MSG_NOSIGNAL) == 0 ? 0 : -errno;
    ::close(listener);
    ::close(sock);
    return rc;
}

// The listener the child sent before execve.
Result<UniqueFd> receive_listener(int sock) {
    int fd = receive_fd(sock, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (fd < 0) return errno_error("cannot receive the seccomp listener from the agent's process");
    return UniqueFd(fd);
}

// The agent, pid 2 of the session: the last steps before execve. Only
// async-signal-safe calls.
[[noreturn]] void agent_main(const SpawnSpec& spec, char* const* argv, char* const* envp,
                             char* const* candidates, int report_fd, int listener_sock) {
    unblock_signals();

    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        child_fail(report_fd, Stage::no_new_privs, errno);

    if (spec.landlock)
        if (int rc = landlock::restrict_self(spec.landlock->fd.get()); rc != 0)
            child_fail(report_fd, Stage::landlock, -rc);

    // Last before execve, so that the filter judges the agent, not us. The
    // filter allows sendmsg and close, which hand its listener over.
    int listener = -1;
    if (spec.filter)
        if (int rc = seccomp::install(*spec.filter, &listener); rc != 0)
            child_fail(report_fd, Stage::seccomp, -rc);
    if (listener >= 0)
        if (int rc = send_listener(listener_sock, listener); rc != 0)
            child_fail(report_fd, Stage::listener, -rc);

    ::execvpe(argv[0], argv, envp);
    // execvpe says EACCES when any PATH directory is closed to the agent,
    // whether the command is there or not: with no file the agent can see,
    // the command was not found (127), as a shell would say.
    int err = errno;
    if (err == EACCES && candidates[0] && !sees_a_file(candidates)) err = ENOENT;
    child_fail(report_fd, Stage::exec, err);
}

// fork() by raw clone: glibc's fork takes locks that, in a clone3 child of
// a multi-threaded process, another thread may have held at clone time.
pid_t raw_fork() {
    clone_args args{};
    args.exit_signal = SIGCHLD;
    return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
}

// The session's pid 1 (launch/init.h), in order. Only async-signal-safe
// calls from here on.
[[noreturn]] void child_main(const SpawnSpec& spec, char* const* argv, char* const* envp,
                             char* const* candidates, int report_fd, int status_fd,
                             int listener_sock) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // Ignored signals stay ignored across execve: the agent starts with
    // every disposition at its default, whatever agent-run ignores.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; ++sig) (void)::sigaction(sig, &dfl, nullptr);

    // Its own session: no controlling terminal to push input into
    // (TIOCSTI), and the caller's terminal signals reach it only through
    // agent-run, which forwards them.
    if (::setsid() < 0) child_fail(report_fd, Stage::session, errno);

    // Only stdio crosses execve, and nothing else of agent-run's stays open
    // while the child prepares: the session's lock file least of all, which
    // a child stuck before execve would otherwise keep looking alive. The
    // report pipe closes on the agent's execve; the status pipe stays with
    // the init.
    int landlock_fd = spec.landlock ? spec.landlock->fd.get() : -1;
    if (close_all_but({report_fd, status_fd, listener_sock, landlock_fd}) != 0)
        child_fail(report_fd, Stage::descriptors, errno);

    // No core dump can carry the delivered credentials out of the session.
    rlimit no_core{0, 0};
    if (::setrlimit(RLIMIT_CORE, &no_core) != 0) child_fail(report_fd, Stage::core_limit, errno);

    // The filesystem view (launch/view.h), /proc the namespace's own, and
    // vm.memfd_noexec: all need CAP_SYS_ADMIN, before the identity drops it.
    if (spec.mounts) {
        int failed_step = -1;
        if (int rc = apply(*spec.mounts, &failed_step); rc != 0)
            child_fail(report_fd, Stage::mounts, -rc);
    }
    if (spec.credentials)
        if (int rc = creds::write_files(*spec.credentials); rc != 0)
            child_fail(report_fd, Stage::credentials, -rc);
    if (spec.landlock)
        if (int rc = landlock::add_after_mounts(*spec.landlock); rc != 0)
            child_fail(report_fd, Stage::landlock, -rc);
    // The working directory by its path in the session's view, not the
    // host's directory the view may hide.
    if (spec.working_dir && ::chdir(spec.working_dir) != 0)
        child_fail(report_fd, Stage::working_dir, errno);
    if (spec.working_dir && spec.working_dir_ino != 0 && !is_directory(".", spec))
        child_fail(report_fd, Stage::working_dir, EXDEV);
    if (spec.seal_memfd_exec)
        if (int rc = seal_memfd_exec(); rc != 0) child_fail(report_fd, Stage::memfd_noexec, -rc);
    if (spec.rlimits)
        if (int rc = apply_rlimits(*spec.rlimits); rc != 0)
            child_fail(report_fd, Stage::resource_limits, -rc);

    // The init becomes the agent's account too: it can signal the agent
    // without CAP_KILL, and holds no capability an agent could borrow.
    if (spec.identity)
        if (int rc = become(*spec.identity); rc != 0) child_fail(report_fd, Stage::identity, -rc);
    // After become(): a change of uid resets dumpability (fs.suid_dumpable).
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        child_fail(report_fd, Stage::init_hardening, errno);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        child_fail(report_fd, Stage::no_new_privs, errno);
    if (int rc = block_init_signals(); rc != 0) child_fail(report_fd, Stage::signals, -rc);

    pid_t agent = raw_fork();
    if (agent < 0) child_fail(report_fd, Stage::fork_agent, errno);
    if (agent == 0) {
        ::close(status_fd);
        agent_main(spec, argv, envp, candidates, report_fd, listener_sock);
    }
    // The report pipe reaches EOF when the agent execs: only its copy may stay.
    ::close(report_fd);
    if (listener_sock >= 0) ::close(listener_sock);
    run_init(agent, status_fd);
}

// execve's failure, naming the account it ran as: a command root can run
// may be out of the agent's reach.
Error exec_error(const SpawnSpec& spec) {
    std::string what = "cannot execute " + spec.argv[0];
    if (spec.identity)
        what += " as " + spec.identity->name +
                (spec.identity->name == std::to_string(spec.identity->uid)
                     ? ""
                     : " (uid " + std::to_string(spec.identity->uid) + ")");
    if (errno == ENOENT && spec.argv[0].find('/') == std::string::npos)
        return errno_error(what, "not found on PATH; give its full path");
    // execve fails so when setresuid found the account over its RLIMIT_NPROC.
    if (errno == EAGAIN)
        return errno_error(what,
                           "the account already runs as many processes as limits.pids allows "
                           "(without a pids controller, RLIMIT_NPROC counts the account's "
                           "processes on the whole host); raise limits.pids or give the session "
                           "an account of its own");
    if (errno == EACCES)
        return errno_error(what,
                           "the account needs execute permission on the file and search "
                           "permission on every directory above it; or set session.user");
    return errno_error(what);
}

// A step before execve failed (errno is its error).
Error prepare_error(Stage stage) {
    std::string what = std::string("cannot prepare the agent: ") +
                       kStageNames[static_cast<int>(stage)] + " failed";
    if (stage == Stage::fork_agent && errno == EAGAIN)
        return errno_error(what,
                           "nothing was started; the account is at its limits.pids (without a "
                           "pids controller, RLIMIT_NPROC counts its processes on the whole "
                           "host): raise limits.pids or give the session an account of its own");
    if (stage == Stage::working_dir && errno == EXDEV)
        return plain_error(what +
                               ": its path now leads to another directory than the one the "
                               "session was started in",
                           "nothing was started; the path was changed while the session started "
                           "(renamed, or replaced by a symbolic link): start it again");
    return errno_error(what, "nothing was started");
}

}  // namespace

Result<Child> spawn(const SpawnSpec& spec) {
    if (spec.argv.empty()) return plain_error("no command to run", "give it after --");
    CArgs argv(spec.argv);
    CArgs envp(spec.env);
    auto candidate_strings = path_candidates(spec.argv[0]);
    CArgs candidates(candidate_strings);

    int report[2], status[2];
    if (::pipe2(report, O_CLOEXEC) != 0) return errno_error("cannot create a pipe");
    UniqueFd report_read(report[0]), report_write(report[1]);
    if (::pipe2(status, O_CLOEXEC) != 0) return errno_error("cannot create a pipe");
    UniqueFd status_read(status[0]), status_write(status[1]);
    // The child sends the filter's user-notification listener over this.
    int listener_pair[2] = {-1, -1};
    bool notifies = spec.filter && spec.filter->notifies();
    if (notifies && ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, listener_pair) != 0)
        return errno_error("cannot create a socket pair for the seccomp listener");
    UniqueFd listener_read(listener_pair[0]), listener_write(listener_pair[1]);

    int pidfd = -1;
    clone_args args{};
    // Its own pid namespace: the session sees, and can signal, only its own
    // processes. Its own IPC namespace: SysV shared memory, semaphores and
    // message queues neither reach the host's nor outlive the session (the
    // kernel frees them with the namespace; the host's are kept until
    // removed).
    args.flags = CLONE_PIDFD | CLONE_INTO_CGROUP | CLONE_NEWPID | CLONE_NEWIPC;
    args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(spec.cgroup_fd);

    long pid = ::syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0)
        return errno_error("cannot start the agent in its cgroup (clone3 CLONE_INTO_CGROUP)",
                           "Cordon needs Linux 5.7 or later with cgroup v2");
    if (pid == 0)
        child_main(spec, argv.ptrs.data(), envp.ptrs.data(), candidates.ptrs.data(),
                   report_write.get(), status_write.get(), listener_write.get());

    Child child{static_cast<pid_t>(pid), UniqueFd(pidfd), std::move(status_read), {}};
    report_write.reset();
    status_write.reset();
    listener_write.reset();
    ChildFailure failure{};
    ssize_t n = ::read(report_read.get(), &failure, sizeof failure);
    if (n != sizeof failure) {  // the pipe closed on execve: running
        if (!notifies) return child;
        auto listener = receive_listener(listener_read.get());
        if (!listener) {
            ::syscall(SYS_pidfd_send_signal, child.pidfd.get(), SIGKILL, nullptr, 0);
            (void)reap(child);
            return listener.error();
        }
        child.listener = std::move(*listener);
        return child;
    }

    (void)reap(child);
    errno = failure.err;
    if (failure.stage == Stage::exec) return exec_error(spec);
    return prepare_error(failure.stage);
}

Status refuse_inet_stdio() {
    static constexpr const char* kNames[] = {"stdin", "stdout", "stderr"};
    static constexpr const char* kExamples[] = {"`... | agent-run` or `< /dev/null`",
                                                "`agent-run ... | ...`",
                                                "`agent-run ... 2>&1 | ...` or `2> FILE`"};
    for (int fd = 0; fd <= 2; ++fd) {
        int domain = 0;
        socklen_t len = sizeof domain;
        if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) {
            if (errno == ENOTSOCK || errno == EBADF) continue;  // not a socket, or closed
            return errno_error(std::string("cannot tell what kind of socket ") + kNames[fd] +
                               " (fd " + std::to_string(fd) + ") is");
        }
        if (domain != AF_INET && domain != AF_INET6) continue;
        return plain_error(
            std::string("refusing to start: ") + kNames[fd] + " (fd " + std::to_string(fd) +
                ") is an " + (domain == AF_INET ? "AF_INET" : "AF_INET6") +
                " socket made outside the session, which Cordon's network filter cannot see",
            std::string("give agent-run a pipe, a file or a Unix socket as ") + kNames[fd] +
                " instead, e.g. " + kExamples[fd]);
    }
    return ok_status();
}

bool is_exec_failure(const Error& e) {
    return e.what.rfind("cannot execute ", 0) == 0;
}

Result<int> reap(const Child& child) {
    siginfo_t info{};
    if (::waitid(P_PIDFD, child.pidfd.get(), &info, WEXITED) != 0)
        return errno_error("cannot wait for the agent");
    int agent_status = 0;
    if (child.status.valid() &&
        ::read(child.status.get(), &agent_status, sizeof agent_status) == sizeof agent_status)
        return agent_status;
    if (info.si_code == CLD_EXITED) return W_EXITCODE(info.si_status, 0);
    return info.si_status & 0x7f;  // killed or dumped: the signal number
}

}  // namespace cordon::launch
