// SPDX-License-Identifier: Apache-2.0
// DNS messages through ldns (internal to supervisor/dns): parsing a query,
// building a reply to it, asking an upstream resolver.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

// ldns/common.h defines bool, true and false as macros unless stdbool.h came
// first, and those macros break the C++ library.
#include <stdbool.h>

#include <ldns/ldns.h>

#include "cordon/result.h"
#include "dns/dns.h"

namespace cordon::dns::detail {

struct PacketDeleter {
    void operator()(ldns_pkt* p) const {
        if (p) ldns_pkt_free(p);
    }
};
using Packet = std::unique_ptr<ldns_pkt, PacketDeleter>;

struct RrListDeleter {
    void operator()(ldns_rr_list* l) const {
        if (l) ldns_rr_list_deep_free(l);
    }
};
using RrList = std::unique_ptr<ldns_rr_list, RrListDeleter>;

// The one question of a query, class IN.
struct Question {
    std::string name;     // lowercase, no trailing dot: what policy matches
    std::string as_sent;  // the case the client used (case can carry data too)
    ldns_rr_type type;
    std::string type_name;  // "A", "TXT", "TYPE65"
};

// A query from the agent, or nullopt when the bytes are not a DNS query at all.
std::optional<Packet> parse_query(const uint8_t* data, size_t len);

// The query's question, or nullopt unless it has exactly one, of class IN.
std::optional<Question> question_of(const ldns_pkt* query);

// A reply to query with rcode and the query's question, no records.
Packet reply_to(const ldns_pkt* query, ldns_pkt_rcode rcode);

// The reply's wire form; when it exceeds `limit` bytes (UDP), the records
// are left out and TC is set, so that the client asks again over TCP.
std::vector<uint8_t> to_wire(ldns_pkt* reply, size_t limit);

// The address an A or AAAA record carries, v4-mapped for A.
std::optional<profile::Ip6> record_address(const ldns_rr* rr);

// Asks the upstreams in turn for name and type, recursion desired.
Result<Packet> ask_upstream(const std::vector<Upstream>& upstreams, const std::string& name,
                            ldns_rr_type type);

}  // namespace cordon::dns::detail
