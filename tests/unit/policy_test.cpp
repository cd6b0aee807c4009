// SPDX-License-Identifier: Apache-2.0
// The policy layer: which tools open, the rules their endpoints become, the
// credentials they need, the deadline, the --check JSON and attribution of
// denied destinations. Hostnames go through a fake resolver: no DNS here.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "policy/policy.h"

namespace cordon::policy {
namespace {

using nlohmann::json;
using profile::Ip6;
using profile::parse_endpoint;
using profile::parse_profile;
using profile::parse_rfc3339;
using profile::Profile;
using profile::ProfileError;
using profile::Protocol;
using profile::TimePoint;

const TimePoint kNow = parse_rfc3339("2026-06-01T00:00:00Z");

Ip6 v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d};
}

Ip6 ip(const std::string& literal) {
    return parse_endpoint(literal.find(':') != std::string::npos ? "[" + literal + "]:1"
                                                                 : literal + ":1")
        .address;
}

json support_doc() {
    return json::parse(R"({
      "apiVersion": "cordon/v1",
      "identity": {"agentId": "support-agent", "agentType": "support", "version": "1.4.2",
                   "expiresAt": "2027-01-31T00:00:00Z"},
      "session": {"maxDuration": "30m"},
      "allowedTools": ["lookup_order", "bulk_message", "issue_refund"],
      "deniedTools": ["bulk_message", "delete_account"],
      "approvalRequired": ["issue_refund"],
      "tools": {
        "lookup_order": {"endpoints": ["127.0.0.1:18080"], "credentials": ["orders_token"]},
        "bulk_message": {"endpoints": ["127.0.0.2:18081"], "credentials": ["sms_key"],
                         "risk": "high"},
        "delete_account": {"endpoints": ["127.0.0.3:18082"], "risk": "high"},
        "issue_refund": {"endpoints": ["127.0.0.4:18083"], "risk": "high"},
        "export_data": {"endpoints": ["10.0.0.0/8:443"], "risk": "medium"}
      },
      "credentials": {
        "orders_token": {"source": {"file": "/run/orders"}, "deliver": {"env": "ORDERS_TOKEN"}},
        "sms_key": {"source": {"env": "SMS_KEY"}, "deliver": {"env": "SMS_KEY"}}
      }
    })");
}

json research_doc() {
    return json::parse(R"({
      "apiVersion": "cordon/v1",
      "identity": {"agentId": "research", "agentType": "research", "version": "2",
                   "expiresAt": "2026-06-01T00:10:00Z"},
      "session": {"maxDuration": "1h"},
      "allowedTools": ["search", "fetch"],
      "deniedTools": ["upload"],
      "tools": {
        "search": {"endpoints": ["search.example:443", "[::1]:18091"],
                   "credentials": ["api_key"]},
        "fetch": {"endpoints": ["udp://[fd00::/8]:5000-5010", "tcp://10.20.0.0/16:8443"],
                  "credentials": ["api_key"]},
        "upload": {"endpoints": ["upload.example:443"]}
      },
      "credentials": {
        "api_key": {"source": {"env": "API_KEY"}, "deliver": {"env": "API_KEY"}}
      }
    })");
}

// Answers from a table and counts the questions.
struct FakeResolver {
    std::map<std::string, std::vector<Ip6>> answers;
    std::vector<std::string> asked;

    Resolver resolver() {
        return [this](const std::string& name) -> Result<std::vector<Ip6>> {
            asked.push_back(name);
            auto it = answers.find(name);
            if (it == answers.end()) return plain_error("cannot resolve \"" + name + "\": unknown");
            return it->second;
        };
    }
};

Resolver no_dns() {
    return [](const std::string& name) -> Result<std::vector<Ip6>> {
        ADD_FAILURE() << "resolver called for " << name;
        return plain_error("no DNS in this test");
    };
}

