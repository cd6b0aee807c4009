// SPDX-License-Identifier: Apache-2.0
// Client assertions for private_key_jwt client authentication (RFC 7523
// sections 2.2 and 3, as OpenID Connect Core section 9 profiles it): a JWT
// the client signs with its private key instead of sending a secret.
// RS256 for an RSA key, ES256 for an EC P-256 key, signed with OpenSSL.
#pragma once

#include <string>

#include "cordon/result.h"
#include "creds/creds.h"

namespace cordon::creds {

// The JWS algorithm `pem`'s private key signs with, or an error naming
// `what` (the profile key) when it holds no key Cordon can sign with.
Result<std::string> signing_alg(const Secret& pem, const std::string& what);

// A fresh assertion: iss and sub the client, aud the endpoint it is sent
// to, a random jti, valid for 60 seconds. `kid` may be empty.
Result<Secret> client_assertion(const Secret& pem, const std::string& client_id,
                                const std::string& audience, const std::string& kid);

}  // namespace cordon::creds
