// SPDX-License-Identifier: Apache-2.0
// The profile layer: every validation rule, valid and invalid, with the
// exact error text (path and reason) a user would read.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include "profile_doc.h"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "profile/profile.h"

namespace cordon::profile {
namespace {

using nlohmann::json;

const TimePoint kNow = parse_rfc3339("2026-06-01T00:00:00Z");

json base_profile() {
    return json::parse(R"({
      "apiVersion": "cordon/v1",
      "identity": {"agentId": "support-agent", "agentType": "support", "version": "1.4.2",
                   "expiresAt": "2027-01-31T00:00:00Z"},
      "session": {"maxDuration": "30m"},
      "allowedTools": ["lookup_order"],
      "deniedTools": ["bulk_message"],
      "approvalRequired": ["issue_refund"],
      "tools": {
        "lookup_order": {"endpoints": ["127.0.0.1:18080"], "credentials": ["orders_token"],
                         "risk": "low", "description": "Reads one order"},
        "bulk_message": {"endpoints": ["127.0.0.2:18081"], "risk": "high"},
        "issue_refund": {"endpoints": ["127.0.0.4:18083"], "risk": "high"}
      },
      "credentials": {
        "orders_token": {"source": {"file": "token.txt"}, "deliver": {"env": "ORDERS_TOKEN"}}
      },
      "syscalls": {"baseline": "agent-default", "allow": ["@mount"], "deny": ["ptrace"]}
    })");
}

json with(json doc, const std::string& pointer, json value) {
    doc[json::json_pointer(pointer)] = std::move(value);
    return doc;
}

json without(json doc, const std::string& parent, const std::string& key) {
    doc[json::json_pointer(parent)].erase(key);
    return doc;
}

// Parses doc and expects exactly "PATH: REASON".
void expect_error(const json& doc, const std::string& path, const std::string& reason) {
    test_support::expect_profile_error(doc, path, reason);
}

// ---- RFC 3339 --------------------------------------------------------------

TEST(Rfc3339, ParsesUtcAndOffsets) {
    EXPECT_EQ(format_rfc3339(parse_rfc3339("2027-01-31T00:00:00Z")), "2027-01-31T00:00:00Z");
    EXPECT_EQ(format_rfc3339(parse_rfc3339("2027-01-31t00:00:00z")), "2027-01-31T00:00:00Z");
    EXPECT_EQ(format_rfc3339(parse_rfc3339("2027-01-31T02:00:00+02:00")), "2027-01-31T00:00:00Z");
    EXPECT_EQ(format_rfc3339(parse_rfc3339("2027-01-30T19:30:00-04:30")), "2027-01-31T00:00:00Z");
}

TEST(Rfc3339, FractionalSecondsAreTruncated) {
    EXPECT_EQ(format_rfc3339(parse_rfc3339("2027-01-31T00:00:07.999Z")), "2027-01-31T00:00:07Z");
    EXPECT_EQ(format_rfc3339(parse_rfc3339("2027-01-31T00:00:07.123456789+00:00")),
              "2027-01-31T00:00:07Z");
}

TEST(Rfc3339, RefusesWhatIsNotRfc3339) {
    for (const char* text :
         {"", "2027-01-31", "2027-1-31T00:00:00Z", "2027-01-31 00:00:00Z", "2027-01-31T00:00:00",
          "2027-01-31T00:00:00+0200", "2027-01-31T00:00:00Zjunk", "2027-02-30T00:00:00Z",
          "2027-13-01T00:00:00Z", "2027-01-31T25:00:00Z", "tomorrow"}) {
        EXPECT_THROW(parse_rfc3339(text), std::invalid_argument) << text;
    }
}

TEST(Rfc3339, MessageSaysWhatIsExpected) {
    try {
        parse_rfc3339("2027-02-30T00:00:00Z");
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(),
                     "\"2027-02-30T00:00:00Z\" is not a valid RFC 3339 date-time (expected RFC "
                     "3339 such as 2027-01-31T00:00:00Z)");
    }
}

// ---- durations ---------------------------------------------------------------

TEST(Duration, ParsesUnitsLargestFirst) {
    EXPECT_EQ(parse_duration("90s").count(), 90);
    EXPECT_EQ(parse_duration("30m").count(), 1800);
    EXPECT_EQ(parse_duration("2h").count(), 7200);
    EXPECT_EQ(parse_duration("1h30m").count(), 5400);
    EXPECT_EQ(parse_duration("1d").count(), 86400);
    EXPECT_EQ(parse_duration("1d2h3m4s").count(), 86400 + 7200 + 180 + 4);
    EXPECT_EQ(parse_duration("0s").count(), 0);
}

TEST(Duration, RefusesMalformed) {
    for (const char* text : {"", "30", "m", "30x", "30m1h", "1h1h", "1.5h", "-1m", " 30m", "30m ",
                             "99999999999999d"}) {
        EXPECT_THROW(parse_duration(text), std::invalid_argument) << text;
    }
}

TEST(Duration, MessageNamesTheProblem) {
    try {
        parse_duration("30m1h");
        FAIL();
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(),
                     "\"30m1h\" is not a duration: unit 'h' is unknown or out of order (expected "
                     "a number and unit, largest first: 90s, 30m, 1h30m, 1d)");
    }
}

// ---- endpoints ---------------------------------------------------------------

Ip6 v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}

TEST(Endpoint, Ipv4IsStoredV4Mapped) {
    Endpoint ep = parse_endpoint("127.0.0.1:18080");
    EXPECT_EQ(ep.spec, "127.0.0.1:18080");
    EXPECT_EQ(ep.protocol, Protocol::tcp);
    EXPECT_TRUE(ep.hostname.empty());
    EXPECT_EQ(ep.address, v4(127, 0, 0, 1));
    EXPECT_EQ(ep.prefix_len, 128);
    EXPECT_EQ(ep.ports.first, 18080);
    EXPECT_EQ(ep.ports.last, 18080);
}

TEST(Endpoint, Ipv4CidrWithUdpAndPortRange) {
    Endpoint ep = parse_endpoint("udp://10.0.0.0/8:5000-5010");
    EXPECT_EQ(ep.protocol, Protocol::udp);
    EXPECT_EQ(ep.address, v4(10, 0, 0, 0));
    EXPECT_EQ(ep.prefix_len, 96 + 8);
    EXPECT_EQ(ep.ports.first, 5000);
    EXPECT_EQ(ep.ports.last, 5010);
    EXPECT_EQ(parse_endpoint("0.0.0.0/0:443").prefix_len, 96);
}

