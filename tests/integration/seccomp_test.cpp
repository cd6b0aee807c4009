// SPDX-License-Identifier: Apache-2.0
// The agent-default filter on the real kernel: a forked child installs the
// filter built from profiles/seccomp/, then tries one thing; the parent
// checks the errno it reports or the signal that killed it. The child has
// no user-notification listener, so the escape class fails with ENOSYS, as
// it does for an agent whose agent-run died; agent_run_seccomp_test.cpp
// checks the EPERM answer and the audit event of a live supervisor.
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "seccomp/notify.h"
#include "seccomp/seccomp.h"
#include "send_fd.h"

namespace cordon::seccomp {
namespace {

const std::string kDataDir = CORDON_SOURCE_DIR "/profiles/seccomp";
const std::string kHelpers = CORDON_HELPERS_DIR;

// What a notified syscall gets with nobody listening.
constexpr int kNoListener = ENOSYS;

const Program& default_filter() {
    static const Program prog = [] {
        auto p = build(profile::SyscallPolicy{}, kDataDir);
        if (!p) ADD_FAILURE() << p.error().message();
        return p ? std::move(p).value() : Program{};
    }();
    return prog;
}

// Forks; the child installs the default filter and exits with what `attempt`
// returns (an errno, 0 for success). Returns the raw wait status.
int run_filtered(const std::function<int()>& attempt) {
    const Program& prog = default_filter();
    pid_t pid = ::fork();
    if (pid == 0) {
        if (install(prog) != 0) _exit(200);
        _exit(attempt());
    }
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    return status;
}

// The errno `call` fails with under the filter; 0 when it succeeds.
int errno_of(const std::function<long()>& call) {
    int status = run_filtered([&] { return call() < 0 ? errno : 0; });
    EXPECT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int exec_filtered(const std::string& path, const char* arg = nullptr) {
    return run_filtered([&] {
        ::execl(path.c_str(), path.c_str(), arg, static_cast<char*>(nullptr));
        return 127;
    });
}

TEST(SeccompFilter, BuildsFromTheShippedData) {
    ASSERT_GT(default_filter().size(), 0u);
}

TEST(SeccompFilter, RefusesPtrace) {
    EXPECT_EQ(errno_of([] { return ::ptrace(PTRACE_TRACEME, 0, 0, 0); }), kNoListener);
}

TEST(SeccompFilter, RefusesBpf) {
    EXPECT_EQ(errno_of([] { return ::syscall(SYS_bpf, BPF_PROG_LOAD, nullptr, 0); }), kNoListener);
}

TEST(SeccompFilter, RefusesUserNamespace) {
    EXPECT_EQ(errno_of([] { return ::unshare(CLONE_NEWUSER); }), kNoListener);
}

TEST(SeccompFilter, RefusesSetns) {
    EXPECT_EQ(errno_of([] { return ::setns(0, CLONE_NEWNET); }), kNoListener);
}

TEST(SeccompFilter, RefusesCloneWithNewNamespace) {
    for (unsigned long flag : {CLONE_NEWNET, CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID}) {
        int err = errno_of([flag] {
            long rc = ::syscall(SYS_clone, flag | SIGCHLD, 0, 0, 0, 0);
            if (rc == 0) _exit(0);  // the filter failed: keep the clone out of the test
            return rc;
        });
        EXPECT_EQ(err, EPERM) << "flag " << std::hex << flag;
    }
}

TEST(SeccompFilter, AnswersClone3WithEnosys) {
    EXPECT_EQ(errno_of([] {
                  clone_args args{};
                  args.exit_signal = SIGCHLD;
                  long rc = ::syscall(SYS_clone3, &args, sizeof args);
                  if (rc == 0) _exit(0);
                  return rc;
              }),
              ENOSYS);
}

// An allowlist: what no group names looks absent, so that libc falls back.
TEST(SeccompFilter, UnlistedSyscallsAnswerEnosys) {
    // kcmp exists on this kernel and compares a process with itself.
    EXPECT_EQ(errno_of([] { return ::syscall(SYS_kcmp, ::getpid(), ::getpid(), 0, 0, 0); }),
              ENOSYS);
    // A number newer than libseccomp's table (mseal, 462 on x86_64 since
    // Linux 6.10) cannot be in the filter at all.
    EXPECT_EQ(errno_of([] { return ::syscall(462, 0, 0, 0); }), ENOSYS);
}

TEST(SeccompFilter, PlainForkAndThreadsStillWork) {
    int status = run_filtered([] {
        pid_t pid = ::fork();  // glibc: clone without namespace flags
        if (pid < 0) return 1;
        if (pid == 0) _exit(7);
        int st = 0;
        if (::waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 7) return 2;
        bool ran = false;
        std::thread t([&] { ran = true; });  // clone3 -> ENOSYS -> clone fallback
        t.join();
        return ran ? 0 : 3;
    });
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SeccompFilter, AnswersIoUringWithEnosys) {
    EXPECT_EQ(errno_of([] {
                  io_uring_params params{};
                  return ::syscall(SYS_io_uring_setup, 1, &params);
              }),
              ENOSYS);
}

TEST(SeccompFilter, RefusesPerfEventOpen) {
    EXPECT_EQ(errno_of([] {
                  perf_event_attr attr{};
                  attr.size = sizeof attr;
                  attr.type = PERF_TYPE_SOFTWARE;
                  attr.config = PERF_COUNT_SW_CPU_CLOCK;
                  return ::syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
              }),
              kNoListener);
}

TEST(SeccompFilter, RefusesKeyring) {
    EXPECT_EQ(errno_of([] {
                  return ::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
              }),
              kNoListener);
    EXPECT_EQ(errno_of([] {
                  return ::syscall(SYS_add_key, "user", "cordon", "x", 1, KEY_SPEC_PROCESS_KEYRING);
              }),
              kNoListener);
}

TEST(SeccompFilter, RefusesMount) {
    // A target that does not exist: unfiltered, this fails with ENOENT and
    // changes nothing on the host.
    EXPECT_EQ(errno_of([] { return ::mount("none", "/nonexistent-cordon", "tmpfs", 0, nullptr); }),
              kNoListener);
    EXPECT_EQ(errno_of([] { return ::syscall(SYS_fsopen, "tmpfs", 0); }), kNoListener);
}

TEST(SeccompFilter, RefusesPacketSockets) {
    EXPECT_EQ(errno_of([] { return ::socket(AF_PACKET, SOCK_RAW, 0); }), EAFNOSUPPORT);
    // The kernel reads the family as an int: garbage in the high half of
    // the register must not get past the rule.
    EXPECT_EQ(errno_of([] { return ::syscall(SYS_socket, (1UL << 32) | AF_PACKET, SOCK_RAW, 0); }),
              EAFNOSUPPORT);
}

TEST(SeccompFilter, AllowsOnlyRouteNetlink) {
    EXPECT_EQ(errno_of([] { return ::socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT); }), EPERM);
    EXPECT_EQ(errno_of([] { return ::socket(AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT); }),
              EPERM);
    // Garbage in the high half of the family: the 64-bit "ge 18" rule.
    EXPECT_EQ(errno_of([] {
                  return ::syscall(SYS_socket, (1UL << 32) | AF_NETLINK, SOCK_RAW, NETLINK_AUDIT);
              }),
              EAFNOSUPPORT);
    EXPECT_EQ(errno_of([] {
                  return ::syscall(SYS_socket, AF_NETLINK, SOCK_RAW, (1UL << 32) | NETLINK_ROUTE);
              }),
              EPERM);
    EXPECT_EQ(errno_of([] { return ::socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE); }), 0);
    EXPECT_EQ(errno_of([] { return ::socket(AF_INET, SOCK_STREAM, 0); }), 0);
    EXPECT_EQ(errno_of([] { return ::socket(AF_INET6, SOCK_DGRAM, 0); }), 0);
    EXPECT_EQ(errno_of([] { return ::socket(AF_UNIX, SOCK_STREAM, 0); }), 0);
}

TEST(SeccompFilter, PlainProgramsRun) {
    int status = exec_filtered("/bin/true");
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);

