// SPDX-License-Identifier: Apache-2.0
// Approvals as pure logic: the profile's approval object, the gated tools
// the policy makes of approvalRequired, and the book of requests and
// grants (folding, expiry, windows). Sockets and the kernel are the
// integration tests' (agent_run_approval_test.cpp).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <thread>

#include "approval/book.h"
#include "policy/policy.h"
#include "profile/profile.h"
#include "profile_doc.h"

namespace cordon::approval {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using profile::parse_profile;
using profile::parse_rfc3339;
using profile::ProfileError;

const profile::TimePoint kNow = parse_rfc3339("2026-06-01T00:00:00Z");

json doc() {
    return json::parse(R"({
      "apiVersion": "cordon/v1",
      "identity": {"agentId": "support-agent", "agentType": "support", "version": "1",
                   "expiresAt": "2027-01-31T00:00:00Z"},
      "allowedTools": ["lookup_order"],
      "deniedTools": ["bulk_message"],
      "approvalRequired": ["issue_refund", "bulk_message", "wire_money"],
      "tools": {
        "lookup_order": {"endpoints": ["127.0.0.1:18080"], "credentials": ["shared"]},
        "bulk_message": {"endpoints": ["127.0.0.2:18081"]},
        "issue_refund": {"endpoints": ["127.0.0.4:18083", "refunds.shop.example:443"],
                         "credentials": ["refund_token", "shared"]},
        "wire_money": {"endpoints": ["10.9.0.0/16:8443"]}
      },
      "credentials": {
        "shared": {"source": {"file": "/etc/shared"}},
        "refund_token": {"source": {"file": "/etc/refund"}}
      },
      "approval": {
        "approvers": {"users": ["bob"], "groups": ["finance"]},
        "requestTimeout": "5m",
        "maxWindow": "30m",
        "denyCooldown": "2m",
        "webhook": {"url": "https://hooks.example/cordon", "secretFile": "/etc/hook.key"}
      }
    })");
}

// Parses doc and expects exactly "PATH: REASON".
void expect_error(const json& doc, const std::string& path, const std::string& reason) {
    test_support::expect_profile_error(doc, path, reason);
}

json with(json d, const std::string& pointer, json value) {
    d[json::json_pointer(pointer)] = std::move(value);
    return d;
}

// ---- profile ------------------------------------------------------------------

TEST(ApprovalProfile, ReadsEveryKey) {
    auto p = parse_profile(doc(), kNow);
    EXPECT_EQ(p.approval.approvers.users, std::vector<std::string>{"bob"});
    EXPECT_EQ(p.approval.approvers.groups, std::vector<std::string>{"finance"});
    EXPECT_FALSE(p.approval.allow_self_approval);
    EXPECT_EQ(p.approval.request_timeout, 300s);
    EXPECT_EQ(p.approval.max_window, 1800s);
    EXPECT_EQ(p.approval.deny_cooldown, 120s);
    ASSERT_TRUE(p.approval.webhook);
    EXPECT_EQ(p.approval.webhook->url, "https://hooks.example/cordon");
    EXPECT_EQ(p.approval.webhook->secret_file, "/etc/hook.key");
    EXPECT_EQ(p.approval.webhook->ca_bundle, "");
}

TEST(ApprovalProfile, DefaultsWithoutTheObject) {
    json d = doc();
    d.erase("approval");
    auto p = parse_profile(d, kNow);
    EXPECT_TRUE(p.approval.approvers.users.empty());
    EXPECT_TRUE(p.approval.approvers.groups.empty());
    EXPECT_EQ(p.approval.request_timeout, 900s);
    EXPECT_EQ(p.approval.max_window, 3600s);
    EXPECT_EQ(p.approval.deny_cooldown, 60s);
    EXPECT_FALSE(p.approval.webhook);
}

