// SPDX-License-Identifier: Apache-2.0
// The tokens a session holds, revoked when the session lets go of them: at
// its end, by exit, stop or deadline, and on any failure after they were
// issued. Each issue and revocation is an audit event that names the
// token by its fingerprint, never by its value.
#pragma once

#include <vector>

#include "audit/audit.h"
#include "creds/oauth.h"

namespace cordon::creds {

class TokenLease {
  public:
    TokenLease(const profile::Profile& profile, audit::AuditLog& audit, audit::Subject subject,
               std::vector<IssuedToken> tokens);
    TokenLease(const TokenLease&) = delete;
    TokenLease& operator=(const TokenLease&) = delete;
    ~TokenLease() { revoke_all(); }

    // A delivery per token, for the agent.
    std::vector<Delivery> deliveries() const;

    // Revokes every token still held (RFC 7009), once, each on the record.
    void revoke_all();

  private:
    const profile::Profile& profile_;
    audit::AuditLog& audit_;
    audit::Subject subject_;
    std::vector<IssuedToken> tokens_;
};

}  // namespace cordon::creds
