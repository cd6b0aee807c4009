// SPDX-License-Identifier: Apache-2.0
// What a netfilter test's agent does: a forked child that enters a network
// namespace of its own (only lo up, so nothing leaves the machine even if
// the filter under test is broken), opens its listeners, moves itself into
// a session cgroup and makes one attempt. Its exit status is the errno the
// kernel answered, 0 for success.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "profile/profile.h"

namespace cordon::testing {

// The name probes run under, as events report it.
inline constexpr const char* kProbeComm = "nf-probe";

// "127.0.0.1" or "::1" in the 16-byte form the maps use.
inline profile::Ip6 ip(const std::string& text) {
    profile::Ip6 out{};
    in_addr v4;
    if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
        out[10] = out[11] = 0xff;
        std::memcpy(&out[12], &v4, 4);
    } else if (inet_pton(AF_INET6, text.c_str(), out.data()) != 1) {
        out.fill(0xee);  // makes the test fail visibly
    }
    return out;
}

struct SockAddr {
    sockaddr_storage storage{};
    socklen_t len = 0;
    int family = 0;
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// An IPv4 text gives sockaddr_in, anything else sockaddr_in6 (so
// "::ffff:127.0.0.1" is a v4-mapped address on an IPv6 socket).
inline SockAddr sockaddr_of(const std::string& host, uint16_t port) {
    SockAddr a;
    auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        a.len = sizeof(sockaddr_in);
        a.family = AF_INET;
        return a;
    }
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
    a.family = AF_INET6;
    return a;
}

inline int errno_or_zero(int rc) {
    return rc < 0 ? errno : 0;
}

// The attempts a probe can make; each returns 0 or the errno.
inline int tcp_connect(const std::string& host, uint16_t port) {
    SockAddr a = sockaddr_of(host, port);
    int fd = socket(a.family, SOCK_STREAM, 0);
    if (fd < 0) return errno;
    int rc = errno_or_zero(connect(fd, a.get(), a.len));
    close(fd);
    return rc;
}

inline int udp_sendto(const std::string& host, uint16_t port) {
    SockAddr a = sockaddr_of(host, port);
    int fd = socket(a.family, SOCK_DGRAM, 0);
    if (fd < 0) return errno;
    int rc = errno_or_zero(sendto(fd, "x", 1, 0, a.get(), a.len));
    close(fd);
    return rc;
}

inline int udp_connect(const std::string& host, uint16_t port) {
    SockAddr a = sockaddr_of(host, port);
    int fd = socket(a.family, SOCK_DGRAM, 0);
    if (fd < 0) return errno;
    int rc = errno_or_zero(connect(fd, a.get(), a.len));
    close(fd);
    return rc;
}

// TCP Fast Open connects from sendto(), not connect().
inline int tcp_fastopen(const std::string& host, uint16_t port) {
    SockAddr a = sockaddr_of(host, port);
    int fd = socket(a.family, SOCK_STREAM, 0);
    if (fd < 0) return errno;
    int rc = errno_or_zero(sendto(fd, "x", 1, MSG_FASTOPEN, a.get(), a.len));
    close(fd);
    return rc;
}

inline int open_socket(int family, int type, int protocol) {
    int fd = socket(family, type, protocol);
    if (fd < 0) return errno;
    close(fd);
    return 0;
}

struct Listener {
    std::string host;
    uint16_t port;
    int type = SOCK_STREAM;
};

namespace detail {

inline bool bring_lo_up() {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return false;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool ok = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags |= IFF_UP;
    ok = ok && ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
    close(fd);
    return ok;
}

inline bool listen_on(const Listener& l) {
    SockAddr a = sockaddr_of(l.host, l.port);
    int fd = socket(a.family, l.type, 0);
    if (fd < 0) return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a.get(), a.len) != 0) return false;
    return l.type != SOCK_STREAM || listen(fd, 16) == 0;  // left open until exit
}

inline bool join_cgroup(const std::string& dir) {
    int fd = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    std::string pid = std::to_string(getpid());
    bool ok = write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
    close(fd);
    return ok;
}

}  // namespace detail

// Exit statuses of a probe that never got to its attempt.
inline constexpr int kProbeSetupFailed = 250;
inline constexpr int kProbeCrashed = 251;

struct ProbeResult {
    pid_t pid = 0;
    int status = kProbeCrashed;  // the errno, 0 for success
};

// Forks a probe: own netns with lo up, listeners, `before` (outside the
// cgroup, e.g. to create a socket), join cgroup_dir, then `attempt`.
inline ProbeResult run_probe(const std::string& cgroup_dir, const std::vector<Listener>& listeners,
                             const std::function<int()>& attempt,
                             const std::function<void()>& before = {}) {
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_NAME, kProbeComm);
        if (unshare(CLONE_NEWNET) != 0 || !detail::bring_lo_up()) _exit(kProbeSetupFailed);
        for (const auto& l : listeners)
            if (!detail::listen_on(l)) _exit(kProbeSetupFailed);
        if (before) before();
        if (!detail::join_cgroup(cgroup_dir)) _exit(kProbeSetupFailed);
        _exit(attempt());
    }
    ProbeResult r;
    r.pid = pid;
    int wstatus = 0;
    if (pid > 0 && waitpid(pid, &wstatus, 0) == pid && WIFEXITED(wstatus))
        r.status = WEXITSTATUS(wstatus);
    return r;
}

}  // namespace cordon::testing
