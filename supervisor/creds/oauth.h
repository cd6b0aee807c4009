// SPDX-License-Identifier: Apache-2.0
// Tokens issued for one session: the OAuth 2.1 client credentials grant
// (RFC 6749 section 4.4) with the tool's scope and resource indicator (RFC
// 8707), revoked at the session's end (RFC 7009). The client secret stays
// with the supervisor; only the access token reaches the agent. All HTTP
// through libcurl, TLS verified by its defaults.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "cordon/result.h"
#include "creds/creds.h"
#include "profile/profile.h"

namespace cordon::creds {

struct IssuedToken {
    std::string credential;   // name in the profile
    std::string fingerprint;  // first 12 hex digits of the token's SHA-256, for the audit log
    std::string scope;        // as granted
    std::chrono::seconds expires_in{0};
    Secret token;
    const Secret* client_secret = nullptr;  // the one it was issued with, to revoke it
};

// The client secret of an oauth source, read as any secret at rest
// (creds/secret_file.h).
Result<Secret> read_client_secret(const profile::Credential& cred);

// Asks the token endpoint for a token with `client_secret`, which must
// outlive it. An unreachable server, or one that refuses, is an error
// naming the endpoint, the HTTP status and the server's error and
// error_description.
Result<IssuedToken> issue(const profile::Credential& cred, const Secret& client_secret);

// Issues a token for each oauth credential of `client_secrets` (load_static's).
Result<std::vector<IssuedToken>> issue_all(const profile::Profile& profile,
                                           const std::map<std::string, Secret>& client_secrets);

// Revokes the token at the source's revocation endpoint; ok without one.
Status revoke(const profile::Credential& cred, const IssuedToken& token);

// First 12 hex digits of SHA-256 of `value`: names a token without giving it away.
std::string fingerprint(const std::string& value);

}  // namespace cordon::creds