TEST(ApprovalProfile, ErrorsNameThePathAndTheFix) {
    expect_error(with(doc(), "/approval/maxWindow", "0s"), "approval.maxWindow",
                 "is zero (expected a positive duration)");
    expect_error(with(doc(), "/approval/requestTimeout", 5), "approval.requestTimeout",
                 "expected a duration string such as \"30s\", got number");
    expect_error(with(doc(), "/approval/allowSelfApproval", "yes"), "approval.allowSelfApproval",
                 "expected true or false, got string");
    expect_error(with(doc(), "/approval/approvers/users", json::array({"Bob Smith"})),
                 "approval.approvers.users[0]", "\"Bob Smith\" is not a user name or numeric id");
    expect_error(with(doc(), "/approval/webhook/url", "ftp://x"), "approval.webhook.url",
                 "\"ftp://x\" is not an http:// or https:// URL");
    json no_secret = doc();
    no_secret["approval"]["webhook"].erase("secretFile");
    expect_error(no_secret, "approval.webhook.secretFile",
                 "missing (the path of the file holding the HMAC key is required)");
    const std::string one_of =
        "give exactly one of url and urlFile (urlFile keeps a URL that is itself a credential out "
        "of the profile)";
    expect_error(with(doc(), "/approval/webhook/urlFile", "/etc/hook.url"), "approval.webhook",
                 one_of);
    json no_url = doc();
    no_url["approval"]["webhook"].erase("url");
    expect_error(no_url, "approval.webhook", one_of);
    expect_error(with(doc(), "/approval/approve", true), "approval.approve",
                 "unknown key (expected one of: approvers, allowSelfApproval, requestTimeout, "
                 "maxWindow, denyCooldown, webhook)");
}

// ---- policy -------------------------------------------------------------------

policy::Resolver refunds_dns() {
    return [](const std::string& name) -> Result<std::vector<profile::Ip6>> {
        if (name != "refunds.shop.example") return plain_error("unknown name " + name);
        return std::vector<profile::Ip6>{profile::parse_endpoint("93.184.216.34:1").address};
    };
}

TEST(ApprovalPolicy, GatedToolsAreApprovalRequiredMinusDenied) {
    auto p = parse_profile(doc(), kNow);
    auto policy = policy::compute_policy(p, kNow, refunds_dns());
    ASSERT_EQ(policy.gated_tools.size(), 2u);
    EXPECT_EQ(policy.gated_tools[0].name, "issue_refund");
    EXPECT_EQ(policy.gated_tools[0].gate, 1);
    EXPECT_EQ(policy.gated_tools[1].name, "wire_money");
    EXPECT_EQ(policy.gated_tools[1].gate, 2);
    EXPECT_EQ(policy::gated_tool(policy, "bulk_message"), nullptr);  // deny wins
    EXPECT_EQ(policy::gated_tool(policy, 2)->name, "wire_money");
    EXPECT_EQ(policy::gated_tool(policy, 3), nullptr);
}

// The policy error of doc, or "" when it has none.
std::string policy_error(const json& d) {
    try {
        (void)policy::compute_policy(parse_profile(d, kNow), kNow, refunds_dns());
    } catch (const profile::ProfileError& e) {
        return e.what();
    }
    return "";
}

