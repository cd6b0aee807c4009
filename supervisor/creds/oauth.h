// SPDX-License-Identifier: Apache-2.0
// Tokens issued for one session: the OAuth 2.1 client credentials grant
// (RFC 6749 section 4.4) with the tool's scope and resource indicator (RFC
// 8707), revoked at the session's end (RFC 7009). The authorization
// server's endpoints are configured or found from its issuer (RFC 8414).
// The client secret stays with the supervisor; only the access token
// reaches the agent. HTTP goes through creds/http.h.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "cordon/result.h"
#include "creds/creds.h"
#include "profile/profile.h"

namespace cordon::creds {

// An oauth credential's client as the session uses it: its secret and the
// server's endpoints, configured or discovered.
struct OAuthClient {
    const profile::Credential* cred = nullptr;
    const Secret* client_secret = nullptr;  // or its private key; outlives the client
    const Secret* subject_token = nullptr;  // the user's, for a token exchange
    std::string token_url;
    std::string revocation_url;  // empty: the server offers none
};

struct IssuedToken {
    std::string credential;   // name in the profile
    std::string fingerprint;  // first 12 hex digits of the token's SHA-256, for the audit log
    std::string scope;        // as granted
    std::chrono::seconds expires_in{0};  // 0: the server did not say
    std::chrono::steady_clock::time_point issued_at;
    std::chrono::system_clock::time_point issued_at_wall;  // for the expiry in audit events
    Secret token;
};

// "credentials.NAME.source.oauth" or "...tokenExchange": where errors point.
std::string source_path(const profile::Credential& cred);

// What the client of an oauth source authenticates with, read as any
// secret at rest (creds/secret_file.h): its secret, or for private_key_jwt
// its PEM private key, checked to be one it can sign with.
Result<Secret> read_client_secret(const profile::Credential& cred);

// The client of `cred`: its token and revocation endpoints as the profile
// gives them, or from the issuer's metadata (RFC 8414, falling back to
// OpenID Connect discovery), whose issuer must be the configured one.
Result<OAuthClient> make_client(const profile::Credential& cred, const Secret& client_secret);

// Where an issuer's metadata is looked for, in order: RFC 8414's
// well-known URL, then OpenID Connect Discovery's.
std::vector<std::string> metadata_urls(const std::string& issuer);

// Asks the token endpoint for a token: by the client credentials grant, or
// for a token exchange by exchanging the user's token. An unreachable server, or one that
// refuses, is an error naming the endpoint, the HTTP status and the
// server's error and error_description.
Result<IssuedToken> issue(const OAuthClient& client);

// Revokes the token at the client's revocation endpoint; ok without one.
Status revoke(const OAuthClient& client, const IssuedToken& token);

// When the token stops working, by the server's word.
std::chrono::system_clock::time_point expires_at(const IssuedToken& token);

// First 12 hex digits of SHA-256 of `value`: names a token without giving it away.
std::string fingerprint(const std::string& value);

}  // namespace cordon::creds