TEST(Policy, DenyWinsApprovalStartsClosedAndUnlistedIsDenied) {
    Profile p = parse_profile(support_doc(), kNow);
    EffectivePolicy policy = compute_policy(p, kNow, no_dns());
    EXPECT_EQ(policy.allowed_tools, std::vector<std::string>{"lookup_order"});
    std::map<std::string, std::string> denied;
    for (const DeniedTool& t : policy.denied_tools) denied[t.name] = to_string(t.reason);
    EXPECT_EQ(denied, (std::map<std::string, std::string>{
                          {"bulk_message", "denied"},
                          {"delete_account", "denied"},
                          {"export_data", "not-allowed"},
                          {"issue_refund", "approval-required"},
                      }));
}

TEST(Policy, RulesOnlyForAllowedTools) {
    EffectivePolicy policy = compute_policy(parse_profile(support_doc(), kNow), kNow, no_dns());
    ASSERT_EQ(policy.rules.size(), 1u);
    const netfilter::Rule& rule = policy.rules[0];
    EXPECT_EQ(rule.address, v4(127, 0, 0, 1));
    EXPECT_EQ(rule.prefix_len, 128);
    EXPECT_EQ(rule.ports.first, 18080);
    EXPECT_EQ(rule.ports.last, 18080);
    EXPECT_EQ(rule.protocols, 1);  // CORDON_PROTO_TCP
    ASSERT_EQ(policy.endpoints.size(), 1u);
    EXPECT_EQ(policy.endpoints[0].tool, "lookup_order");
}

TEST(Policy, CredentialsOnlyForAllowedToolsDistinctAndSorted) {
    EffectivePolicy policy = compute_policy(parse_profile(support_doc(), kNow), kNow, no_dns());
    EXPECT_EQ(policy.credentials, std::vector<std::string>{"orders_token"});

    FakeResolver dns{{{"search.example", {v4(192, 0, 2, 1)}}}, {}};
    EffectivePolicy research =
        compute_policy(parse_profile(research_doc(), kNow), kNow, dns.resolver());
    EXPECT_EQ(research.credentials, std::vector<std::string>{"api_key"});
}

// profile::grantable_tools and grant_only_credentials follow the policy's
// rules: a grantable tool is one the policy closes as approval-required,
// and no credential only a grant issues is among those issued at the start.
TEST(Policy, GrantOnlyCredentialsAreNoneOfTheStartsAndGrantableToolsAreApprovalRequired) {
    json doc = support_doc();
    doc["approvalRequired"] = {"issue_refund", "bulk_message", "export_data"};
    doc["tools"]["issue_refund"]["credentials"] = {"orders_token", "refund_key"};
    doc["tools"]["export_data"]["credentials"] = {"refund_key"};
    doc["credentials"]["refund_key"] = {{"source", {{"file", "/run/refund"}}}};
    Profile profile = parse_profile(doc, kNow);
    EffectivePolicy policy = compute_policy(profile, kNow, no_dns());

    std::vector<std::string> approval;
    for (const auto& d : policy.denied_tools)
        if (d.reason == DenyReason::approval_required) approval.push_back(d.name);
    auto grantable = profile::grantable_tools(profile);
    std::sort(grantable.begin(), grantable.end());
    EXPECT_EQ(grantable, approval);
    EXPECT_EQ(profile::grant_only_credentials(profile), std::set<std::string>{"refund_key"});
    EXPECT_EQ(policy.credentials, std::vector<std::string>{"orders_token"});
}

