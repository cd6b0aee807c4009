// SPDX-License-Identifier: Apache-2.0
// Tool endpoints: "[tcp://|udp://]HOST:PORT[-PORT]". Addresses are parsed by
// inet_pton(3) and kept in the 128-bit form the BPF rules trie uses, IPv4 as
// v4-mapped (RFC 4291 section 2.5.5.2) so one lookup path serves both families.
#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <stdexcept>

#include "profile/profile.h"

namespace cordon::profile {
namespace {

constexpr uint8_t kV4MappedPrefix = 96;

struct HostPort {
    std::string host;
    std::string ports;
    bool bracketed = false;
};

[[noreturn]] void bad_endpoint(const std::string& spec, const std::string& why) {
    throw std::invalid_argument("\"" + spec + "\" is not an endpoint: " + why);
}

bool all_digits(const std::string& s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

// Strips "tcp://" or "udp://"; no scheme means TCP.
Protocol take_scheme(const std::string& spec, std::string& rest) {
    size_t sep = spec.find("://");
    if (sep == std::string::npos) {
        rest = spec;
        return Protocol::tcp;
    }
    std::string scheme = spec.substr(0, sep);
    rest = spec.substr(sep + 3);
    if (scheme == "tcp") return Protocol::tcp;
    if (scheme == "udp") return Protocol::udp;
    bad_endpoint(spec, "unknown scheme \"" + scheme + "\" (expected tcp:// or udp://)");
}

HostPort split_host_port(const std::string& spec, const std::string& rest) {
    HostPort hp;
    size_t colon;
    if (!rest.empty() && rest.front() == '[') {
        size_t close = rest.find(']');
        if (close == std::string::npos) bad_endpoint(spec, "'[' without ']'");
        hp.host = rest.substr(1, close - 1);
        hp.bracketed = true;
        colon = close + 1;
        if (colon >= rest.size() || rest[colon] != ':') {
            bad_endpoint(spec, "a port is missing after ']' (expected [ADDRESS]:PORT)");
        }
    } else {
        colon = rest.rfind(':');
        if (colon == std::string::npos)
            bad_endpoint(spec, "a port is missing (expected HOST:PORT)");
        hp.host = rest.substr(0, colon);
        if (hp.host.find(':') != std::string::npos) {
            bad_endpoint(spec, "an IPv6 address must be in brackets (expected [2001:db8::1]:443)");
        }
    }
    hp.ports = rest.substr(colon + 1);
    if (hp.host.empty()) bad_endpoint(spec, "the host is empty");
    return hp;
}

uint16_t parse_port(const std::string& spec, const std::string& text) {
    if (!all_digits(text) || text.size() > 5 || std::stoi(text) < 1 || std::stoi(text) > 65535) {
        bad_endpoint(spec, "port \"" + text + "\" is not a number from 1 to 65535");
    }
    return static_cast<uint16_t>(std::stoi(text));
}

PortRange parse_ports(const std::string& spec, const std::string& text) {
    size_t dash = text.find('-');
    PortRange range;
    range.first = parse_port(spec, text.substr(0, dash));
    range.last = dash == std::string::npos ? range.first : parse_port(spec, text.substr(dash + 1));
    if (range.first > range.last) {
        bad_endpoint(spec, "port range " + text + " ends before it starts (expected LOW-HIGH)");
    }
    return range;
}

// A literal address, IPv6 only when it was written in brackets.
bool parse_address(const std::string& text, bool ipv6, Ip6& out) {
    out = {};
    if (ipv6) return inet_pton(AF_INET6, text.c_str(), out.data()) == 1;
    out[10] = out[11] = 0xff;
    return inet_pton(AF_INET, text.c_str(), out.data() + 12) == 1;
}

// RFC 1123 section 2.1 host names: dot-separated labels of 1-63 letters,
// digits and hyphens, no hyphen at either end, 253 characters in all. An
// all-numeric last label is a mistyped IPv4 address, not a name.
bool is_dns_name(const std::string& name) {
    if (name.empty() || name.size() > 253) return false;
    size_t start = 0;
    std::string label;
    while (start <= name.size()) {
        size_t dot = std::min(name.find('.', start), name.size());
        label = name.substr(start, dot - start);
        bool chars_ok = std::all_of(label.begin(), label.end(), [](unsigned char c) {
            return std::isalnum(c) != 0 || c == '-';
        });
        if (label.empty() || label.size() > 63 || !chars_ok || label.front() == '-' ||
            label.back() == '-') {
            return false;
        }
        start = dot + 1;
    }
    return !all_digits(label);
}

std::string lowercase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

// Host bits set under the prefix ("10.1.2.3/8") are refused rather than
// masked: the writer most likely meant something else, and the message
// names the network they probably wanted, written as they wrote it.
void check_host_bits(const std::string& spec, const Endpoint& ep, const HostPort& hp,
                     const std::string& prefix) {
    Ip6 masked = ep.address;
    for (size_t bit = ep.prefix_len; bit < 128; ++bit) masked[bit / 8] &= ~(0x80 >> (bit % 8));
    if (masked == ep.address) return;
    char text[INET6_ADDRSTRLEN] = {};
    if (hp.bracketed) {
        inet_ntop(AF_INET6, masked.data(), text, sizeof text);
    } else {
        inet_ntop(AF_INET, masked.data() + 12, text, sizeof text);
    }
    std::string network = std::string(text) + "/" + prefix;
    if (hp.bracketed) network = "[" + network + "]";
    bad_endpoint(spec, "host bits are set after the prefix (did you mean " + network + "?)");
}

void parse_host(const std::string& spec, const HostPort& hp, Endpoint& ep) {
    size_t slash = hp.host.find('/');
    std::string addr = hp.host.substr(0, slash);
    bool literal = parse_address(addr, hp.bracketed, ep.address);
    if (slash == std::string::npos) {
        if (literal) return;
        if (hp.bracketed) bad_endpoint(spec, "\"" + addr + "\" is not an IPv6 address");
        // "*.example.com": every name below example.com, learned from DNS answers only.
        bool wildcard = addr.rfind("*.", 0) == 0;
        std::string name = wildcard ? addr.substr(2) : addr;
        if (addr.find('*') != std::string::npos &&
            (!wildcard || !is_dns_name(name) || name.find('.') == std::string::npos)) {
            bad_endpoint(spec, "\"" + addr +
                                   "\" is not a wildcard name (expected \"*.\" before a name of "
                                   "two labels or more, such as *.example.com)");
        }
        if (!is_dns_name(name)) {
            bad_endpoint(spec, "\"" + addr + "\" is neither an IPv4 address nor a DNS name");
        }
        ep.hostname = lowercase(addr);
        return;
    }
    if (!literal) bad_endpoint(spec, "\"" + addr + "\" before the prefix is not an address");
    std::string prefix = hp.host.substr(slash + 1);
    int max_prefix = hp.bracketed ? 128 : 32;
    if (!all_digits(prefix) || prefix.size() > 3 || std::stoi(prefix) > max_prefix) {
        bad_endpoint(
            spec, "prefix /" + prefix + " is not a number from 0 to " + std::to_string(max_prefix));
    }
    ep.prefix_len = static_cast<uint8_t>(std::stoi(prefix) + (hp.bracketed ? 0 : kV4MappedPrefix));
    check_host_bits(spec, ep, hp, prefix);
}

}  // namespace

Endpoint parse_endpoint(const std::string& spec) {
    Endpoint ep;
    ep.spec = spec;
    std::string rest;
    ep.protocol = take_scheme(spec, rest);
    HostPort hp = split_host_port(spec, rest);
    ep.ports = parse_ports(spec, hp.ports);
    parse_host(spec, hp, ep);
    return ep;
}

bool is_wildcard(const Endpoint& endpoint) {
    return endpoint.hostname.rfind("*.", 0) == 0;
}

Ip6 v4_mapped(const void* ipv4) {
    Ip6 out{};
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, ipv4, 4);
    return out;
}

std::string format_ip(const Ip6& addr) {
    static const Ip6 kV4Mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN] = {};
    if (std::equal(addr.begin(), addr.begin() + 12, kV4Mapped.begin())) {
        inet_ntop(AF_INET, addr.data() + 12, text, sizeof text);
    } else {
        inet_ntop(AF_INET6, addr.data(), text, sizeof text);
    }
    return text;
}

}  // namespace cordon::profile