    if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 not installed";
    status = run_filtered([] {
        ::execl("/usr/bin/python3", "python3", "-c",
                "import socket, subprocess, threading;"
                "t = threading.Thread(target=lambda: None); t.start(); t.join();"
                "socket.getaddrinfo('localhost', 80);"
                "assert subprocess.run(['true']).returncode == 0;"
                "print(1)",
                static_cast<char*>(nullptr));
        return 127;
    });
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SeccompFilter, EscapeHelpersAreRefused) {
    const std::pair<const char*, int> kHelperErrnos[] = {
        {"sc_ptrace", kNoListener}, {"sc_userns", kNoListener}, {"sc_packet", EAFNOSUPPORT}};
    for (const auto& [helper, err] : kHelperErrnos) {
        int status = exec_filtered(kHelpers + "/" + helper);
        ASSERT_TRUE(WIFEXITED(status)) << helper;
        EXPECT_EQ(WEXITSTATUS(status), err) << helper;
    }
}

TEST(SeccompFilter, X32SyscallKillsTheProcess) {
#if !defined(__x86_64__)
    GTEST_SKIP() << "x32 is an x86_64 ABI";
#endif
    int status = run_filtered([] { return ::syscall(0x40000000L | SYS_getpid) < 0 ? errno : 0; });
    ASSERT_TRUE(WIFSIGNALED(status)) << "exited with " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);

    status = exec_filtered(kHelpers + "/sc_x32");
    ASSERT_TRUE(WIFSIGNALED(status)) << "exited with " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

