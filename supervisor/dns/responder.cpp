// SPDX-License-Identifier: Apache-2.0
// The session's resolver: UDP and TCP on 127.53.x.y:53, one thread, one
// query at a time. Each query ends one of four ways: refused (a name no
// allowed tool lists: audited, never forwarded), empty (an allowed name,
// a type other than A or AAAA), answered (upstream's answer, its public
// addresses learned), or SERVFAIL (upstream unreachable, or the kernel's
// rules could not take the addresses).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "audit/rate_limit.h"
#include "cordon/fd.h"
#include "cordon/log.h"
#include "dns/dns.h"
#include "dns/message.h"

namespace cordon::dns {
namespace {

using detail::Packet;
using nlohmann::json;

constexpr size_t kUdpLimit = 512;    // RFC 1035 section 4.2.1, without EDNS
constexpr size_t kTcpLimit = 65535;  // RFC 7766: a two-byte length prefix
// A TCP client has this long, in all, for its queries: one that sends slowly
// must not hold the resolver (and with it the expiry of learned addresses).
constexpr std::chrono::milliseconds kTcpConnectionTime{1500};
constexpr int kTcpQueriesMax = 16;  // per connection (glibc sends A and AAAA on one)
constexpr int kBindAttempts = 64;

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("dns");
    return logger;
}

// An address of 127.53.0.0/16, avoiding .0 and .255 in the last byte.
in_addr candidate(uint16_t n) {
    uint8_t third = static_cast<uint8_t>(n >> 8), fourth = static_cast<uint8_t>(n);
    if (fourth == 0 || fourth == 255) fourth = 1;
    in_addr a{};
    a.s_addr = htonl((127u << 24) | (53u << 16) | (uint32_t(third) << 8) | fourth);
    return a;
}

Result<UniqueFd> bound_socket(int type, in_addr addr) {
    UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return errno_error("cannot create the session resolver's socket");
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(53);
    sa.sin_addr = addr;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &addr, text, sizeof text);
        return errno_error(std::string("cannot bind the session resolver to ") + text + ":53");
    }
    if (type == SOCK_STREAM && ::listen(fd.get(), 16) != 0)
        return errno_error("cannot listen on the session resolver's TCP socket");
    return fd;
}

struct Sockets {
    UniqueFd udp, tcp;
    in_addr addr{};
};

// UDP and TCP on the same free address, trying others while one is taken.
Result<Sockets> bind_free_address(uint16_t hint) {
    uint16_t n = hint ? hint : static_cast<uint16_t>(std::random_device{}());
    for (int attempt = 0; attempt < kBindAttempts; ++attempt, n += 7919) {
        Sockets s;
        s.addr = candidate(n);
        auto udp = bound_socket(SOCK_DGRAM, s.addr);
        if (!udp && udp.error().err == EADDRINUSE) continue;
        if (!udp) return udp.error();
        auto tcp = bound_socket(SOCK_STREAM, s.addr);
        if (!tcp && tcp.error().err == EADDRINUSE) continue;
        if (!tcp) return tcp.error();
        s.udp = std::move(*udp);
        s.tcp = std::move(*tcp);
        return s;
    }
    return plain_error("no free address in 127.53.0.0/16 for the session resolver",
                       "too many sessions on this host, or lo is down");
}

using Deadline = std::chrono::steady_clock::time_point;

// Waits until fd is ready for events, or the deadline passes (false).
bool wait_ready(int fd, short events, Deadline deadline) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) == 1 && (p.revents & events);
}