TEST(Policy, HostnamesBecomeOneRulePerAddressAndDeniedNamesAreNotResolved) {
    Ip6 six = ip("2001:db8::7");
    FakeResolver dns{{{"search.example", {v4(192, 0, 2, 1), six}}}, {}};
    EffectivePolicy policy =
        compute_policy(parse_profile(research_doc(), kNow), kNow, dns.resolver());
    EXPECT_EQ(dns.asked, std::vector<std::string>{"search.example"});  // not upload.example

    // fetch's two endpoints, then search's: tools in name order.
    ASSERT_EQ(policy.rules.size(), 5u);
    EXPECT_EQ(policy.rules[0].address, ip("fd00::"));
    EXPECT_EQ(policy.rules[0].prefix_len, 8);
    EXPECT_EQ(policy.rules[0].ports.first, 5000);
    EXPECT_EQ(policy.rules[0].ports.last, 5010);
    EXPECT_EQ(policy.rules[0].protocols, 2);  // CORDON_PROTO_UDP
    EXPECT_EQ(policy.rules[1].address, v4(10, 20, 0, 0));
    EXPECT_EQ(policy.rules[1].prefix_len, 96 + 16);
    EXPECT_EQ(policy.rules[2].address, v4(192, 0, 2, 1));
    EXPECT_EQ(policy.rules[2].prefix_len, 128);
    EXPECT_EQ(policy.rules[2].ports.first, 443);
    EXPECT_EQ(policy.rules[3].address, six);
    EXPECT_EQ(policy.rules[3].prefix_len, 128);
    EXPECT_EQ(policy.rules[4].address, ip("::1"));

    ASSERT_EQ(policy.endpoints.size(), 4u);
    EXPECT_EQ(policy.endpoints[2].endpoint.hostname, "search.example");
    EXPECT_EQ(policy.endpoints[2].addresses, (std::vector<Ip6>{v4(192, 0, 2, 1), six}));
}

TEST(Policy, UnresolvableNameNamesToolAndEndpoint) {
    FakeResolver dns;
    try {
        compute_policy(parse_profile(research_doc(), kNow), kNow, dns.resolver());
        FAIL() << "no error";
    } catch (const ProfileError& e) {
        EXPECT_EQ(e.path(), "tools.search.endpoints[0]");
        EXPECT_STREQ(e.what(),
                     "tools.search.endpoints[0]: cannot resolve \"search.example\": unknown");
    }
}

TEST(Policy, NameWithNoAddressIsAnError) {
    FakeResolver dns{{{"search.example", {}}}, {}};
    try {
        compute_policy(parse_profile(research_doc(), kNow), kNow, dns.resolver());
        FAIL() << "no error";
    } catch (const ProfileError& e) {
        EXPECT_STREQ(
            e.what(),
            "tools.search.endpoints[0]: \"search.example\" resolved to no address (check the "
            "name, or write the endpoint as an address or a *.suffix wildcard, learned as the "
            "agent asks)");
    }
}

TEST(Policy, DeadlineIsTheEarlierOfExpiryAndMaxDuration) {
    Profile support = parse_profile(support_doc(), kNow);  // 30m, expires 2027
    EXPECT_EQ(compute_policy(support, kNow, no_dns()).deadline, kNow + std::chrono::minutes(30));

    FakeResolver dns{{{"search.example", {v4(192, 0, 2, 1)}}}, {}};
    Profile research = parse_profile(research_doc(), kNow);  // 1h, expires in 10m
    EXPECT_EQ(compute_policy(research, kNow, dns.resolver()).deadline,
              parse_rfc3339("2026-06-01T00:10:00Z"));

    support.max_duration.reset();
    EXPECT_EQ(compute_policy(support, kNow, no_dns()).deadline,
              parse_rfc3339("2027-01-31T00:00:00Z"));
}