TEST(Endpoint, Ipv6AndIpv6Cidr) {
    Endpoint ep = parse_endpoint("tcp://[::1]:443");
    Ip6 loopback{};
    loopback[15] = 1;
    EXPECT_EQ(ep.address, loopback);
    EXPECT_EQ(ep.prefix_len, 128);

    Endpoint net = parse_endpoint("[fd00::/8]:1-65535");
    EXPECT_EQ(net.address[0], 0xfd);
    EXPECT_EQ(net.prefix_len, 8);
    EXPECT_EQ(net.ports.first, 1);
    EXPECT_EQ(net.ports.last, 65535);
}

TEST(Endpoint, V4MappedIpv6EqualsIpv4) {
    EXPECT_EQ(parse_endpoint("[::ffff:10.0.0.1]:80").address,
              parse_endpoint("10.0.0.1:80").address);
}

TEST(Endpoint, DnsNames) {
    EXPECT_EQ(parse_endpoint("localhost:18090").hostname, "localhost");
    Endpoint ep = parse_endpoint("udp://orders-1.example.internal:53");
    EXPECT_EQ(ep.hostname, "orders-1.example.internal");
    EXPECT_EQ(ep.protocol, Protocol::udp);
}

TEST(Endpoint, WildcardNamesAreLowercaseAndNeedTwoLabels) {
    Endpoint ep = parse_endpoint("*.Search.Example:443");
    EXPECT_EQ(ep.hostname, "*.search.example");
    EXPECT_TRUE(is_wildcard(ep));
    EXPECT_FALSE(is_wildcard(parse_endpoint("search.example:443")));
    const std::string why =
        "is not a wildcard name (expected \"*.\" before a name of two labels or more, such as "
        "*.example.com)";
    for (const std::string host : {"*.com", "*example.com", "a.*.example.com", "*.-x.example"}) {
        try {
            parse_endpoint(host + ":443");
            ADD_FAILURE() << "accepted " << host;
        } catch (const std::invalid_argument& e) {
            EXPECT_EQ(std::string(e.what()),
                      "\"" + host + ":443\" is not an endpoint: \"" + host + "\" " + why);
        }
    }
}

void expect_bad_endpoint(const std::string& spec, const std::string& why) {
    try {
        parse_endpoint(spec);
        ADD_FAILURE() << "accepted " << spec;
    } catch (const std::invalid_argument& e) {
        EXPECT_EQ(std::string(e.what()), "\"" + spec + "\" is not an endpoint: " + why);
    }
}

TEST(Endpoint, RefusesSchemesPortsAndBrackets) {
    expect_bad_endpoint("http://x.example:80",
                        "unknown scheme \"http\" (expected tcp:// or udp://)");
    expect_bad_endpoint("127.0.0.1", "a port is missing (expected HOST:PORT)");
    expect_bad_endpoint("::1:80",
                        "an IPv6 address must be in brackets (expected [2001:db8::1]:443)");
    expect_bad_endpoint("[::1]", "a port is missing after ']' (expected [ADDRESS]:PORT)");
    expect_bad_endpoint("[::1:80", "'[' without ']'");
    expect_bad_endpoint(":80", "the host is empty");
    expect_bad_endpoint("127.0.0.1:0", "port \"0\" is not a number from 1 to 65535");
    expect_bad_endpoint("127.0.0.1:65536", "port \"65536\" is not a number from 1 to 65535");
    expect_bad_endpoint("127.0.0.1:http", "port \"http\" is not a number from 1 to 65535");
    expect_bad_endpoint("127.0.0.1:80-", "port \"\" is not a number from 1 to 65535");
    expect_bad_endpoint("127.0.0.1:80-70",
                        "port range 80-70 ends before it starts (expected LOW-HIGH)");
}

TEST(Endpoint, RefusesBadHosts) {
    expect_bad_endpoint("999.1.1.1:80", "\"999.1.1.1\" is neither an IPv4 address nor a DNS name");
    expect_bad_endpoint("10.0.0:80", "\"10.0.0\" is neither an IPv4 address nor a DNS name");
    expect_bad_endpoint("-bad.example:80",
                        "\"-bad.example\" is neither an IPv4 address nor a DNS name");
    expect_bad_endpoint("bad_name.example:80",
                        "\"bad_name.example\" is neither an IPv4 address nor a DNS name");
    expect_bad_endpoint("a..b:80", "\"a..b\" is neither an IPv4 address nor a DNS name");
    expect_bad_endpoint(
        std::string(64, 'a') + ".example:80",
        "\"" + std::string(64, 'a') + ".example\" is neither an IPv4 address nor a DNS name");
    expect_bad_endpoint("[10.0.0.1]:80", "\"10.0.0.1\" is not an IPv6 address");
    expect_bad_endpoint("host/8:80", "\"host\" before the prefix is not an address");
}

TEST(Endpoint, RefusesBadPrefixesAndHostBits) {
    expect_bad_endpoint("10.0.0.0/33:80", "prefix /33 is not a number from 0 to 32");
    expect_bad_endpoint("[::/129]:80", "prefix /129 is not a number from 0 to 128");
    expect_bad_endpoint("10.0.0.0/:80", "prefix / is not a number from 0 to 32");
    expect_bad_endpoint("10.1.2.3/8:80",
                        "host bits are set after the prefix (did you mean 10.0.0.0/8?)");
    expect_bad_endpoint("[fd00::1/8]:80",
                        "host bits are set after the prefix (did you mean [fd00::/8]?)");
}

TEST(FormatIp, V4MappedPrintsAsIpv4) {
    EXPECT_EQ(format_ip(v4(127, 0, 0, 2)), "127.0.0.2");
    EXPECT_EQ(format_ip(parse_endpoint("[::1]:1").address), "::1");
    EXPECT_EQ(format_ip(parse_endpoint("[2001:DB8:0:0::1]:1").address), "2001:db8::1");
}

// ---- sizes -------------------------------------------------------------------

TEST(Size, ParsesBytesAndBinaryUnits) {
    EXPECT_EQ(parse_size("0"), 0u);
    EXPECT_EQ(parse_size("65536"), 65536u);
    EXPECT_EQ(parse_size("512K"), 512u * 1024);
    EXPECT_EQ(parse_size("10M"), 10u * 1024 * 1024);
    EXPECT_EQ(parse_size("1G"), 1ull << 30);
    EXPECT_EQ(parse_size("2T"), 2ull << 40);
    EXPECT_EQ(parse_size("18446744073709551615"), UINT64_MAX);
}

