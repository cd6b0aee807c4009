// SPDX-License-Identifier: Apache-2.0
#include "launch/init.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace cordon::launch {
namespace {

constexpr const char* kMemfdNoexec = "/proc/sys/vm/memfd_noexec";

sigset_t init_signals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : kForwardedSignals) sigaddset(&set, sig);
    sigaddset(&set, SIGCHLD);
    return set;
}

// Reaps every child that has exited; true once the agent is among them,
// its wait status in *agent_status.
bool reap_children(pid_t agent, int* agent_status) {
    bool agent_done = false;
    for (;;) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return agent_done;
        if (pid == agent) {
            *agent_status = status;
            agent_done = true;
        }
    }
}

}  // namespace

bool memfd_noexec_supported() {
    std::error_code ec;
    return std::filesystem::exists(kMemfdNoexec, ec);
}

int seal_memfd_exec() {
    // 2: memfd_create without MFD_NOEXEC_SEAL makes a sealed non-executable
    // memfd, and MFD_EXEC is refused (Documentation/admin-guide/sysctl/vm.rst).
    int fd = ::open(kMemfdNoexec, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = ::write(fd, "2", 1);
    int err = errno;
    ::close(fd);
    return n == 1 ? 0 : -err;
}

int block_init_signals() {
    sigset_t set = init_signals();
    return ::sigprocmask(SIG_BLOCK, &set, nullptr) == 0 ? 0 : -errno;
}

void unblock_signals() {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

void run_init(pid_t agent, int status_fd) {
    sigset_t set = init_signals();
    int agent_status = 0;
    for (;;) {
        siginfo_t info{};
        int sig = ::sigwaitinfo(&set, &info);
        if (sig < 0) continue;  // EINTR
        if (sig != SIGCHLD) {
            ::kill(agent, sig);
            continue;
        }
        if (reap_children(agent, &agent_status)) break;
    }
    (void)!::write(status_fd, &agent_status, sizeof agent_status);
    // Leaving ends the namespace: the kernel kills what the agent left.
    ::_exit(WIFEXITED(agent_status) ? WEXITSTATUS(agent_status) : 128 + WTERMSIG(agent_status));
}

}  // namespace cordon::launch