TEST(Policy, CheckJsonIsTheWholeDecision) {
    json doc = support_doc();
    doc["tools"]["lookup_order"]["endpoints"].push_back("orders.example:8443");
    Profile p = parse_profile(doc, kNow);
    FakeResolver dns{{{"orders.example", {v4(192, 0, 2, 9), ip("2001:db8::9")}}}, {}};
    json out = to_json(compute_policy(p, kNow, dns.resolver()), p);
    json expected = json::parse(R"({
      "agent": {"agentId": "support-agent", "agentType": "support", "version": "1.4.2",
                "expiresAt": "2027-01-31T00:00:00Z"},
      "deadline": "2026-06-01T00:30:00Z",
      "tools": {
        "allowed": [{"name": "lookup_order", "risk": "low", "credentials": ["orders_token"],
                     "endpoints": [
                       {"endpoint": "127.0.0.1:18080", "protocol": "tcp", "ports": "18080",
                        "addresses": ["127.0.0.1"]},
                       {"endpoint": "orders.example:8443", "protocol": "tcp", "ports": "8443",
                        "hostname": "orders.example", "notLearned": [],
                        "addresses": ["192.0.2.9", "2001:db8::9"]}]}],
        "denied": [{"name": "bulk_message", "reason": "denied", "risk": "high"},
                   {"name": "delete_account", "reason": "denied", "risk": "high"},
                   {"name": "export_data", "reason": "not-allowed", "risk": "medium"},
                   {"name": "issue_refund", "reason": "approval-required", "risk": "high"}]
      },
      "credentials": [{"name": "orders_token", "source": {"file": "/run/orders"},
                       "deliver": {"env": "ORDERS_TOKEN"}, "optional": false,
                       "rotation": null}],
      "syscalls": {"baseline": "agent-default", "allow": [], "deny": []},
      "ruleCount": 3,
      "approval": {
        "tools": [{"name": "issue_refund", "gate": 1, "risk": "high", "credentials": [],
                   "endpoints": [{"endpoint": "127.0.0.4:18083", "protocol": "tcp",
                                  "ports": "18083", "addresses": ["127.0.0.4"]}]}],
        "approvers": {"users": [], "groups": []},
        "allowSelfApproval": false, "requestTimeout": 900, "maxWindow": 3600, "denyCooldown": 60,
        "webhook": null, "credentialsAtGrant": []
      }
    })");
    EXPECT_EQ(out, expected) << out.dump(2);
}

TEST(Policy, EgressBudgetPassesThrough) {
    json doc = support_doc();
    EffectivePolicy none = compute_policy(parse_profile(doc, kNow), kNow, no_dns());
    EXPECT_EQ(none.egress_budget, 0u);
    doc["session"]["egressBudget"] = "512K";
    Profile p = parse_profile(doc, kNow);
    EffectivePolicy capped = compute_policy(p, kNow, no_dns());
    EXPECT_EQ(capped.egress_budget, 512u * 1024);
    EXPECT_EQ(to_json(capped, p)["egressBudget"], 512 * 1024);
    EXPECT_FALSE(to_json(none, p).contains("egressBudget"));
}

TEST(Policy, CheckJsonWritesPrefixesAndRanges) {
    FakeResolver dns{{{"search.example", {v4(192, 0, 2, 1)}}}, {}};
    Profile p = parse_profile(research_doc(), kNow);
    json fetch = to_json(compute_policy(p, kNow, dns.resolver()), p)["tools"]["allowed"][0];
    ASSERT_EQ(fetch["name"], "fetch");
    EXPECT_EQ(fetch["endpoints"][0]["protocol"], "udp");
    EXPECT_EQ(fetch["endpoints"][0]["ports"], "5000-5010");
    EXPECT_EQ(fetch["endpoints"][0]["addresses"], json::array({"fd00::/8"}));
    EXPECT_EQ(fetch["endpoints"][1]["addresses"], json::array({"10.20.0.0/16"}));
}

TEST(Policy, StartEventFields) {
    EffectivePolicy policy = compute_policy(parse_profile(support_doc(), kNow), kNow, no_dns());
    json expected = json::parse(R"({
      "pid": 42, "deadline": "2026-06-01T00:30:00Z", "toolsAllowed": ["lookup_order"],
      "toolsDenied": [{"name": "bulk_message", "reason": "denied"},
                      {"name": "delete_account", "reason": "denied"},
                      {"name": "export_data", "reason": "not-allowed"},
                      {"name": "issue_refund", "reason": "approval-required"}],
      "toolsAwaitingApproval": ["issue_refund"]
    })");
    EXPECT_EQ(start_fields(policy, 42), expected);
}

