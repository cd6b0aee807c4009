// SPDX-License-Identifier: Apache-2.0
#include "dns/message.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

namespace cordon::dns::detail {
namespace {

struct RdfDeleter {
    void operator()(ldns_rdf* r) const {
        if (r) ldns_rdf_deep_free(r);
    }
};
using Rdf = std::unique_ptr<ldns_rdf, RdfDeleter>;

struct ResolverDeleter {
    void operator()(ldns_resolver* r) const {
        if (r) ldns_resolver_deep_free(r);
    }
};
using Resolver = std::unique_ptr<ldns_resolver, ResolverDeleter>;

// ldns hands out malloc'd strings and buffers.
struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

// The owner name as written, without the root's trailing dot.
std::string owner_text(const ldns_rr* rr) {
    std::unique_ptr<char, FreeDeleter> text(ldns_rdf2str(ldns_rr_owner(rr)));
    std::string name = text ? text.get() : "";
    if (!name.empty() && name.back() == '.') name.pop_back();
    return name;
}

std::string lowercase(std::string name) {
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return name;
}

std::string type_text(ldns_rr_type type) {
    std::unique_ptr<char, FreeDeleter> text(ldns_rr_type2str(type));
    return text ? text.get() : std::to_string(type);
}

// An ldns resolver for one upstream: no search list, no default domain, a
// short timeout, TCP when the answer is truncated.
Result<Resolver> resolver_for(const Upstream& upstream) {
    bool v6 = upstream.address.find(':') != std::string::npos;
    Rdf addr(
        ldns_rdf_new_frm_str(v6 ? LDNS_RDF_TYPE_AAAA : LDNS_RDF_TYPE_A, upstream.address.c_str()));
    Resolver res(ldns_resolver_new());
    if (!addr || !res) return plain_error("cannot use upstream resolver " + upstream.address);
    if (ldns_resolver_push_nameserver(res.get(), addr.get()) != LDNS_STATUS_OK)
        return plain_error("cannot use upstream resolver " + upstream.address);
    ldns_resolver_set_port(res.get(), upstream.port);
    ldns_resolver_set_timeout(res.get(), timeval{2, 0});
    ldns_resolver_set_retry(res.get(), 2);
    ldns_resolver_set_defnames(res.get(), false);
    ldns_resolver_set_dnsrch(res.get(), false);
    ldns_resolver_set_fallback(res.get(), true);
    ldns_resolver_set_recursive(res.get(), true);
    return res;
}

}  // namespace

// The address an A or AAAA record carries, v4-mapped for A.
std::optional<profile::Ip6> record_address(const ldns_rr* rr) {
    ldns_rdf* rdf = ldns_rr_rdf(rr, 0);
    if (!rdf) return std::nullopt;
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_A && ldns_rdf_size(rdf) == 4)
        return profile::v4_mapped(ldns_rdf_data(rdf));
    profile::Ip6 out{};
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_AAAA && ldns_rdf_size(rdf) == 16) {
        std::memcpy(out.data(), ldns_rdf_data(rdf), 16);
        return out;
    }
    return std::nullopt;
}

std::optional<Packet> parse_query(const uint8_t* data, size_t len) {
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, data, len) != LDNS_STATUS_OK) return std::nullopt;
    Packet pkt(raw);
    if (ldns_pkt_qr(pkt.get())) return std::nullopt;  // a reply: not ours to answer
    return pkt;
}

std::optional<Question> question_of(const ldns_pkt* query) {
    if (ldns_pkt_get_opcode(query) != LDNS_PACKET_QUERY || ldns_pkt_qdcount(query) != 1)
        return std::nullopt;
    const ldns_rr* q = ldns_rr_list_rr(ldns_pkt_question(query), 0);
    if (!q || ldns_rr_get_class(q) != LDNS_RR_CLASS_IN) return std::nullopt;
    std::string name = owner_text(q);
    return Question{lowercase(name), name, ldns_rr_get_type(q), type_text(ldns_rr_get_type(q))};
}

Packet reply_to(const ldns_pkt* query, ldns_pkt_rcode rcode) {
    Packet reply(ldns_pkt_new());
    ldns_pkt_set_id(reply.get(), ldns_pkt_id(query));
    ldns_pkt_set_qr(reply.get(), true);
    ldns_pkt_set_opcode(reply.get(), ldns_pkt_get_opcode(query));
    ldns_pkt_set_rd(reply.get(), ldns_pkt_rd(query));
    ldns_pkt_set_ra(reply.get(), true);
    ldns_pkt_set_rcode(reply.get(), rcode);
    if (ldns_pkt_qdcount(query) > 0)
        ldns_pkt_push_rr_list(reply.get(), LDNS_SECTION_QUESTION,
                              ldns_rr_list_clone(ldns_pkt_question(query)));
    return reply;
}

std::vector<uint8_t> to_wire(ldns_pkt* reply, size_t limit) {
    uint8_t* raw = nullptr;
    size_t size = 0;
    if (ldns_pkt2wire(&raw, reply, &size) != LDNS_STATUS_OK) return {};
    std::unique_ptr<uint8_t, FreeDeleter> wire(raw);
    if (size > limit) {
        // Header and question only: a client that sees TC retries over TCP.
        ldns_rr_list_deep_free(ldns_pkt_answer(reply));
        ldns_pkt_set_answer(reply, ldns_rr_list_new());
        ldns_pkt_set_ancount(reply, 0);
        ldns_pkt_set_tc(reply, true);
        return to_wire(reply, SIZE_MAX);
    }
    return {wire.get(), wire.get() + size};
}

Result<Packet> ask_upstream(const std::vector<Upstream>& upstreams, const std::string& name,
                            ldns_rr_type type) {
    Rdf qname(ldns_dname_new_frm_str(name.c_str()));
    if (!qname) return plain_error("\"" + name + "\" is not a DNS name");
    std::string failures = upstreams.empty() ? "none is configured" : "";
    for (const Upstream& upstream : upstreams) {
        auto res = resolver_for(upstream);
        if (!res) return res.error();
        ldns_pkt* raw = nullptr;
        ldns_status st = ldns_resolver_query_status(&raw, res->get(), qname.get(), type,
                                                    LDNS_RR_CLASS_IN, LDNS_RD);
        Packet answer(raw);
        if (st == LDNS_STATUS_OK && answer) return answer;
        failures += (failures.empty() ? "" : "; ") + upstream.address + ":" +
                    std::to_string(upstream.port) + ": " + ldns_get_errorstr_by_id(st);
    }
    return plain_error("no upstream resolver answered for \"" + name + "\" (" + failures + ")",
                       "check --dns-upstream or the host's /etc/resolv.conf");
}

}  // namespace cordon::dns::detail
