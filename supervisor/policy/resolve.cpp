// SPDX-License-Identifier: Apache-2.0
// Hostname endpoints resolved once, when the policy is computed (DNS-aware
// enforcement that follows later answers is a later layer's job).
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "policy/policy.h"

namespace cordon::policy {
namespace {

struct AddrinfoDeleter {
    void operator()(addrinfo* list) const {
        if (list) freeaddrinfo(list);
    }
};
using AddrinfoList = std::unique_ptr<addrinfo, AddrinfoDeleter>;

// IPv4 as v4-mapped (::ffff:a.b.c.d), as the rules trie stores it.
std::optional<profile::Ip6> to_ip6(const sockaddr* sa) {
    if (sa->sa_family == AF_INET)
        return profile::v4_mapped(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
    profile::Ip6 out{};
    if (sa->sa_family == AF_INET6) {
        std::memcpy(out.data(), &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, 16);
        return out;
    }
    return std::nullopt;
}

}  // namespace

Result<std::vector<profile::Ip6>> system_resolve(const std::string& hostname) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;  // one entry per address, not one per socket type
    addrinfo* raw = nullptr;
    int rc = getaddrinfo(hostname.c_str(), nullptr, &hints, &raw);
    AddrinfoList list(raw);
    if (rc == EAI_SYSTEM) return errno_error("cannot resolve \"" + hostname + "\"");
    if (rc != 0) {
        return plain_error("cannot resolve \"" + hostname + "\": " + gai_strerror(rc),
                           "check the name, write the endpoint as an address, or give "
                           "--dns-upstream a resolver this host can reach");
    }
    std::vector<profile::Ip6> addresses;
    for (const addrinfo* ai = list.get(); ai; ai = ai->ai_next) {
        if (std::optional<profile::Ip6> ip = to_ip6(ai->ai_addr)) addresses.push_back(*ip);
    }
    std::sort(addresses.begin(), addresses.end());
    addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
    return addresses;
}

Resolver system_resolver() {
    return system_resolve;
}

}  // namespace cordon::policy