TEST(Size, RefusesMalformed) {
    for (const char* text : {"", "K", "10k", "10MB", "10 M", " 10M", "1.5G", "-1", "0x10",
                             "18446744073709551616", "16777216T"}) {
        EXPECT_THROW(parse_size(text), std::invalid_argument) << text;
    }
}

TEST(Size, MessageNamesTheProblem) {
    const std::string expected =
        " (expected bytes or a number and a unit K, M, G or T, powers of 1024: 65536, 512K, 10M, "
        "1G)";
    auto message = [](const std::string& text) {
        try {
            parse_size(text);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(message("10MB"),
              "\"10MB\" is not a size: only one unit letter may follow the "
              "number" +
                  expected);
    EXPECT_EQ(message("10P"), "\"10P\" is not a size: unit 'P' is unknown" + expected);
    EXPECT_EQ(message("M"), "\"M\" is not a size: a number is missing" + expected);
    EXPECT_EQ(message("99999999T"), "\"99999999T\" is not a size: too large" + expected);
}

TEST(Profile, EgressBudgetAsSizeOrNumber) {
    EXPECT_FALSE(parse_profile(base_profile(), kNow).egress_budget.has_value());
    Profile p = parse_profile(with(base_profile(), "/session/egressBudget", "10M"), kNow);
    EXPECT_EQ(p.egress_budget, 10u * 1024 * 1024);
    p = parse_profile(with(base_profile(), "/session/egressBudget", "4096"), kNow);
    EXPECT_EQ(p.egress_budget, 4096u);
    p = parse_profile(with(base_profile(), "/session/egressBudget", 65536), kNow);
    EXPECT_EQ(p.egress_budget, 65536u);
}

TEST(ProfileErrors, EgressBudget) {
    const std::string units =
        " (expected bytes or a number and a unit K, M, G or T, powers of 1024: 65536, 512K, 10M, "
        "1G)";
    expect_error(with(base_profile(), "/session/egressBudget", "10MiB"), "session.egressBudget",
                 "\"10MiB\" is not a size: only one unit letter may follow the number" + units);
    expect_error(with(base_profile(), "/session/egressBudget", "ten"), "session.egressBudget",
                 "\"ten\" is not a size: a number is missing" + units);
    expect_error(with(base_profile(), "/session/egressBudget", "0K"), "session.egressBudget",
                 "is zero (expected a positive size; leave egressBudget out for no budget)");
    expect_error(with(base_profile(), "/session/egressBudget", 0), "session.egressBudget",
                 "is zero (expected a positive size; leave egressBudget out for no budget)");
    expect_error(with(base_profile(), "/session/egressBudget", -5), "session.egressBudget",
                 "is negative (expected a positive size such as \"10M\")");
    expect_error(with(base_profile(), "/session/egressBudget", 1.5), "session.egressBudget",
                 "expected a size string such as \"10M\", got number");
    expect_error(with(base_profile(), "/session/egressBudget", true), "session.egressBudget",
                 "expected a size string such as \"10M\", got boolean");
}

// ---- the document: valid ---------------------------------------------------

TEST(Profile, ParsesEveryField) {
    Profile p = parse_profile(base_profile(), kNow);
    EXPECT_EQ(p.api_version, "cordon/v1");
    EXPECT_EQ(p.identity.agent_id, "support-agent");
    EXPECT_EQ(p.identity.agent_type, "support");
    EXPECT_EQ(p.identity.version, "1.4.2");
    EXPECT_EQ(format_rfc3339(p.identity.expires_at), "2027-01-31T00:00:00Z");
    ASSERT_TRUE(p.max_duration.has_value());
    EXPECT_EQ(p.max_duration->count(), 1800);
    EXPECT_EQ(p.allowed_tools, std::vector<std::string>{"lookup_order"});
    EXPECT_EQ(p.denied_tools, std::vector<std::string>{"bulk_message"});
    EXPECT_EQ(p.approval_required, std::vector<std::string>{"issue_refund"});
    ASSERT_EQ(p.tools.size(), 3u);
    const Tool& lookup = p.tools.at("lookup_order");
    EXPECT_EQ(lookup.name, "lookup_order");
    ASSERT_EQ(lookup.endpoints.size(), 1u);
    EXPECT_EQ(lookup.endpoints[0].address, v4(127, 0, 0, 1));
    EXPECT_EQ(lookup.credentials, std::vector<std::string>{"orders_token"});
    EXPECT_EQ(lookup.risk, "low");
    EXPECT_EQ(lookup.description, "Reads one order");
    EXPECT_EQ(p.tools.at("bulk_message").risk, "high");
    const Credential& cred = p.credentials.at("orders_token");
    EXPECT_EQ(cred.name, "orders_token");
    EXPECT_EQ(cred.source.kind, CredentialSource::Kind::file);
    EXPECT_EQ(cred.source.ref, "token.txt");  // parse_profile leaves paths as written
    EXPECT_EQ(cred.deliver_env, "ORDERS_TOKEN");
    EXPECT_EQ(p.syscalls.baseline, "agent-default");
    EXPECT_EQ(p.syscalls.allow, std::vector<std::string>{"@mount"});
    EXPECT_EQ(p.syscalls.deny, std::vector<std::string>{"ptrace"});
}

TEST(Profile, MinimalProfileTakesDefaults) {
    json doc = json::parse(R"({"apiVersion": "cordon/v1",
      "identity": {"agentId": "a", "agentType": "t", "version": "1",
                   "expiresAt": "2027-01-31T00:00:00Z"}})");
    Profile p = parse_profile(doc, kNow);
    EXPECT_FALSE(p.max_duration.has_value());
    EXPECT_TRUE(p.allowed_tools.empty());
    EXPECT_TRUE(p.tools.empty());
    EXPECT_TRUE(p.credentials.empty());
    EXPECT_EQ(p.syscalls.baseline, "agent-default");
}

TEST(Profile, ToolDefaultsToLowRiskAndNoEndpoints) {
    Profile p = parse_profile(with(base_profile(), "/tools/lookup_order", json::object()), kNow);
    EXPECT_EQ(p.tools.at("lookup_order").risk, "low");
    EXPECT_TRUE(p.tools.at("lookup_order").endpoints.empty());
}

TEST(Profile, ToolMayBeBothAllowedAndDenied) {
    json doc = with(base_profile(), "/deniedTools", {"bulk_message", "lookup_order"});
    EXPECT_NO_THROW(parse_profile(doc, kNow));
}

TEST(Profile, CredentialFromEnvironment) {
    json doc = with(base_profile(), "/credentials/orders_token/source", {{"env", "ORDERS_SECRET"}});
    Profile p = parse_profile(doc, kNow);
    EXPECT_EQ(p.credentials.at("orders_token").source.kind, CredentialSource::Kind::env);
    EXPECT_EQ(p.credentials.at("orders_token").source.ref, "ORDERS_SECRET");
}

// ---- the document: invalid ---------------------------------------------------

TEST(ProfileErrors, RootMustBeAnObject) {
    expect_error(json::array(), "",
                 "expected an object with keys apiVersion, identity, session, allowedTools, "
                 "deniedTools, approvalRequired, tools, credentials, syscalls, dns, filesystem, "
                 "limits, launchers, approval, got array");
}

TEST(Profile, DnsTtlsHaveDefaultsAndBounds) {
    Profile defaults = parse_profile(base_profile(), kNow);
    EXPECT_EQ(defaults.dns.min_ttl, std::chrono::seconds(5));
    EXPECT_EQ(defaults.dns.max_ttl, std::chrono::seconds(3600));
    Profile set =
        parse_profile(with(base_profile(), "/dns", {{"minTtl", "0s"}, {"maxTtl", "2m"}}), kNow);
    EXPECT_EQ(set.dns.min_ttl, std::chrono::seconds(0));
    EXPECT_EQ(set.dns.max_ttl, std::chrono::seconds(120));
    expect_error(with(base_profile(), "/dns", {{"minTtl", "10m"}, {"maxTtl", "1m"}}), "dns.minTtl",
                 "is longer than maxTtl (make minTtl at most maxTtl)");
    expect_error(with(base_profile(), "/dns", {{"maxTtl", "0s"}}), "dns.maxTtl",
                 "is zero (expected a positive duration)");
    expect_error(with(base_profile(), "/dns", {{"ttl", "1m"}}), "dns.ttl",
                 "unknown key (expected one of: minTtl, maxTtl)");
    expect_error(with(base_profile(), "/dns", {{"minTtl", 5}}), "dns.minTtl",
                 "expected a duration string such as \"30s\", got number");
}

TEST(ProfileErrors, UnknownKeysAnywhere) {
    const std::string top =
        "unknown key (expected one of: apiVersion, identity, session, "
        "allowedTools, deniedTools, approvalRequired, tools, credentials, "
        "syscalls, dns, filesystem, limits, launchers, approval)";
    expect_error(with(base_profile(), "/quotas", {{"pids", 1}}), "quotas", top);
    expect_error(with(base_profile(), "/identity/name", "x"), "identity.name",
                 "unknown key (expected one of: agentId, agentType, version, expiresAt)");
    expect_error(with(base_profile(), "/session/idle", "1m"), "session.idle",
                 "unknown key (expected one of: maxDuration, user, passEnvironment, egressBudget)");
    expect_error(with(base_profile(), "/tools/lookup_order/url", "x"), "tools.lookup_order.url",
                 "unknown key (expected one of: endpoints, credentials, risk, description)");
    expect_error(with(base_profile(), "/credentials/orders_token/value", "x"),
                 "credentials.orders_token.value",
                 "unknown key (expected one of: source, deliver, optional)");
    expect_error(with(base_profile(), "/credentials/orders_token/source/vault", "x"),
                 "credentials.orders_token.source.vault",
                 "unknown key (expected one of: file, env, oauth, tokenExchange)");
    expect_error(with(base_profile(), "/credentials/orders_token/deliver/path", "x"),
                 "credentials.orders_token.deliver.path",
                 "unknown key (expected one of: env, file)");
    expect_error(with(base_profile(), "/syscalls/groups", json::array()), "syscalls.groups",
                 "unknown key (expected one of: baseline, allow, deny)");
}

TEST(ProfileErrors, ApiVersion) {
    expect_error(without(base_profile(), "", "apiVersion"), "apiVersion",
                 "missing (\"cordon/v1\" is required)");
    expect_error(with(base_profile(), "/apiVersion", "cordon/v2"), "apiVersion",
                 "\"cordon/v2\" is not supported (expected \"cordon/v1\")");
    expect_error(with(base_profile(), "/apiVersion", 1), "apiVersion",
                 "expected the string \"cordon/v1\", got number");
}

TEST(ProfileErrors, IdentityFieldsAreMandatory) {
    expect_error(without(base_profile(), "", "identity"), "identity",
                 "missing (an identity object with agentId, agentType, version, expiresAt is "
                 "required)");
    expect_error(with(base_profile(), "/identity", "support-agent"), "identity",
                 "expected an object with keys agentId, agentType, version, expiresAt, got string");
    expect_error(without(base_profile(), "/identity", "agentId"), "identity.agentId",
                 "missing (an agent id such as \"support-agent\" is required)");
    expect_error(without(base_profile(), "/identity", "agentType"), "identity.agentType",
                 "missing (an agent type such as \"support\" is required)");
    expect_error(without(base_profile(), "/identity", "version"), "identity.version",
                 "missing (a version such as \"1.4.2\" is required)");
    expect_error(without(base_profile(), "/identity", "expiresAt"), "identity.expiresAt",
                 "missing (an RFC 3339 time such as 2027-01-31T00:00:00Z is required)");
}

TEST(ProfileErrors, IdentityNames) {
    const std::string expected =
        "(expected 1-64 letters, digits, '.', '_', '+' or '-', starting "
        "with a letter or digit)";
    expect_error(with(base_profile(), "/identity/agentId", "support agent"), "identity.agentId",
                 "\"support agent\" is not valid " + expected);
    expect_error(with(base_profile(), "/identity/agentId", ""), "identity.agentId",
                 "\"\" is not valid " + expected);
    expect_error(with(base_profile(), "/identity/agentId", std::string(65, 'a')),
                 "identity.agentId", "\"" + std::string(65, 'a') + "\" is not valid " + expected);
    expect_error(with(base_profile(), "/identity/version", 1.4), "identity.version",
                 "expected a string of 1-64 letters, digits, '.', '_', '+' or '-', starting with "
                 "a letter or digit, got number");
}

TEST(ProfileErrors, ExpiresAt) {
    expect_error(with(base_profile(), "/identity/expiresAt", "2027-01-31"), "identity.expiresAt",
                 "\"2027-01-31\" is not an RFC 3339 date-time (expected RFC 3339 such as "
                 "2027-01-31T00:00:00Z)");
    expect_error(with(base_profile(), "/identity/expiresAt", 1800000000), "identity.expiresAt",
                 "expected an RFC 3339 time string, got number");
    expect_error(with(base_profile(), "/identity/expiresAt", "2026-01-01T00:00:00Z"),
                 "identity.expiresAt",
                 "expired at 2026-01-01T00:00:00Z (issue the agent a profile with a later "
                 "expiresAt)");
    // Not after now is expired; one second later is not.
    expect_error(with(base_profile(), "/identity/expiresAt", "2026-06-01T00:00:00Z"),
                 "identity.expiresAt",
                 "expired at 2026-06-01T00:00:00Z (issue the agent a profile with a later "
                 "expiresAt)");
    EXPECT_NO_THROW(
        parse_profile(with(base_profile(), "/identity/expiresAt", "2026-06-01T00:00:01Z"), kNow));
}

TEST(ProfileErrors, MaxDuration) {
    expect_error(with(base_profile(), "/session/maxDuration", "30 minutes"), "session.maxDuration",
                 "\"30 minutes\" is not a duration: unit ' ' is unknown or out of order (expected "
                 "a number and unit, largest first: 90s, 30m, 1h30m, 1d)");
    expect_error(with(base_profile(), "/session/maxDuration", "0s"), "session.maxDuration",
                 "\"0s\" is zero (expected a positive duration)");
    // Past a year, start + maxDuration in nanoseconds would overflow by 100000d.
    for (const char* d : {"367d", "100000d", "366d1s"})
        expect_error(with(base_profile(), "/session/maxDuration", d), "session.maxDuration",
                     std::string("\"") + d + "\" is longer than a session may last (366d)");
    EXPECT_EQ(parse_profile(with(base_profile(), "/session/maxDuration", "366d"), kNow)
                  .max_duration->count(),
              366 * 24 * 3600);
    expect_error(with(base_profile(), "/session/maxDuration", 1800), "session.maxDuration",
                 "expected a duration string such as \"30m\", got number");
    expect_error(with(base_profile(), "/session", "30m"), "session",
                 "expected an object with keys maxDuration, user, passEnvironment, egressBudget, "
                 "got string");
}

TEST(Time, OffsetsAndRangeAreChecked) {
    EXPECT_THROW(parse_rfc3339("2027-01-31T00:00:00+99:99"), std::invalid_argument);
    EXPECT_THROW(parse_rfc3339("2027-01-31T00:00:00+24:00"), std::invalid_argument);
    EXPECT_THROW(parse_rfc3339("2027-01-31T00:00:00"), std::invalid_argument);
    EXPECT_NO_THROW(parse_rfc3339("2027-01-31T00:00:00-23:59"));
    try {
        parse_rfc3339("9999-12-31T00:00:00Z");
        FAIL() << "no error";
    } catch (const std::invalid_argument& e) {
        EXPECT_STREQ(e.what(),
                     "\"9999-12-31T00:00:00Z\" is too far ahead (an expiry must be before the "
                     "year 2200)");
    }
}

TEST(ProfileErrors, SessionUser) {
    expect_error(with(base_profile(), "/session/user", "Alice Smith"), "session.user",
                 "\"Alice Smith\" is not a user name or numeric uid");
    expect_error(with(base_profile(), "/session/user", 1000), "session.user",
                 "expected a user name or numeric uid, got number");
    auto p = parse_profile(with(base_profile(), "/session/user", "cordon-agent"), kNow);
    EXPECT_EQ(p.user, "cordon-agent");
    EXPECT_EQ(parse_profile(with(base_profile(), "/session/user", "1000"), kNow).user, "1000");
    EXPECT_FALSE(parse_profile(base_profile(), kNow).user.has_value());
    // (uid_t)-1 would leave a root launcher's ids unchanged; 2^32 would wrap to root.
    for (const char* uid : {"4294967295", "4294967296", "9999999999"})
        expect_error(with(base_profile(), "/session/user", uid), "session.user",
                     std::string("uid ") + uid + " is out of range (0 to 4294967294)");
    EXPECT_EQ(parse_profile(with(base_profile(), "/session/user", "4294967294"), kNow).user,
              "4294967294");
}

TEST(ProfileErrors, ToolLists) {
    expect_error(with(base_profile(), "/allowedTools", "lookup_order"), "allowedTools",
                 "expected an array of strings, got string");
    expect_error(with(base_profile(), "/deniedTools", {"bulk_message", 3}), "deniedTools[1]",
                 "expected a string of 1-64 letters, digits, '_' or '-', starting with a letter "
                 "or '_', got number");
    expect_error(with(base_profile(), "/allowedTools", {"lookup_order", "lookup_order"}),
                 "allowedTools[1]",
                 "\"lookup_order\" is listed twice (first at allowedTools[0]; list it once)");
}

TEST(ProfileErrors, NamedToolsMustBeDefined) {
    expect_error(with(base_profile(), "/allowedTools", {"lookup_order", "send_email"}),
                 "allowedTools[1]",
                 "tool \"send_email\" is not defined (define it under tools or remove it from "
                 "allowedTools)");
    expect_error(with(base_profile(), "/deniedTools", {"drop_tables"}), "deniedTools[0]",
                 "tool \"drop_tables\" is not defined (define it under tools or remove it from "
                 "deniedTools)");
    expect_error(with(base_profile(), "/approvalRequired", {"wire_money"}), "approvalRequired[0]",
                 "tool \"wire_money\" is not defined (define it under tools or remove it from "
                 "approvalRequired)");
}

TEST(ProfileErrors, ToolDefinitions) {
    expect_error(with(base_profile(), "/tools", json::array()), "tools",
                 "expected an object of named entries, got array");
    expect_error(with(base_profile(), "/tools/bad name", json::object()), "tools.bad name",
                 "is not a valid name (expected 1-64 letters, digits, '_' or '-', starting with "
                 "a letter or '_')");
    expect_error(with(base_profile(), "/tools/lookup_order", "127.0.0.1:18080"),
                 "tools.lookup_order",
                 "expected an object with keys endpoints, credentials, risk, description, got "
                 "string");
    expect_error(with(base_profile(), "/tools/lookup_order/endpoints", "127.0.0.1:18080"),
                 "tools.lookup_order.endpoints",
                 "expected an array of endpoint strings, got string");
    expect_error(with(base_profile(), "/tools/lookup_order/endpoints/1", 18080),
                 "tools.lookup_order.endpoints[1]",
                 "expected an endpoint string such as \"10.0.0.1:443\", got number");
    expect_error(with(base_profile(), "/tools/lookup_order/endpoints/1", "10.1.2.3/8:443"),
                 "tools.lookup_order.endpoints[1]",
                 "\"10.1.2.3/8:443\" is not an endpoint: host bits are set after the prefix (did "
                 "you mean 10.0.0.0/8?)");
    expect_error(with(base_profile(), "/tools/bulk_message/risk", "critical"),
                 "tools.bulk_message.risk",
                 "\"critical\" is not a risk (expected low, medium or high)");
    expect_error(with(base_profile(), "/tools/bulk_message/description", 1),
                 "tools.bulk_message.description", "expected a string, got number");
}

TEST(ProfileErrors, ToolCredentialsMustBeDefined) {
    expect_error(with(base_profile(), "/tools/bulk_message/credentials", {"sms_key"}),
                 "tools.bulk_message.credentials[0]",
                 "credential \"sms_key\" is not defined (define it under credentials or remove "
                 "it)");
}

TEST(ProfileErrors, CredentialSourceAndDelivery) {
    const std::string cred = "/credentials/orders_token";
    expect_error(without(base_profile(), cred, "source"), "credentials.orders_token.source",
                 "missing (a source object such as {\"file\": PATH} is required)");
    const std::string one_of =
        "expected exactly one of file, env, oauth, tokenExchange ({\"file\": PATH}, {\"env\": "
        "VARIABLE}, {\"oauth\": {...}} or {\"tokenExchange\": {...}})";
    expect_error(with(base_profile(), cred + "/source", {{"file", "t"}, {"env", "T"}}),
                 "credentials.orders_token.source", one_of);
    expect_error(with(base_profile(), cred + "/source", json::object()),
                 "credentials.orders_token.source", one_of);
    expect_error(with(base_profile(), cred + "/source/file", ""),
                 "credentials.orders_token.source.file", "is empty (expected a file path)");
    const std::string env_expected =
        "(expected an environment variable name: letters, digits "
        "and '_', not starting with a digit)";
    expect_error(with(base_profile(), cred + "/source", {{"env", "1TOKEN"}}),
                 "credentials.orders_token.source.env", "\"1TOKEN\" is not valid " + env_expected);
    expect_error(with(base_profile(), cred + "/deliver/env", "ORDERS-TOKEN"),
                 "credentials.orders_token.deliver.env",
                 "\"ORDERS-TOKEN\" is not valid " + env_expected);
    const std::string deliver_one_of =
        "expected exactly one of env, file ({\"env\": VARIABLE} or {\"file\": NAME}; leave "
        "deliver out for a file named as the credential)";
    expect_error(without(base_profile(), cred + "/deliver", "env"),
                 "credentials.orders_token.deliver", deliver_one_of);
    expect_error(with(base_profile(), cred + "/deliver", {{"env", "T"}, {"file", "t"}}),
                 "credentials.orders_token.deliver", deliver_one_of);
    expect_error(with(base_profile(), cred + "/deliver", {{"file", "../token"}}),
                 "credentials.orders_token.deliver.file",
                 "\"../token\" is not valid (expected 1-64 letters, digits, '_' or '-', starting "
                 "with a letter or '_')");
}

TEST(ProfileCredentials, DeliveryIsAFileNamedAsTheCredentialByDefault) {
    const std::string cred = "/credentials/orders_token";
    auto p = parse_profile(without(base_profile(), cred, "deliver"), kNow);
    EXPECT_EQ(p.credentials.at("orders_token").deliver_file, "orders_token");
    EXPECT_EQ(p.credentials.at("orders_token").deliver_env, "");
    p = parse_profile(with(base_profile(), cred + "/deliver", {{"file", "orders"}}), kNow);
    EXPECT_EQ(p.credentials.at("orders_token").deliver_file, "orders");
    EXPECT_EQ(p.credentials.at("orders_token").deliver_env, "");
}

TEST(ProfileCredentials, OAuthSourceWithItsDefaults) {
    json oauth = {{"tokenUrl", "https://as.test/token"},
                  {"clientId", "cordon"},
                  {"clientSecretFile", "/etc/cordon/secret"}};
    auto p = parse_profile(
        with(base_profile(), "/credentials/orders_token/source", {{"oauth", oauth}}), kNow);
    const auto& src = p.credentials.at("orders_token").source;
    EXPECT_EQ(src.kind, CredentialSource::Kind::oauth);
    EXPECT_EQ(src.oauth.token_url, "https://as.test/token");
    EXPECT_EQ(src.oauth.client_id, "cordon");
    EXPECT_EQ(src.oauth.client_secret_file, "/etc/cordon/secret");
    EXPECT_EQ(src.oauth.auth, "client_secret_basic");
    EXPECT_EQ(src.oauth.scope, "");
    EXPECT_EQ(src.oauth.revocation_url, "");
}

TEST(ProfileErrors, OAuthSource) {
    const std::string at = "/credentials/orders_token/source";
    json oauth = {{"tokenUrl", "https://as.test/token"},
                  {"clientId", "cordon"},
                  {"clientSecretFile", "/etc/cordon/secret"}};
    auto with_oauth = [&](const std::string& key, json value) {
        json o = oauth;
        if (value.is_null())
            o.erase(key);
        else
            o[key] = value;
        return with(base_profile(), at, {{"oauth", o}});
    };
    expect_error(with_oauth("tokenUrl", nullptr), "credentials.orders_token.source.oauth",
                 "expected exactly one of tokenUrl, issuer (the token endpoint, or the issuer "
                 "whose RFC 8414 metadata names it)");
    expect_error(with_oauth("issuer", "https://as.test"), "credentials.orders_token.source.oauth",
                 "expected exactly one of tokenUrl, issuer (the token endpoint, or the issuer "
                 "whose RFC 8414 metadata names it)");
    expect_error(with_oauth("issuer", "as.test"), "credentials.orders_token.source.oauth.issuer",
                 "\"as.test\" is not an http:// or https:// URL");
    expect_error(with_oauth("caBundle", ""), "credentials.orders_token.source.oauth.caBundle",
                 "is empty");
    expect_error(with_oauth("tokenUrl", "as.test/token"),
                 "credentials.orders_token.source.oauth.tokenUrl",
                 "\"as.test/token\" is not an http:// or https:// URL");
    expect_error(with_oauth("clientId", ""), "credentials.orders_token.source.oauth.clientId",
                 "is empty");
    expect_error(with_oauth("auth", "tls_client_auth"),
                 "credentials.orders_token.source.oauth.auth",
                 "\"tls_client_auth\" is not supported (expected client_secret_basic, "
                 "client_secret_post or private_key_jwt)");
    expect_error(with_oauth("auth", "private_key_jwt"),
                 "credentials.orders_token.source.oauth.privateKeyFile",
                 "missing (required with auth private_key_jwt)");
    expect_error(with_oauth("clientSecretFile", nullptr),
                 "credentials.orders_token.source.oauth.clientSecretFile",
                 "missing (required with auth client_secret_basic)");
    expect_error(with_oauth("privateKeyFile", "/etc/cordon/key.pem"),
                 "credentials.orders_token.source.oauth.privateKeyFile",
                 "is not used with auth client_secret_basic (remove it)");
    expect_error(with_oauth("keyId", "k1"), "credentials.orders_token.source.oauth.keyId",
                 "is used only with auth private_key_jwt");
}

TEST(ProfileCredentials, OAuthSourceFromAnIssuerWithACaBundleOptional) {
    json oauth = {{"issuer", "https://as.test/tenant"},
                  {"clientId", "cordon"},
                  {"clientSecretFile", "/etc/cordon/secret"},
                  {"caBundle", "/etc/cordon/ca.pem"}};
    json doc = with(base_profile(), "/credentials/orders_token/source", {{"oauth", oauth}});
    doc = with(doc, "/credentials/orders_token/optional", true);
    auto p = parse_profile(doc, kNow);
    const auto& cred = p.credentials.at("orders_token");
    EXPECT_EQ(cred.source.oauth.issuer, "https://as.test/tenant");
    EXPECT_EQ(cred.source.oauth.token_url, "");
    EXPECT_EQ(cred.source.oauth.ca_bundle, "/etc/cordon/ca.pem");
    EXPECT_TRUE(cred.optional);
    EXPECT_FALSE(parse_profile(base_profile(), kNow).credentials.at("orders_token").optional);
}

TEST(ProfileCredentials, PrivateKeyJwt) {
    json oauth = {{"tokenUrl", "https://as.test/token"},
                  {"clientId", "cordon"},
                  {"auth", "private_key_jwt"},
                  {"privateKeyFile", "/etc/cordon/key.pem"},
                  {"keyId", "k1"}};
    auto p = parse_profile(
        with(base_profile(), "/credentials/orders_token/source", {{"tokenExchange", oauth}}), kNow);
    const auto& src = p.credentials.at("orders_token").source;
    EXPECT_EQ(src.kind, CredentialSource::Kind::token_exchange);
    EXPECT_EQ(src.oauth.auth, "private_key_jwt");
    EXPECT_EQ(src.oauth.private_key_file, "/etc/cordon/key.pem");
    EXPECT_EQ(src.oauth.key_id, "k1");
    EXPECT_EQ(src.oauth.client_secret_file, "");
}

TEST(ProfileErrors, OptionalIsABooleanOfAnIssuedToken) {
    expect_error(with(base_profile(), "/credentials/orders_token/optional", "yes"),
                 "credentials.orders_token.optional", "expected true or false, got string");
    expect_error(with(base_profile(), "/credentials/orders_token/optional", true),
                 "credentials.orders_token.optional",
                 "applies to oauth and tokenExchange sources only (a file or variable that cannot "
                 "be read stops the launch; remove optional)");
}

TEST(ProfileErrors, TwoCredentialsInOneFile) {
    json doc = with(base_profile(), "/credentials/orders_token/deliver", {{"file", "another"}});
    doc = with(doc, "/credentials/another", {{"source", {{"env", "X"}}}});
    expect_error(doc, "credentials.orders_token.deliver.file",
                 "\"another\" is already delivered by credential \"another\" (use another file "
                 "name)");
}

TEST(ProfileErrors, TwoCredentialsInOneVariable) {
    json doc = with(base_profile(), "/credentials/another",
                    {{"source", {{"env", "X"}}}, {"deliver", {{"env", "ORDERS_TOKEN"}}}});
    expect_error(doc, "credentials.orders_token.deliver.env",
                 "\"ORDERS_TOKEN\" is already delivered by credential \"another\" (use another "
                 "variable)");
}

// issue_refund of base_profile() with credential refund_token delivered as `deliver`.
json with_refund_token(json deliver) {
    json doc = with(base_profile(), "/tools/issue_refund/credentials", {"refund_token"});
    json cred = {{"source", {{"file", "refund.txt"}}}};
    if (!deliver.is_null()) cred["deliver"] = std::move(deliver);
    return with(doc, "/credentials/refund_token", cred);
}

TEST(ProfileErrors, CredentialOfAnApprovalRequiredToolIsNotDeliveredByEnv) {
    expect_error(with_refund_token({{"env", "REFUND_TOKEN"}}),
                 "credentials.refund_token.deliver.env",
                 "\"REFUND_TOKEN\" cannot reach the agent: issue_refund is in approvalRequired, "
                 "so its credential is issued only when a human grants it, after the agent "
                 "started, and the agent's environment cannot change then (deliver it as a "
                 "file: {\"file\": \"refund_token\"}, or leave deliver out)");
}

TEST(ProfileCredentials, CredentialOfAnApprovalRequiredToolIsAFile) {
    auto p = parse_profile(with_refund_token({{"file", "refund"}}), kNow);
    EXPECT_EQ(p.credentials.at("refund_token").deliver_file, "refund");
    p = parse_profile(with_refund_token(nullptr), kNow);
    EXPECT_EQ(p.credentials.at("refund_token").deliver_file, "refund_token");
    EXPECT_EQ(grant_only_credentials(p), std::set<std::string>{"refund_token"});
}

// A credential some open tool uses reaches the agent at its start: env is fine.
TEST(ProfileCredentials, CredentialSharedWithAnOpenToolMayBeDeliveredByEnv) {
    json doc = with(base_profile(), "/tools/issue_refund/credentials", {"orders_token"});
    auto p = parse_profile(doc, kNow);
    EXPECT_EQ(p.credentials.at("orders_token").deliver_env, "ORDERS_TOKEN");
    EXPECT_TRUE(grant_only_credentials(p).empty());
}

// Deny wins: a tool both denied and approval-required never opens.
TEST(ProfileCredentials, DeniedToolOpensByNoGrant) {
    json doc = with_refund_token({{"env", "REFUND_TOKEN"}});
    doc = with(doc, "/deniedTools", {"bulk_message", "issue_refund"});
    auto p = parse_profile(doc, kNow);
    EXPECT_TRUE(grantable_tools(p).empty());
    EXPECT_TRUE(grant_only_credentials(p).empty());
}

TEST(ProfileCredentials, GrantOnlyCredentialsOfEveryGrantableTool) {
    json doc = with_refund_token(nullptr);
    doc = with(doc, "/tools/cancel_order",
               {{"endpoints", {"127.0.0.5:443"}}, {"credentials", {"refund_token", "cancel"}}});
    doc = with(doc, "/credentials/cancel", {{"source", {{"env", "CANCEL"}}}});
    // Also in allowedTools: approvalRequired still closes it until a grant.
    doc = with(doc, "/allowedTools", {"lookup_order", "cancel_order"});
    doc = with(doc, "/approvalRequired", {"issue_refund", "cancel_order"});
    auto p = parse_profile(doc, kNow);
    EXPECT_EQ(grantable_tools(p), (std::vector<std::string>{"issue_refund", "cancel_order"}));
    EXPECT_EQ(grant_only_credentials(p), (std::set<std::string>{"cancel", "refund_token"}));
}

TEST(ProfileErrors, Syscalls) {
    expect_error(with(base_profile(), "/syscalls/baseline", "agent default"), "syscalls.baseline",
                 "\"agent default\" is not valid (expected 1-64 letters, digits, '_' or '-', "
                 "starting with a letter or '_')");
    expect_error(with(base_profile(), "/syscalls/allow", {"Ptrace"}), "syscalls.allow[0]",
                 "\"Ptrace\" is not valid (expected a syscall name such as \"ptrace\" or a group "
                 "such as \"@mount\")");
    // Like tools, a syscall may be in both lists: deny wins in the seccomp layer.
    EXPECT_NO_THROW(parse_profile(with(base_profile(), "/syscalls/allow", {"ptrace"}), kNow));
}

// ---- load_profile -------------------------------------------------------------

class LoadProfile : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("cordon-profile-test-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_ / "profiles");
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string write(const std::string& text) {
        std::string file = (dir_ / "profiles" / "p.json").string();
        std::ofstream(file) << text;
        return file;
    }

    std::string load_error(const std::string& file) {
        try {
            load_profile(file, kNow);
        } catch (const ProfileError& e) {
            return e.what();
        }
        return "no error";
    }

    std::filesystem::path dir_;
};

TEST_F(LoadProfile, RelativeCredentialFilesResolveAgainstTheProfileDirectory) {
    json doc = with(base_profile(), "/credentials/abs",
                    {{"source", {{"file", "/run/secret"}}}, {"deliver", {{"env", "ABS"}}}});
    doc["credentials"]["from_env"] = {{"source", {{"env", "SECRET"}}}, {"deliver", {{"env", "E"}}}};
    doc["credentials"]["orders_token"]["source"]["file"] = "../tokens/t.txt";
    Profile p = load_profile(write(doc.dump()), kNow);
    EXPECT_EQ(p.credentials.at("orders_token").source.ref, (dir_ / "tokens" / "t.txt").string());
    EXPECT_EQ(p.credentials.at("abs").source.ref, "/run/secret");
    EXPECT_EQ(p.credentials.at("from_env").source.ref, "SECRET");
}

TEST_F(LoadProfile, SyntaxErrorNamesFileLineAndColumn) {
    std::string file = write("{\n  \"apiVersion\": \"cordon/v1\",\n  \"identity\": }\n");
    std::string message = load_error(file);
    EXPECT_EQ(message.rfind(file + ": parse error at line 3, column 15: syntax error", 0), 0u)
        << message;
}

TEST_F(LoadProfile, ValidationErrorStartsWithFileName) {
    std::string file = write(without(base_profile(), "/identity", "expiresAt").dump());
    EXPECT_EQ(load_error(file), file +
                                    ": identity.expiresAt: missing (an RFC 3339 time such as "
                                    "2027-01-31T00:00:00Z is required)");
}

TEST_F(LoadProfile, DuplicateKeysAreRefusedWithTheirPath) {
    std::string text = base_profile().dump();
    std::string dup = R"({"allowedTools": ["bulk_message"], )" + text.substr(1);
    std::string file = write(dup);
    EXPECT_EQ(load_error(file),
              file + ": allowedTools: duplicate key (each key may appear once in an object)");

    file = write(R"({"tools": {"t": {"risk": "low", "risk": "high"}}})");
    EXPECT_EQ(load_error(file),
              file + ": tools.t.risk: duplicate key (each key may appear once in an object)");

    file = write(R"({"x": [1, [2], {"a": 1, "a": 2}]})");
    EXPECT_EQ(load_error(file),
              file + ": x[2].a: duplicate key (each key may appear once in an object)");
}

TEST_F(LoadProfile, MissingFileAndDirectory) {
    std::string missing = (dir_ / "nope.json").string();
    EXPECT_EQ(load_error(missing),
              missing +
                  ": cannot open: No such file or directory (check the path and its "
                  "permissions)");
    std::string directory = dir_.string();
    EXPECT_EQ(load_error(directory), directory + ": is a directory (expected a profile JSON file)");
}

}  // namespace
}  // namespace cordon::profile

