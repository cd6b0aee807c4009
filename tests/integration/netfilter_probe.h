// SPDX-License-Identifier: Apache-2.0
// What a netfilter test's agent does: a forked child that enters a network
// namespace of its own (only lo up, so nothing leaves the machine even if
// the filter under test is broken), opens its listeners, moves itself into
// a session cgroup and makes one attempt. Its exit status is the errno the
// kernel answered, 0 for success.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <type_traits>
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

// Sends one byte to `to` with one control message (level, type, data).
inline int sendmsg_with_cmsg(int fd, const SockAddr& to, int level, int type,
                             const std::vector<uint8_t>& data) {
    char payload = 'x';
    iovec iov{&payload, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(256)] = {};
    if (data.size() > 256) return EINVAL;
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr*>(to.get());
    msg.msg_namelen = to.len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(data.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(data.size());
    std::memcpy(CMSG_DATA(c), data.data(), data.size());
    return errno_or_zero(sendmsg(fd, &msg, 0));
}

inline int set_option(int fd, int level, int name, const std::vector<uint8_t>& value) {
    return errno_or_zero(setsockopt(fd, level, name, value.data(), value.size()));
}

// An IPv6 segment routing header (RFC 8754, routing type 4) with two
// segments: first_segment, where the packet goes first, then the final
// destination, which the kernel writes into segments[0] from the address
// the packet is sent to (ipv6_push_rthdr4). Passes seg6_validate_srh.
inline std::vector<uint8_t> segment_routing_header(const std::string& first_segment) {
    std::vector<uint8_t> h(8 + 2 * 16, 0);
    h[1] = 4;  // hdrlen: 8-byte units after the first 8
    h[2] = 4;  // routing type 4: segment routing
    h[3] = 1;  // segments left: index of the segment the packet goes to now
    h[4] = 1;  // last entry
    inet_pton(AF_INET6, first_segment.c_str(), &h[8 + 16]);
    return h;
}

// An IPv6 options header (hop-by-hop or destination) holding only padding.
inline std::vector<uint8_t> padding_options_header() {
    return {0, 0, 1 /* PadN */, 4, 0, 0, 0, 0};
}

// IPv4 options: a loose source route whose first hop is first_hop
// (ip_options_compile moves it to the header's destination).
inline std::vector<uint8_t> loose_source_route(const std::string& first_hop) {
    std::vector<uint8_t> o = {1 /* NOP */, 131 /* LSRR */, 7, 4, 0, 0, 0, 0};
    inet_pton(AF_INET, first_hop.c_str(), &o[4]);
    return o;
}

// A struct the probe writes and the test reads after the probe exits: an
// anonymous shared mapping, which fork does not copy.
template <typename T>
class Shared {
    static_assert(std::is_trivially_destructible_v<T>);

  public:
    Shared() {
        void* p =
            mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) ptr_ = new (p) T{};
    }
    ~Shared() {
        if (ptr_) munmap(ptr_, sizeof(T));
    }
    Shared(const Shared&) = delete;
    Shared& operator=(const Shared&) = delete;
    T* operator->() const { return ptr_; }
    T& operator*() const { return *ptr_; }
    explicit operator bool() const { return ptr_ != nullptr; }

  private:
    T* ptr_ = nullptr;
};

// Adds an address to lo in the caller's network namespace (rtnetlink
// RTM_NEWADDR, no duplicate address detection), so that a probe has a
// stand-in for a host outside the machine.
inline bool add_lo_address(const std::string& text, uint8_t prefix_len) {
    SockAddr a = sockaddr_of(text, 0);
    const void* bytes =
        a.family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr)
            : static_cast<const void*>(
                  &reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr);
    size_t len = a.family == AF_INET ? 4 : 16;
    struct {
        nlmsghdr nh;
        ifaddrmsg ifa;
        char attrs[2 * RTA_SPACE(16)];
    } req{};
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
    req.nh.nlmsg_type = RTM_NEWADDR;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    req.ifa.ifa_family = a.family;
    req.ifa.ifa_prefixlen = prefix_len;
    req.ifa.ifa_flags = IFA_F_NODAD;
    req.ifa.ifa_index = if_nametoindex("lo");
    for (unsigned short type : {IFA_LOCAL, IFA_ADDRESS}) {
        auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) +
                                              NLMSG_ALIGN(req.nh.nlmsg_len));
        rta->rta_type = type;
        rta->rta_len = RTA_LENGTH(len);
        std::memcpy(RTA_DATA(rta), bytes, len);
        req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
    }
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return false;
    bool ok = send(fd, &req, req.nh.nlmsg_len, 0) == static_cast<ssize_t>(req.nh.nlmsg_len);
    char reply[512];
    ssize_t n = ok ? recv(fd, reply, sizeof(reply), 0) : -1;
    close(fd);
    auto* nh = reinterpret_cast<nlmsghdr*>(reply);
    if (n < static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr))) || nh->nlmsg_type != NLMSG_ERROR)
        return false;
    return static_cast<nlmsgerr*>(NLMSG_DATA(nh))->error == 0;
}

// Writes a sysctl; those under /proc/sys/net belong to the writer's network namespace.
inline bool write_sysctl(const std::string& path, const std::string& value) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    close(fd);
    return ok;
}

// Watches lo from below IP (AF_PACKET): what a host behind lo would see.
// Open it before joining the session cgroup.
class Sniffer {
  public:
    bool open() {
        fd_ = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
        if (fd_ < 0) return false;
        sockaddr_ll sll{};
        sll.sll_family = AF_PACKET;
        sll.sll_protocol = htons(ETH_P_ALL);
        sll.sll_ifindex = if_nametoindex("lo");
        return bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) == 0;
    }
    ~Sniffer() {
        if (fd_ >= 0) close(fd_);
    }

    // IP packets sent on lo to dest (as ip() gives it) since the last call,
    // each counted once; waits wait_ms for stragglers.
    int count_to(const profile::Ip6& dest, int wait_ms = 200) {
        int count = 0;
        pollfd p{fd_, POLLIN, 0};
        while (poll(&p, 1, wait_ms) > 0) {
            uint8_t buf[256];
            sockaddr_ll from{};
            socklen_t len = sizeof(from);
            ssize_t n = recvfrom(fd_, buf, sizeof(buf), MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&from), &len);
            if (n <= 0) break;
            if (from.sll_pkttype != PACKET_OUTGOING) continue;  // lo shows each packet twice
            profile::Ip6 to{};
            if ((buf[0] >> 4) == 4 && n >= 20) {
                to[10] = to[11] = 0xff;
                std::memcpy(&to[12], &buf[16], 4);
            } else if ((buf[0] >> 4) == 6 && n >= 40) {
                std::memcpy(to.data(), &buf[24], 16);
            }
            if (to == dest) count++;
        }
        return count;
    }

  private:
    int fd_ = -1;
};

// Waits up to timeout_ms for fd to be ready for events.
inline bool wait_for(int fd, short events, int timeout_ms) {
    pollfd p{fd, events, 0};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & events);
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