TEST(SeccompFilter, Int80SyscallKillsTheProcess) {
#if !defined(__x86_64__)
    GTEST_SKIP() << "int 0x80 into the i386 ABI is an x86_64 concern";
#endif
    int status = exec_filtered(kHelpers + "/sc_int80");
    ASSERT_TRUE(WIFSIGNALED(status)) << "exited with " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

// The Notifier on its own: a child installs the filter with a listener and
// hands it over, as spawn() does; the test answers in agent-run's place.
TEST(SeccompNotifier, AnswersEpermAndReportsEachCall) {
    ASSERT_TRUE(default_filter().notifies());
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        int listener = -1;
        if (install(default_filter(), &listener) != 0 || listener < 0) _exit(200);
        if (cordon::testing::send_fd(pair[1], listener) != 0) _exit(201);
        ::close(listener);
        if (::ptrace(PTRACE_TRACEME, 0, 0, 0) == 0 || errno != EPERM) _exit(1);
        _exit(::unshare(CLONE_NEWUSER) == 0 ? 0 : errno);
    }
    ::close(pair[1]);
    UniqueFd listener(cordon::testing::receive_fd(pair[0]));
    ::close(pair[0]);
    ASSERT_TRUE(listener.valid());
    std::vector<std::pair<std::string, nlohmann::json>> events;
    auto n = Notifier::create(
        std::move(listener),
        [&](const std::string& e, const nlohmann::json& f) { events.emplace_back(e, f); });
    ASSERT_TRUE(n) << n.error().message();
    for (int i = 0; i < 500; ++i) {  // until no process of the filter is left
        pollfd p{n->fd(), POLLIN, 0};
        if (::poll(&p, 1, 10) < 0) break;
        if (!n->on_ready((p.revents & POLLHUP) ? uint32_t{EPOLLHUP} : 0u)) break;
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), EPERM);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].first, "syscall.deny");
    EXPECT_EQ(events[0].second["syscall"], "ptrace");
    EXPECT_EQ(events[0].second["nr"], SYS_ptrace);
    EXPECT_EQ(events[0].second["pid"], pid);
    EXPECT_EQ(events[1].second["syscall"], "unshare");
    EXPECT_EQ(n->total_suppressed(), 0u);
}

TEST(SeccompFilter, ProfileDenyAddsARefusal) {
    profile::SyscallPolicy policy;
    policy.deny = {"getcwd"};
    auto prog = build(policy, kDataDir);
    ASSERT_TRUE(prog) << prog.error().message();
    pid_t pid = ::fork();
    if (pid == 0) {
        if (install(*prog) != 0) _exit(200);
        char buf[256];
        _exit(::syscall(SYS_getcwd, buf, sizeof buf) < 0 ? errno : 0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), EPERM);
}

}  // namespace
}  // namespace cordon::seccomp
