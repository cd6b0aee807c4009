// SPDX-License-Identifier: Apache-2.0
// The session's resolver. The agent's resolv.conf names it, the BPF
// programs let port 53 reach it and nothing else, and it answers only for
// the names the session's allowed tools list. A query for any other name is
// refused without being forwarded anywhere, so a query never carries data
// out. Answers for allowed names come from the host's upstream resolver;
// their public addresses enter the session's allowlist for the record's
// TTL (bounded by the profile's dns.minTtl and dns.maxTtl) and leave it
// when that runs out.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "cordon/result.h"
#include "netfilter/netfilter.h"
#include "policy/policy.h"
#include "profile/profile.h"

namespace cordon::dns {

using SteadyTime = std::chrono::steady_clock::time_point;

// A resolver the supervisor forwards allowed queries to.
struct Upstream {
    std::string address;  // "10.255.255.53", "::1"
    uint16_t port = 53;
};

// "ADDRESS", "ADDRESS:PORT" or "[IPV6]:PORT"; several separated by commas.
Result<std::vector<Upstream>> parse_upstreams(const std::string& spec);

// The nameservers of a resolv.conf(5) file, port 53.
Result<std::vector<Upstream>> system_upstreams(const std::string& resolv_conf = "/etc/resolv.conf");

// Resolves a name's A and AAAA records through the upstreams: the policy's
// start-time resolution when --dns-upstream names the resolvers to trust.
policy::Resolver upstream_resolver(std::vector<Upstream> upstreams);

// The addresses learned from answers, each with the endpoint it was learned
// for and when it expires.
class LearnedSet {
  public:
    // Adds or extends addr for name's endpoint for ttl from now. Returns true
    // when the rules change (a new address, not a later expiry).
    bool learn(const policy::DnsName& name, const profile::Ip6& addr, SteadyTime now,
               std::chrono::seconds ttl);

    // Removes what expired by `now` and returns the addresses removed, but
    // for those `in_use` says still carry traffic: each of those is kept for
    // its TTL again (at least a second), so that an open transfer to a name
    // with a short TTL is not cut. A gated tool's address never expires: it
    // stays behind its gate for the session, whatever name later shares it.
    std::vector<profile::Ip6> expire(
        SteadyTime now, const std::function<bool(const profile::Ip6&)>& in_use = nullptr);

    std::optional<SteadyTime> next_expiry() const;

    // One /128 rule per learned address and endpoint.
    std::vector<netfilter::Rule> rules() const;

    size_t size() const { return entries_.size(); }

  private:
    struct Key {
        profile::Ip6 address;
        std::string endpoint;  // spec, unique within a tool
        std::string tool;
        auto operator<=>(const Key&) const = default;
    };
    struct Entry {
        profile::Endpoint endpoint;
        SteadyTime expires;
        std::chrono::seconds ttl;
        uint16_t gate = 0;  // DnsName::gate
    };
    std::map<Key, Entry> entries_;
};

// Where the responder reports. `learned` receives the whole learned rule set
// after each change; if it fails, the answer is withheld (SERVFAIL) so
// that no address is handed out that the kernel would not let through.
struct ResponderHooks {
    std::function<Status(const std::vector<netfilter::Rule>& learned)> apply_learned;
    std::function<void(const std::string& event, const nlohmann::json& fields)> audit;
    // Packets the session has sent so far, by destination address (read
    // once per expiry pass): an address whose count grew since the last
    // pass is in use. Null: an address leaves when its TTL runs out.
    std::function<std::map<profile::Ip6, uint64_t>()> packets_sent = nullptr;
};

struct ResponderConfig {
    const policy::EffectivePolicy* policy = nullptr;  // outlives the responder
    profile::DnsPolicy ttl;
    std::vector<Upstream> upstreams;
    // The first address tried in 127.53.0.0/16; others follow if it is taken.
    // 0 picks one at random.
    uint16_t address_hint = 0;
};

class Responder {
  public:
    // Binds UDP and TCP port 53 on a free address of 127.53.0.0/16 and starts
    // answering on a thread of its own.
    static Result<std::unique_ptr<Responder>> start(ResponderConfig config, ResponderHooks hooks);

    // The address it listens on, v4-mapped, and as text for resolv.conf.
    virtual profile::Ip6 address() const = 0;
    virtual std::string address_text() const = 0;

    // Stops the thread and closes the sockets.
    virtual ~Responder() = default;
};

// What a query's name may be shown as in the audit log: at most
// kAuditNameMax characters, since an exfiltration attempt's name is its payload.
inline constexpr size_t kAuditNameMax = 100;
std::string audit_name(const std::string& name);

}  // namespace cordon::dns
