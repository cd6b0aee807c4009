// SPDX-License-Identifier: Apache-2.0
// Where allowed queries go: --dns-upstream, else the host's resolv.conf.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <sstream>

#include "dns/dns.h"
#include "dns/message.h"

namespace cordon::dns {
namespace {

bool is_address(const std::string& text) {
    unsigned char buf[16];
    return inet_pton(AF_INET, text.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

Result<Upstream> parse_one(const std::string& spec) {
    auto bad = [&](const std::string& why) {
        return plain_error("\"" + spec + "\" is not an upstream resolver: " + why,
                           "write ADDRESS, ADDRESS:PORT or [IPV6]:PORT");
    };
    if (is_address(spec)) return Upstream{spec, 53};
    std::string host, port;
    if (!spec.empty() && spec.front() == '[') {
        size_t close = spec.find("]:");
        if (close == std::string::npos) return bad("expected [IPV6]:PORT");
        host = spec.substr(1, close - 1);
        port = spec.substr(close + 2);
    } else {
        size_t colon = spec.rfind(':');
        if (colon == std::string::npos) return bad("not an IP address");
        host = spec.substr(0, colon);
        port = spec.substr(colon + 1);
    }
    if (!is_address(host)) return bad("\"" + host + "\" is not an IP address");
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535)
        return bad("port \"" + port + "\" is not a number from 1 to 65535");
    return Upstream{host, static_cast<uint16_t>(std::stoi(port))};
}

}  // namespace

Result<std::vector<Upstream>> parse_upstreams(const std::string& spec) {
    std::vector<Upstream> out;
    std::stringstream in(spec);
    std::string item;
    while (std::getline(in, item, ',')) {
        auto one = parse_one(item);
        if (!one) return one.error();
        out.push_back(*one);
    }
    if (out.empty()) return plain_error("no upstream resolver given", "write ADDRESS[:PORT]");
    return out;
}

Result<std::vector<Upstream>> system_upstreams(const std::string& resolv_conf) {
    ldns_resolver* raw = nullptr;
    ldns_status st = ldns_resolver_new_frm_file(&raw, resolv_conf.c_str());
    if (st != LDNS_STATUS_OK)
        return plain_error("cannot read " + resolv_conf + ": " + ldns_get_errorstr_by_id(st),
                           "give --dns-upstream ADDRESS");
    std::unique_ptr<ldns_resolver, decltype(&ldns_resolver_deep_free)> res(raw,
                                                                           ldns_resolver_deep_free);
    std::vector<Upstream> out;
    ldns_rdf** servers = ldns_resolver_nameservers(res.get());
    for (size_t i = 0; i < ldns_resolver_nameserver_count(res.get()); ++i) {
        std::unique_ptr<char, decltype(&std::free)> text(ldns_rdf2str(servers[i]), std::free);
        if (text && is_address(text.get())) out.push_back({text.get(), 53});
    }
    if (out.empty())
        return plain_error(resolv_conf + " names no nameserver", "give --dns-upstream ADDRESS");
    return out;
}

policy::Resolver upstream_resolver(std::vector<Upstream> upstreams) {
    return [upstreams](const std::string& name) -> Result<std::vector<profile::Ip6>> {
        std::vector<profile::Ip6> out;
        for (ldns_rr_type type : {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA}) {
            auto answer = detail::ask_upstream(upstreams, name, type);
            if (!answer) return answer.error();
            const ldns_rr_list* records = ldns_pkt_answer(answer->get());
            for (size_t i = 0; i < ldns_rr_list_rr_count(records); ++i)
                if (auto addr = detail::record_address(ldns_rr_list_rr(records, i)))
                    out.push_back(*addr);
        }
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        return out;
    };
}

}  // namespace cordon::dns