TEST(ToolFor, FindsAllowedAndDeniedToolsByAddressPortAndProtocol) {
    Profile p = parse_profile(support_doc(), kNow);
    EXPECT_EQ(tool_for(p, v4(127, 0, 0, 2), 18081, Protocol::tcp), "bulk_message");
    EXPECT_EQ(tool_for(p, v4(127, 0, 0, 1), 18080, Protocol::tcp), "lookup_order");
    EXPECT_EQ(tool_for(p, v4(10, 9, 8, 7), 443, Protocol::tcp), "export_data");
    EXPECT_EQ(tool_for(p, v4(127, 0, 0, 2), 18080, Protocol::tcp), std::nullopt);  // port
    EXPECT_EQ(tool_for(p, v4(127, 0, 0, 2), 18081, Protocol::udp), std::nullopt);  // protocol
    EXPECT_EQ(tool_for(p, v4(11, 0, 0, 1), 443, Protocol::tcp), std::nullopt);     // address
    EXPECT_EQ(tool_for(p, ip("::1"), 18080, Protocol::tcp), std::nullopt);
}

TEST(ToolFor, LongestPrefixWins) {
    json doc = support_doc();
    doc["tools"]["lookup_order"]["endpoints"] = {"10.1.2.3:443"};
    Profile p = parse_profile(doc, kNow);
    EXPECT_EQ(tool_for(p, v4(10, 1, 2, 3), 443, Protocol::tcp), "lookup_order");
    EXPECT_EQ(tool_for(p, v4(10, 1, 2, 4), 443, Protocol::tcp), "export_data");
}

TEST(ToolFor, PortRangesAndIpv6Prefixes) {
    FakeResolver dns{{{"search.example", {v4(192, 0, 2, 1)}}}, {}};
    Profile p = parse_profile(research_doc(), kNow);
    EXPECT_EQ(tool_for(p, ip("fd12::1"), 5005, Protocol::udp), "fetch");
    EXPECT_EQ(tool_for(p, ip("fd12::1"), 5011, Protocol::udp), std::nullopt);
    EXPECT_EQ(tool_for(p, ip("fe00::1"), 5005, Protocol::udp), std::nullopt);
}

TEST(ToolFor, HostnamesMatchOnlyThroughThePolicy) {
    FakeResolver dns{{{"search.example", {v4(192, 0, 2, 1)}}}, {}};
    Profile p = parse_profile(research_doc(), kNow);
    EffectivePolicy policy = compute_policy(p, kNow, dns.resolver());
    EXPECT_EQ(tool_for(p, v4(192, 0, 2, 1), 443, Protocol::tcp), std::nullopt);
    EXPECT_EQ(tool_for(policy, p, v4(192, 0, 2, 1), 443, Protocol::tcp), "search");
    EXPECT_EQ(tool_for(policy, p, v4(192, 0, 2, 1), 444, Protocol::tcp), std::nullopt);
    EXPECT_EQ(tool_for(policy, p, v4(10, 20, 1, 1), 8443, Protocol::tcp), "fetch");
}

// The examples are documentation: they must pass the real parser too, not
// only the schema (tests/unit/schema_check.py).
TEST(Examples, SupportAgentIsTheDemo) {
    std::string dir = std::string(CORDON_SOURCE_DIR) + "/profiles/examples/";
    Profile p = profile::load_profile(dir + "support-agent.json", kNow);
    EffectivePolicy policy = compute_policy(p, kNow, no_dns());
    EXPECT_EQ(policy.allowed_tools, std::vector<std::string>{"lookup_order"});
    EXPECT_EQ(policy.credentials, std::vector<std::string>{"orders_token"});
    EXPECT_EQ(p.credentials.at("orders_token").source.ref,
              std::string(CORDON_SOURCE_DIR) + "/examples/orders-token.txt");
    EXPECT_EQ(tool_for(p, v4(127, 0, 0, 2), 18081, Protocol::tcp), "bulk_message");
}

TEST(Examples, ResearchAgentParsesAndResolves) {
    std::string dir = std::string(CORDON_SOURCE_DIR) + "/profiles/examples/";
    Profile p = profile::load_profile(dir + "research-agent.json", kNow);
    FakeResolver dns;
    EffectivePolicy policy = compute_policy(p, kNow, dns.resolver());
    EXPECT_TRUE(dns.asked.empty());  // a wildcard waits for the agent's queries
    EXPECT_EQ(policy.allowed_tools,
              (std::vector<std::string>{"fetch_dataset", "metrics", "search"}));
    EXPECT_EQ(policy.rules.size(), 5u);
    ASSERT_EQ(policy.dns_names.size(), 1u);
    EXPECT_EQ(policy.dns_names[0].endpoint.hostname, "*.search.example");
    EXPECT_EQ(p.dns.min_ttl, std::chrono::seconds(10));
}