TEST(ApprovalPolicy, AnAllowedEndpointThatReachesAGatedOneIsRefused) {
    // A range of an allowed tool's over the gated address and port.
    EXPECT_EQ(policy_error(with(doc(), "/tools/lookup_order/endpoints",
                                {"127.0.0.1:18080", "127.0.0.0/8:1-65535"})),
              "tools.issue_refund.endpoints[0]: \"127.0.0.4:18083\" is also reached through "
              "\"127.0.0.0/8:1-65535\" of allowed tool lookup_order, which would open it without "
              "approval; narrow that endpoint or take the tool out of approvalRequired");
    // A gated range an allowed address falls in.
    const std::string shadowed = "which would open it without approval";
    EXPECT_NE(policy_error(with(doc(), "/tools/lookup_order/endpoints", {"10.9.3.4:8443"}))
                  .find(shadowed),
              std::string::npos);
    // A wildcard the session's resolver would learn the gated name's addresses for.
    EXPECT_NE(policy_error(with(doc(), "/tools/lookup_order/endpoints", {"*.shop.example:443"}))
                  .find(shadowed),
              std::string::npos);
    EXPECT_NE(
        policy_error(with(doc(), "/tools/lookup_order/endpoints", {"refunds.shop.example:443"}))
            .find(shadowed),
        std::string::npos);
    // Other ports, other protocols, other names: no overlap.
    EXPECT_EQ(policy_error(with(doc(), "/tools/lookup_order/endpoints",
                                {"127.0.0.4:18084", "udp://127.0.0.4:18083", "*.shop.example:80",
                                 "10.8.0.0/16:8443"})),
              "");
}

TEST(ApprovalPolicy, NamesOverlapWhenSomeNameMatchesBoth) {
    EXPECT_TRUE(policy::names_overlap("a.example", "a.example"));
    EXPECT_TRUE(policy::names_overlap("*.example", "a.example"));
    EXPECT_TRUE(policy::names_overlap("a.example", "*.example"));
    // x.api.shop.example matches both: one suffix below the other.
    EXPECT_TRUE(policy::names_overlap("*.api.shop.example", "*.shop.example"));
    EXPECT_TRUE(policy::names_overlap("*.shop.example", "*.api.shop.example"));
    EXPECT_FALSE(policy::names_overlap("a.example", "b.example"));
    EXPECT_FALSE(policy::names_overlap("*.example", "example"));
    EXPECT_FALSE(policy::names_overlap("*.pshop.example", "*.shop.example"));
    EXPECT_FALSE(policy::names_overlap("*.a.example", "*.b.example"));
}

// A gated wildcard and an allowed name below it, or a wildcard nested in it.
TEST(ApprovalPolicy, AnAllowedNameUnderAGatedWildcardIsRefused) {
    json d = with(doc(), "/tools/issue_refund/endpoints", {"*.shop.example:443"});
    const std::string shadowed = "which would open it without approval";
    for (const char* allowed : {"*.api.shop.example:443", "refunds.shop.example:443"})
        EXPECT_NE(policy_error(with(d, "/tools/lookup_order/endpoints", {allowed})).find(shadowed),
                  std::string::npos)
            << allowed;
    EXPECT_EQ(policy_error(with(d, "/tools/lookup_order/endpoints", {"*.pshop.example:443"})), "");
}

TEST(ApprovalPolicy, GatedRulesCarryTheirGateAndStayOutOfTheAllowedRules) {
    auto policy = policy::compute_policy(parse_profile(doc(), kNow), kNow, refunds_dns());
    ASSERT_EQ(policy.rules.size(), 1u);
    EXPECT_EQ(policy.rules[0].gate, 0);
    ASSERT_EQ(policy.gated_rules.size(), 3u);
    std::map<uint16_t, int> per_gate;
    for (const auto& r : policy.gated_rules) per_gate[r.gate]++;
    EXPECT_EQ(per_gate, (std::map<uint16_t, int>{{1, 2}, {2, 1}}));
    EXPECT_EQ(policy::installed_rules(policy).size(), 4u);
}

TEST(ApprovalPolicy, GatedNamesResolveBehindTheirGate) {
    auto policy = policy::compute_policy(parse_profile(doc(), kNow), kNow, refunds_dns());
    ASSERT_EQ(policy.dns_names.size(), 1u);
    EXPECT_EQ(policy.dns_names[0].tool, "issue_refund");
    EXPECT_EQ(policy.dns_names[0].gate, 1);
}