// Reads exactly len bytes before the deadline.
bool read_exact(int fd, uint8_t* buf, size_t len, Deadline deadline) {
    while (len > 0) {
        if (!wait_ready(fd, POLLIN, deadline)) return false;
        ssize_t n = ::recv(fd, buf, len, MSG_DONTWAIT);
        if (n <= 0) return false;
        buf += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

bool write_all(int fd, const uint8_t* buf, size_t len, Deadline deadline) {
    while (len > 0) {
        if (!wait_ready(fd, POLLOUT, deadline)) return false;
        ssize_t n = ::send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) return false;
        buf += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

class ResponderImpl final : public Responder {
  public:
    ResponderImpl(ResponderConfig config, ResponderHooks hooks, Sockets sockets, UniqueFd stop)
        : config_(std::move(config)),
          hooks_(std::move(hooks)),
          sockets_(std::move(sockets)),
          stop_(std::move(stop)) {
        thread_ = std::thread([this] { run(); });
    }

    ~ResponderImpl() override {
        uint64_t one = 1;
        if (::write(stop_.get(), &one, sizeof one) != sizeof one)
            log()->error("cannot stop the session resolver: {}", std::strerror(errno));
        thread_.join();
        if (uint64_t n = answers_limit_.take_suppressed())
            hooks_.audit("dns.answer.suppressed", {{"count", n}});
    }

    profile::Ip6 address() const override { return profile::v4_mapped(&sockets_.addr); }
    std::string address_text() const override { return profile::format_ip(address()); }

  private:
    void run();
    void serve_udp();
    void serve_tcp();
    void expire_learned();
    std::set<profile::Ip6> addresses_in_use();
    int poll_timeout_ms() const;
    std::vector<uint8_t> answer(const uint8_t* data, size_t len, const char* transport,
                                size_t limit);
    std::vector<uint8_t> forward(const ldns_pkt* query, const detail::Question& q,
                                 const std::vector<const policy::DnsName*>& names, size_t limit);
    void refuse(const detail::Question& q, const char* transport);
    void report_answer(const detail::Question& q, const std::vector<const policy::DnsName*>& names,
                       const json& learned, const json& not_learned);

    ResponderConfig config_;
    ResponderHooks hooks_;
    Sockets sockets_;
    UniqueFd stop_;
    LearnedSet learned_;
    std::map<profile::Ip6, uint64_t> packets_seen_;  // at the last expiry pass
    // dns.answer events share the denials' budget, so that a flood of
    // distinct allowed names cannot fill the log either.
    audit::DenialLimiter answers_limit_{audit::kDenialBurst, audit::kDenialsPerSecond,
                                        std::chrono::steady_clock::now()};
    std::thread thread_;
};

void ResponderImpl::run() {
    for (;;) {
        pollfd fds[3] = {{sockets_.udp.get(), POLLIN, 0},
                         {sockets_.tcp.get(), POLLIN, 0},
                         {stop_.get(), POLLIN, 0}};
        int n = ::poll(fds, 3, poll_timeout_ms());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            log()->error("the session resolver stops: poll failed: {}", std::strerror(errno));
            return;
        }
        if (fds[2].revents) return;
        if (fds[0].revents & POLLIN) serve_udp();
        if (fds[1].revents & POLLIN) serve_tcp();
        expire_learned();
    }
}

int ResponderImpl::poll_timeout_ms() const {
    auto next = learned_.next_expiry();
    if (!next) return -1;
    auto ms =
        std::chrono::ceil<std::chrono::milliseconds>(*next - std::chrono::steady_clock::now());
    return static_cast<int>(std::clamp<int64_t>(ms.count(), 0, 60'000));
}

void ResponderImpl::serve_udp() {
    uint8_t buf[4096];
    for (;;) {
        sockaddr_storage from{};
        socklen_t from_len = sizeof from;
        ssize_t n = ::recvfrom(sockets_.udp.get(), buf, sizeof buf, 0,
                               reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n < 0) return;  // EAGAIN: drained
        auto reply = answer(buf, static_cast<size_t>(n), "udp", kUdpLimit);
        if (!reply.empty())
            (void)::sendto(sockets_.udp.get(), reply.data(), reply.size(), 0,
                           reinterpret_cast<sockaddr*>(&from), from_len);
    }
}

void ResponderImpl::serve_tcp() {
    UniqueFd conn(::accept4(sockets_.tcp.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) return;
    Deadline deadline = std::chrono::steady_clock::now() + kTcpConnectionTime;
    for (int i = 0; i < kTcpQueriesMax; ++i) {
        uint8_t prefix[2];
        if (!read_exact(conn.get(), prefix, 2, deadline)) return;
        std::vector<uint8_t> query((size_t(prefix[0]) << 8) | prefix[1]);
        if (!read_exact(conn.get(), query.data(), query.size(), deadline)) return;
        expire_learned();  // an answer never extends what has already run out
        auto reply = answer(query.data(), query.size(), "tcp", kTcpLimit);
        if (reply.empty()) return;
        uint8_t len[2] = {static_cast<uint8_t>(reply.size() >> 8),
                          static_cast<uint8_t>(reply.size())};
        if (!write_all(conn.get(), len, 2, deadline) ||
            !write_all(conn.get(), reply.data(), reply.size(), deadline))
            return;
    }
}

std::vector<uint8_t> ResponderImpl::answer(const uint8_t* data, size_t len, const char* transport,
                                           size_t limit) {
    auto query = detail::parse_query(data, len);
    if (!query) return {};  // not a DNS query: no reply at all
    auto q = detail::question_of(query->get());
    if (!q) return detail::to_wire(detail::reply_to(query->get(), LDNS_RCODE_FORMERR).get(), limit);

    // A label holding a dot or a byte outside letters, digits, '-' and '_'
    // (ldns writes those escaped) would match a suffix in text but not on
    // the wire: such names are refused whatever they look like.
    bool plain =
        q->name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-_.") == std::string::npos;
    auto names = plain ? policy::match_name(*config_.policy, q->name)
                       : std::vector<const policy::DnsName*>{};
    if (names.empty()) {
        refuse(*q, transport);
        return detail::to_wire(detail::reply_to(query->get(), LDNS_RCODE_REFUSED).get(), limit);
    }
    // Only addresses are ever learned; other types of an allowed name get an empty answer.
    if (q->type != LDNS_RR_TYPE_A && q->type != LDNS_RR_TYPE_AAAA)
        return detail::to_wire(detail::reply_to(query->get(), LDNS_RCODE_NOERROR).get(), limit);
    return forward(query->get(), *q, names, limit);
}

void ResponderImpl::refuse(const detail::Question& q, const char* transport) {
    hooks_.audit("net.deny", {{"pid", nullptr},
                              {"comm", nullptr},
                              {"destination", nullptr},
                              {"port", 53},
                              {"protocol", transport},
                              {"hook", "dns"},
                              {"reason", "name-not-allowed"},
                              {"tool", nullptr},
                              {"name", audit_name(q.as_sent)},
                              {"nameLength", q.as_sent.size()},
                              {"queryType", q.type_name}});
}

std::vector<uint8_t> ResponderImpl::forward(const ldns_pkt* query, const detail::Question& q,
                                            const std::vector<const policy::DnsName*>& names,
                                            size_t limit) {
    auto servfail = [&](const std::string& why) {
        hooks_.audit("dns.error", {{"name", q.name}, {"queryType", q.type_name}, {"error", why}});
        return detail::to_wire(detail::reply_to(query, LDNS_RCODE_SERVFAIL).get(), limit);
    };
    auto upstream = detail::ask_upstream(config_.upstreams, q.name, q.type);
    if (!upstream) return servfail(upstream.error().message());

    Packet reply = detail::reply_to(query, ldns_pkt_get_rcode(upstream->get()));
    LearnedSet before = learned_;
    bool changed = false;
    json learned = json::array(), not_learned = json::array();
    auto now = std::chrono::steady_clock::now();
    const ldns_rr_list* records = ldns_pkt_answer(upstream->get());
    for (size_t i = 0; i < ldns_rr_list_rr_count(records); ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(records, i);
        auto ttl = std::clamp<std::chrono::seconds>(std::chrono::seconds(ldns_rr_ttl(rr)),
                                                    config_.ttl.min_ttl, config_.ttl.max_ttl);
        auto addr = detail::record_address(rr);
        bool cname = ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME;
        if (!addr && !cname) continue;  // DNAME, RRSIG, ...: nothing the agent needs
        if (addr && !policy::learnable(*config_.policy, *addr)) {
            not_learned.push_back(
                {{"address", profile::format_ip(*addr)}, {"range", *policy::special_range(*addr)}});
            continue;
        }
        if (addr) {
            for (const policy::DnsName* name : names)
                changed |= learned_.learn(*name, *addr, now, ttl);
            learned.push_back(profile::format_ip(*addr));
        }
        ldns_rr* copy = ldns_rr_clone(rr);
        ldns_rr_set_ttl(copy, static_cast<uint32_t>(ttl.count()));
        ldns_pkt_push_rr(reply.get(), LDNS_SECTION_ANSWER, copy);
    }
    if (changed) {
        if (auto st = hooks_.apply_learned(learned_.rules()); !st) {
            learned_ = std::move(before);
            return servfail(st.error().message());
        }
    }
    report_answer(q, names, learned, not_learned);
    return detail::to_wire(reply.get(), limit);
}

void ResponderImpl::report_answer(const detail::Question& q,
                                  const std::vector<const policy::DnsName*>& names,
                                  const json& learned, const json& not_learned) {
    if (!answers_limit_.admit(std::chrono::steady_clock::now())) return;
    std::set<std::string> tools;
    for (const policy::DnsName* name : names) tools.insert(name->tool);
    json fields{{"name", audit_name(q.name)},
                {"queryType", q.type_name},
                {"tools", tools},
                {"addresses", learned},
                {"notLearned", not_learned}};
    // Answers held back since the last one reported.
    if (uint64_t n = answers_limit_.take_suppressed()) fields["suppressedBefore"] = n;
    hooks_.audit("dns.answer", fields);
}

// The addresses the session sent packets to since the last expiry pass.
std::set<profile::Ip6> ResponderImpl::addresses_in_use() {
    std::set<profile::Ip6> busy;
    if (!hooks_.packets_sent) return busy;
    auto sent = hooks_.packets_sent();
    for (const auto& [addr, packets] : sent)
        if (packets > packets_seen_[addr]) busy.insert(addr);
    packets_seen_ = std::move(sent);
    return busy;
}

void ResponderImpl::expire_learned() {
    auto now = std::chrono::steady_clock::now();
    auto next = learned_.next_expiry();
    if (!next || *next > now) return;
    auto busy = addresses_in_use();
    auto removed =
        learned_.expire(now, [&busy](const profile::Ip6& addr) { return busy.count(addr) > 0; });
    if (removed.empty()) return;
    json addresses = json::array();
    for (const auto& addr : removed) addresses.push_back(profile::format_ip(addr));
    if (auto st = hooks_.apply_learned(learned_.rules()); !st) {
        log()->error("cannot remove expired addresses: {}", st.error().message());
        hooks_.audit("dns.error", {{"addresses", addresses}, {"error", st.error().message()}});
        return;
    }
    hooks_.audit("dns.expire", {{"addresses", addresses}});
}

}  // namespace

Result<std::unique_ptr<Responder>> Responder::start(ResponderConfig config, ResponderHooks hooks) {
    if (!config.policy) return plain_error("the session resolver needs the session's policy");
    auto sockets = bind_free_address(config.address_hint);
    if (!sockets) return sockets.error();
    UniqueFd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop.valid()) return errno_error("cannot create the session resolver's eventfd");
    return std::unique_ptr<Responder>(std::make_unique<ResponderImpl>(
        std::move(config), std::move(hooks), std::move(*sockets), std::move(stop)));
}

}  // namespace cordon::dns