TEST(Examples, BillingAgentShowsEveryIssuedSource) {
    std::string dir = std::string(CORDON_SOURCE_DIR) + "/profiles/examples/";
    Profile p = profile::load_profile(dir + "billing-agent.json", kNow);
    const auto& invoices = p.credentials.at("invoices_token").source;
    EXPECT_EQ(invoices.kind, profile::CredentialSource::Kind::oauth);
    EXPECT_EQ(invoices.oauth.issuer, "https://login.billing.example/realms/agents");
    EXPECT_EQ(invoices.oauth.auth, "private_key_jwt");
    EXPECT_EQ(invoices.oauth.ca_bundle, "/etc/cordon/ca/billing-example.pem");
    EXPECT_EQ(p.credentials.at("refunds_token").source.kind,
              profile::CredentialSource::Kind::token_exchange);
    EXPECT_TRUE(p.credentials.at("fx_token").optional);
    EXPECT_FALSE(p.credentials.at("invoices_token").optional);
}

TEST(SpecialRange, NamesEveryNonPublicRangeInEveryForm) {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"0.0.0.0", "unspecified"},
        {"10.1.2.3", "private"},
        {"100.64.0.1", "shared"},
        {"127.0.0.2", "loopback"},
        {"169.254.169.254", "cloud-metadata"},
        {"169.254.1.1", "link-local"},
        {"172.31.0.1", "private"},
        {"192.168.1.1", "private"},
        {"224.0.0.1", "multicast"},
        {"255.255.255.255", "reserved"},
        {"::", "unspecified"},
        {"::1", "loopback"},
        {"fd00:ec2::254", "cloud-metadata"},
        {"fd12::1", "private"},
        {"fe80::1", "link-local"},
        {"ff02::1", "multicast"},
        {"::ffff:127.0.0.1", "loopback"},
        {"64:ff9b::a01:203", "private"},
        {"64:ff9b::7f00:1", "loopback"},
        {"2002:a9fe:a9fe::", "cloud-metadata"},
        {"2002:7f00:1::", "loopback"},
        {"64:ff9b:1::7f00:1", "loopback"},
        {"::ffff:0:7f00:1", "loopback"},
        {"fec0::1", "reserved"},
        {"2001:0:4136:e378::1", "tunnel"},
        {"2001:10::1", "reserved"},
        {"2001:20::1", "reserved"},
    };
    for (const auto& [text, kind] : cases) {
        EXPECT_EQ(special_range(ip(text)).value_or("public"), kind) << text;
    }
    for (const std::string text :
         {"8.8.8.8", "198.51.100.7", "2001:db8::1", "64:ff9b::808:808", "2001:4860::8888",
          "2001:30::1", "2002:808:808::", "::ffff:1.1.1.1"}) {
        EXPECT_FALSE(special_range(ip(text))) << text;
    }
}

