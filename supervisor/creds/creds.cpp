// SPDX-License-Identifier: Apache-2.0
#include "creds/creds.h"

#include <string.h>

#include <cstdlib>

#include "creds/oauth.h"
#include "creds/secret_file.h"

namespace cordon::creds {

Secret::Secret(Secret&& other) noexcept : value_(std::move(other.value_)) {
    other.wipe();
}

Secret& Secret::operator=(Secret&& other) noexcept {
    if (this != &other) {
        wipe();
        value_ = std::move(other.value_);
        other.wipe();
    }
    return *this;
}

Secret::~Secret() {
    wipe();
}

void Secret::wipe() {
    // explicit_bzero is not optimised away, unlike a memset before free.
    if (!value_.empty()) ::explicit_bzero(value_.data(), value_.size());
    value_.clear();
}

namespace {

Result<Secret> read_source(const profile::Credential& cred) {
    const auto& src = cred.source;
    if (src.kind == profile::CredentialSource::Kind::env) {
        const char* value = std::getenv(src.ref.c_str());
        if (!value || !*value)
            return plain_error("credentials." + cred.name + ".source.env: variable " + src.ref +
                                   " is not set in agent-run's environment",
                               "export it before launching, or use a file source");
        return Secret(value);
    }
    return read_secret_file(src.ref, "credentials." + cred.name + ".source.file");
}

// A token is issued only once the session starts (creds/oauth.h); what it
// is issued with is read now, so that --check fails as the launch would:
// the client secret, the CA bundle's protection, and for a token exchange
// the user's token, once for every credential.
Status load_issued(const profile::Credential& cred, const std::string& subject_token_file,
                   Loaded& out) {
    const std::string at = source_path(cred);
    if (const auto& ca = cred.source.oauth.ca_bundle; !ca.empty())
        if (auto st = check_trusted_file(ca, at + ".caBundle"); !st) return st.error();
    auto client_secret = read_client_secret(cred);
    if (!client_secret) return client_secret.error();
    out.client_secrets.emplace(cred.name, std::move(*client_secret));
    if (cred.source.kind != profile::CredentialSource::Kind::token_exchange ||
        !out.subject_token.empty())
        return ok_status();
    if (subject_token_file.empty())
        return plain_error(at + ": exchanges the launching user's token, and none was given",
                           "pass it with --subject-token-file FILE (owned by you, mode 0600)");
    auto token = read_secret_file(subject_token_file, "--subject-token-file");
    if (!token) return token.error();
    out.subject_token = std::move(*token);
    return ok_status();
}

}  // namespace

Result<Loaded> load_static(const profile::Profile& profile, const std::vector<std::string>& needed,
                           const std::string& subject_token_file) {
    Loaded out;
    for (const auto& name : needed) {
        auto it = profile.credentials.find(name);
        if (it == profile.credentials.end())
            return plain_error("credential " + name + " is not defined in the profile");
        if (it->second.source.issued()) {
            if (auto st = load_issued(it->second, subject_token_file, out); !st) return st.error();
            continue;
        }
        auto secret = read_source(it->second);
        if (!secret) return secret.error();
        out.deliveries.push_back(
            Delivery{name, it->second.deliver_env, it->second.deliver_file, std::move(*secret)});
    }
    return out;
}

std::vector<std::string> source_variables(const profile::Profile& profile) {
    std::vector<std::string> vars;
    for (const auto& [name, cred] : profile.credentials)
        if (cred.source.kind == profile::CredentialSource::Kind::env)
            vars.push_back(cred.source.ref);
    return vars;
}

}  // namespace cordon::creds
