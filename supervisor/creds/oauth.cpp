// SPDX-License-Identifier: Apache-2.0
#include "creds/oauth.h"

#include <openssl/evp.h>
#include <string.h>

#include <nlohmann/json.hpp>

#include "creds/http.h"
#include "creds/jwt.h"
#include "creds/secret_file.h"

namespace cordon::creds {
namespace {

using nlohmann::json;

// The request's target, the client authenticated as its source says:
// client_secret_basic in the header, client_secret_post in the form, and
// private_key_jwt as a signed assertion in the form whose audience is the
// token endpoint (RFC 7523 section 3), whichever endpoint it goes to.
Result<HttpTarget> client_target(const OAuthClient& client, const std::string& url, Form& form) {
    const auto& src = client.cred->source.oauth;
    HttpTarget target{url, src.ca_bundle};
    if (src.auth == "private_key_jwt") {
        auto assertion =
            client_assertion(*client.client_secret, src.client_id, client.token_url, src.key_id);
        if (!assertion) return assertion.error();
        form.add("client_id", src.client_id);
        form.add("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        form.add("client_assertion", assertion->reveal());
    } else if (src.auth == "client_secret_post") {
        form.add("client_id", src.client_id);
        form.add("client_secret", client.client_secret->reveal());
    } else {
        target.user = &src.client_id;
        target.password = &client.client_secret->reveal();
    }
    return target;
}

std::string prefix(const profile::Credential& cred) {
    return "credentials." + cred.name + ": ";
}

Result<IssuedToken> parse_token(const OAuthClient& client, HttpReply& reply) {
    json body = json::parse(reply.body, nullptr, false);
    if (!body.is_object() || !body.contains("access_token") || !body["access_token"].is_string())
        return plain_error(prefix(*client.cred) + client.token_url +
                           " answered without an access_token");
    IssuedToken t;
    t.credential = client.cred->name;
    t.issued_at = std::chrono::steady_clock::now();
    t.issued_at_wall = std::chrono::system_clock::now();
    std::string& token = body["access_token"].get_ref<std::string&>();
    t.fingerprint = fingerprint(token);
    t.token = Secret(token);
    ::explicit_bzero(token.data(), token.size());
    if (body.contains("scope") && body["scope"].is_string()) t.scope = body["scope"];
    if (body.contains("expires_in") && body["expires_in"].is_number_integer())
        t.expires_in = std::chrono::seconds(body["expires_in"].get<long>());
    return t;
}

}  // namespace

std::string source_path(const profile::Credential& cred) {
    bool exchange = cred.source.kind == profile::CredentialSource::Kind::token_exchange;
    return "credentials." + cred.name + ".source." + (exchange ? "tokenExchange" : "oauth");
}

Result<Secret> read_client_secret(const profile::Credential& cred) {
    const auto& src = cred.source.oauth;
    if (src.auth != "private_key_jwt")
        return read_secret_file(src.client_secret_file, source_path(cred) + ".clientSecretFile");
    std::string what = source_path(cred) + ".privateKeyFile";
    auto key = read_secret_file(src.private_key_file, what);
    if (!key) return key.error();
    if (auto alg = signing_alg(*key, what + ": " + src.private_key_file); !alg) return alg.error();
    return key;
}

namespace {

constexpr const char* kAccessTokenType = "urn:ietf:params:oauth:token-type:access_token";

// Sends the token request `form` and reads the token from the answer.
Result<IssuedToken> request_token(const OAuthClient& client, Form& form) {
    auto target = client_target(client, client.token_url, form);
    if (!target) return target.error();
    auto reply = post_form(*target, form);
    if (!reply) return plain_error(prefix(*client.cred) + reply.error().what, reply.error().hint);
    if (reply->status != 200)
        return plain_error(
            prefix(*client.cred) + "the token endpoint " + client.token_url +
                " refused: " + refusal(*reply),
            "check the client id, its secret, and the scope and resource it may ask");
    return parse_token(client, *reply);
}

Result<IssuedToken> client_credentials(const OAuthClient& client, const std::string& scope,
                                       const std::string& resource) {
    Form form;
    form.add("grant_type", "client_credentials");
    form.add("scope", scope);
    form.add("resource", resource);
    return request_token(client, form);
}

// RFC 8693 section 2.1: the user's token for one of the agent's client, with
// at most the user's rights. The actor is the agent's client, proven by a
// token of its own (section 4.1), which is revoked once the exchange is done.
Result<IssuedToken> exchange(const OAuthClient& client) {
    const auto& src = client.cred->source.oauth;
    if (!client.subject_token || client.subject_token->empty())
        return plain_error(source_path(*client.cred) + ": no user's token to exchange");
    auto actor = client_credentials(client, "", "");
    if (!actor) return actor.error();
    Form form;
    form.add("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange");
    form.add("subject_token", client.subject_token->reveal());
    form.add("subject_token_type", kAccessTokenType);
    form.add("actor_token", actor->token.reveal());
    form.add("actor_token_type", kAccessTokenType);
    form.add("requested_token_type", kAccessTokenType);
    form.add("scope", src.scope);
    form.add("resource", src.resource);
    auto token = request_token(client, form);
    (void)revoke(client, *actor);
    return token;
}

}  // namespace

Result<IssuedToken> issue(const OAuthClient& client) {
    const auto& src = client.cred->source;
    if (src.kind == profile::CredentialSource::Kind::token_exchange) return exchange(client);
    return client_credentials(client, src.oauth.scope, src.oauth.resource);
}

Status revoke(const OAuthClient& client, const IssuedToken& token) {
    if (client.revocation_url.empty()) return ok_status();
    Form form;
    form.add("token", token.token.reveal());
    form.add("token_type_hint", "access_token");
    auto target = client_target(client, client.revocation_url, form);
    if (!target) return target.error();
    auto reply = post_form(*target, form);
    if (!reply) return reply.error();
    // RFC 7009 section 2.2: 200 whether or not the token was still valid.
    if (reply->status != 200)
        return plain_error("the revocation endpoint " + client.revocation_url +
                           " refused: " + refusal(*reply));
    return ok_status();
}

std::chrono::system_clock::time_point expires_at(const IssuedToken& token) {
    return token.issued_at_wall + token.expires_in;
}

std::string fingerprint(const std::string& value) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(value.data(), value.size(), digest, &length, EVP_sha256(), nullptr) != 1)
        return "unknown";
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < 6 && i < length; ++i) {
        out += kHex[digest[i] >> 4];
        out += kHex[digest[i] & 0xf];
    }
    return out;
}

}  // namespace cordon::creds