TEST(DnsNames, ExactAndWildcardNamesMatchAndOnlyAllowedTools) {
    json doc = support_doc();
    doc["tools"]["lookup_order"]["endpoints"] = {"orders.example:443", "*.cdn.example:443",
                                                 "10.20.0.0/16:8443"};
    doc["tools"]["bulk_message"]["endpoints"] = {"bulk.example:443"};
    Profile p = parse_profile(doc, kNow);
    FakeResolver dns{{{"orders.example", {v4(192, 0, 2, 9), v4(10, 20, 1, 1), v4(127, 0, 0, 1)}}},
                     {}};
    EffectivePolicy policy = compute_policy(p, kNow, dns.resolver());
    ASSERT_EQ(match_name(policy, "orders.example").size(), 1u);
    EXPECT_EQ(match_name(policy, "orders.example")[0]->tool, "lookup_order");
    EXPECT_EQ(match_name(policy, "a.b.cdn.example").size(), 1u);
    EXPECT_TRUE(match_name(policy, "cdn.example").empty());
    EXPECT_TRUE(match_name(policy, "xcdn.example").empty());
    EXPECT_TRUE(match_name(policy, "bulk.example").empty());  // a denied tool's name
    EXPECT_TRUE(match_name(policy, "sub.orders.example").empty());
    // Loopback is dropped; 10.20.1.1 stays because a CIDR endpoint covers it.
    const ResolvedEndpoint& orders = policy.endpoints[0];
    EXPECT_EQ(orders.addresses, (std::vector<Ip6>{v4(192, 0, 2, 9), v4(10, 20, 1, 1)}));
    EXPECT_EQ(orders.not_learned, std::vector<Ip6>{v4(127, 0, 0, 1)});
    EXPECT_TRUE(learnable(policy, v4(10, 20, 9, 9)));
    EXPECT_FALSE(learnable(policy, v4(10, 21, 0, 1)));
    EXPECT_FALSE(learnable(policy, ip("::ffff:169.254.169.254")));
    EXPECT_TRUE(learnable(policy, v4(198, 51, 100, 1)));
}

TEST(DnsNames, AnIpv6WildcardRangeDoesNotMakeIpv4AddressesLearnable) {
    json doc = support_doc();
    doc["tools"]["lookup_order"]["endpoints"] = {"[::/0]:443", "*.cdn.example:443"};
    Profile p = parse_profile(doc, kNow);
    EffectivePolicy policy = compute_policy(p, kNow, no_dns());
    EXPECT_FALSE(learnable(policy, v4(127, 0, 0, 1)));
    EXPECT_FALSE(learnable(policy, v4(169, 254, 169, 254)));
    EXPECT_TRUE(learnable(policy, ip("fd00::1")));  // IPv6 private, covered by ::/0
    EXPECT_EQ(tool_for(p, v4(127, 0, 0, 1), 443, Protocol::tcp), std::nullopt);
    EXPECT_EQ(tool_for(p, ip("2001:db8::1"), 443, Protocol::tcp), "lookup_order");
}

TEST(DnsNames, ANameThatResolvesOnlyToLoopbackIsAnError) {
    json doc = support_doc();
    doc["tools"]["lookup_order"]["endpoints"] = {"localhost:18080"};
    Profile p = parse_profile(doc, kNow);
    FakeResolver dns{{{"localhost", {v4(127, 0, 0, 1), ip("::1")}}}, {}};
    try {
        compute_policy(p, kNow, dns.resolver());
        ADD_FAILURE() << "no error";
    } catch (const ProfileError& e) {
        EXPECT_EQ(e.path(), "tools.lookup_order.endpoints[0]");
        EXPECT_EQ(e.reason(),
                  "\"localhost\" resolves only to addresses Cordon does not learn (127.0.0.1 is "
                  "loopback); write the address or its range as an endpoint to allow it");
    }
    doc["tools"]["lookup_order"]["endpoints"].push_back("127.0.0.0/8:18080");
    Profile allowed = parse_profile(doc, kNow);
    EffectivePolicy policy = compute_policy(allowed, kNow, dns.resolver());
    EXPECT_EQ(policy.endpoints[0].addresses, std::vector<Ip6>{v4(127, 0, 0, 1)});
}

TEST(SystemResolve, NumericHostsNeedNoDns) {
    Result<std::vector<Ip6>> four = system_resolve("127.0.0.1");
    ASSERT_TRUE(four.ok()) << four.error().message();
    EXPECT_EQ(four.value(), std::vector<Ip6>{v4(127, 0, 0, 1)});
    Result<std::vector<Ip6>> six = system_resolve("::1");
    ASSERT_TRUE(six.ok()) << six.error().message();
    EXPECT_EQ(six.value(), std::vector<Ip6>{ip("::1")});
    Result<std::vector<Ip6>> through = system_resolver()("127.0.0.2");
    ASSERT_TRUE(through.ok()) << through.error().message();
    EXPECT_EQ(through.value(), std::vector<Ip6>{v4(127, 0, 0, 2)});
}

}  // namespace
}  // namespace cordon::policy