TEST(ApprovalPolicy, CredentialsOfGatedToolsWaitForTheGrant) {
    auto policy = policy::compute_policy(parse_profile(doc(), kNow), kNow, refunds_dns());
    EXPECT_EQ(policy.credentials, std::vector<std::string>{"shared"});
    // "shared" is the allowed tool's too: issued at start, not held back.
    EXPECT_EQ(policy.gated_credentials, std::vector<std::string>{"refund_token"});
}

// ---- book ---------------------------------------------------------------------

TEST(ApprovalBook, AttemptsFoldIntoOnePendingRequestPerTool) {
    Book book;
    auto first = book.note("issue_refund", 1, 60s);
    EXPECT_TRUE(first.created);
    EXPECT_EQ(first.request->id.size(), 12u);
    auto again = book.note("issue_refund", 1, 60s);
    EXPECT_FALSE(again.created);
    EXPECT_EQ(again.request->id, first.request->id);
    auto other = book.note("wire_money", 2, 60s);
    EXPECT_TRUE(other.created);
    EXPECT_NE(other.request->id, first.request->id);
    EXPECT_EQ(book.requests().size(), 2u);
}

TEST(ApprovalBook, AGrantTakesTheRequestAndEndsWithItsWindow) {
    Book book;
    std::string id = book.note("issue_refund", 1, 60s).request->id;
    Grant& g = book.grant(id, 50ms, 1u, 1001, "bob");
    EXPECT_EQ(g.tool, "issue_refund");
    EXPECT_EQ(g.gate, 1);
    EXPECT_EQ(g.uses, 1u);
    EXPECT_EQ(book.pending(id), nullptr);
    EXPECT_NE(book.grant_for_gate(1), nullptr);
    EXPECT_TRUE(book.take_ended(Clock::now()).empty());
    std::this_thread::sleep_for(60ms);
    auto ended = book.take_ended(Clock::now());
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0].approver, "bob");
    EXPECT_EQ(book.grant_for_tool("issue_refund"), nullptr);
}

TEST(ApprovalBook, ACooldownHoldsUntilItsEnd) {
    Book book;
    auto now = Clock::now();
    EXPECT_FALSE(book.cooling("issue_refund", now));
    book.cool_down("issue_refund", now + 60s);
    EXPECT_EQ(book.cooling("issue_refund", now + 20s), Clock::duration(40s));
    EXPECT_FALSE(book.cooling("wire_money", now));
    EXPECT_FALSE(book.cooling("issue_refund", now + 60s));
}

TEST(ApprovalBook, RequestsExpireAndTheNextEventIsTheEarliest) {
    Book book;
    auto soon = book.note("issue_refund", 1, 10ms).request->expires;
    book.note("wire_money", 2, 1h);
    EXPECT_EQ(book.next_event(), soon);
    std::this_thread::sleep_for(20ms);
    auto expired = book.take_expired(Clock::now());
    ASSERT_EQ(expired.size(), 1u);
    EXPECT_EQ(expired[0].tool, "issue_refund");
    EXPECT_EQ(book.requests().size(), 1u);
    // A new attempt after expiry is a new request.
    EXPECT_TRUE(book.note("issue_refund", 1, 10ms).created);
}

TEST(ApprovalBook, JsonShowsWhatApproversDecideOn) {
    Book book;
    Request* r = book.note("issue_refund", 1, 60s).request;
    r->destination = "127.0.0.4:18083/tcp";
    r->attempts = 3;
    json j = to_json(*r);
    EXPECT_EQ(j["tool"], "issue_refund");
    EXPECT_EQ(j["destination"], "127.0.0.4:18083/tcp");
    EXPECT_EQ(j["attempts"], 3);
    EXPECT_TRUE(j["reason"].is_null());
    EXPECT_TRUE(j["expires"].is_string());
    json g = to_json(book.grant(r->id, 60s, std::nullopt, 1001, "bob"));
    EXPECT_TRUE(g["uses"].is_null());
    EXPECT_EQ(g["approverUid"], 1001);
}

}  // namespace
}  // namespace cordon::approval