namespace cordon::profile {
namespace {

TEST(ProfileLaunchers, UsersAndGroupsAsWritten) {
    auto doc = with(base_profile(), "/launchers",
                    json{{"users", {"alice", "1001"}}, {"groups", {"agents"}}});
    auto p = parse_profile(doc, kNow);
    EXPECT_EQ(p.launchers.users, (std::vector<std::string>{"alice", "1001"}));
    EXPECT_EQ(p.launchers.groups, (std::vector<std::string>{"agents"}));
    EXPECT_TRUE(parse_profile(base_profile(), kNow).launchers.users.empty());
}

TEST(ProfileErrors, Launchers) {
    expect_error(with(base_profile(), "/launchers", json{{"roles", json::array()}}),
                 "launchers.roles", "unknown key (expected one of: users, groups)");
    expect_error(with(base_profile(), "/launchers/users", json{"Alice Smith"}),
                 "launchers.users[0]", "\"Alice Smith\" is not a user name or numeric id");
    expect_error(with(base_profile(), "/launchers/groups", json{"agents", "agents"}),
                 "launchers.groups[1]", "\"agents\" is listed twice (list it once)");
    expect_error(with(base_profile(), "/launchers/users", "alice"), "launchers.users",
                 "expected an array of user names or numeric ids, got string");
}

}  // namespace
}  // namespace cordon::profile
