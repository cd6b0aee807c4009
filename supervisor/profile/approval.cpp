// SPDX-License-Identifier: Apache-2.0
// The profile's approval object: who may open the tools of
// approvalRequired, how long a request waits and a grant lasts, and the
// webhook that announces requests.
#include <array>
#include <string>

#include "profile/fields.h"

namespace cordon::profile::detail {
namespace {

std::chrono::seconds read_positive_duration(const json& value, const std::string& path) {
    auto d = read_duration(value, path);
    if (d.count() <= 0) throw ProfileError(path, "is zero (expected a positive duration)");
    return d;
}

constexpr std::array<Field<ApprovalWebhook>, 4> kWebhookFields{{
    {"url", false, "an http:// or https:// URL",
     [](const json& v, const std::string& p, ApprovalWebhook& out) { read_url(v, p, out.url); }},
    {"urlFile", false, "the path of a protected file holding the URL",
     [](const json& v, const std::string& p, ApprovalWebhook& out) {
         out.url_file = read_string(v, p, "a file path");
         if (out.url_file.empty()) throw ProfileError(p, "is empty (expected a file path)");
     }},
    {"secretFile", true, "the path of the file holding the HMAC key",
     [](const json& v, const std::string& p, ApprovalWebhook& out) {
         out.secret_file = read_string(v, p, "a file path");
         if (out.secret_file.empty()) throw ProfileError(p, "is empty (expected a file path)");
     }},
    {"caBundle", false, "a PEM file of CA certificates",
     [](const json& v, const std::string& p, ApprovalWebhook& out) {
         out.ca_bundle = read_string(v, p, "a file path");
     }},
}};

constexpr std::array<Field<ApprovalPolicy>, 6> kApprovalFields{{
    {"approvers", false, "an approvers object such as {\"users\": [\"bob\"], \"groups\": []}",
     [](const json& v, const std::string& p, ApprovalPolicy& out) {
         read_accounts(v, p, out.approvers);
     }},
    {"allowSelfApproval", false, "true or false",
     [](const json& v, const std::string& p, ApprovalPolicy& out) {
         if (!v.is_boolean()) wrong_type(v, p, "true or false");
         out.allow_self_approval = v.get<bool>();
     }},
    {"requestTimeout", false, "a duration such as \"15m\"",
     [](const json& v, const std::string& p, ApprovalPolicy& out) {
         out.request_timeout = read_positive_duration(v, p);
     }},
    {"maxWindow", false, "a duration such as \"1h\"",
     [](const json& v, const std::string& p, ApprovalPolicy& out) {
         out.max_window = read_positive_duration(v, p);
     }},
    {"denyCooldown", false, "a duration such as \"1m\" (\"0s\": none)",
     [](const json& v, const std::string& p, ApprovalPolicy& out) {
         out.deny_cooldown = read_duration(v, p);
     }},
    {"webhook", false, "a webhook object such as {\"url\": ..., \"secretFile\": ...}",
     [](const json& v, const std::string& p, ApprovalPolicy& out) {
         auto& hook = out.webhook.emplace();
         read_object<ApprovalWebhook>(v, p, kWebhookFields, hook);
         if (hook.url.empty() == hook.url_file.empty())
             throw ProfileError(p,
                                "give exactly one of url and urlFile (urlFile keeps a URL "
                                "that is itself a credential out of the profile)");
     }},
}};

}  // namespace

void read_approval(const json& value, const std::string& path, Profile& out) {
    read_object<ApprovalPolicy>(value, path, kApprovalFields, out.approval);
}

// Gates are numbered in 16 bits, and the rules trie holds few port ranges
// per prefix: a profile with more approval tools than this is a mistake.
constexpr size_t kMaxApprovalTools = 64;

void check_approval(const Profile& profile) {
    if (profile.approval_required.size() > kMaxApprovalTools)
        throw ProfileError("approvalRequired",
                           "lists " + std::to_string(profile.approval_required.size()) +
                               " tools, more than the " + std::to_string(kMaxApprovalTools) +
                               " a session can gate (split the profile)");
}

}  // namespace cordon::profile::detail
