// SPDX-License-Identifier: Apache-2.0
// The tokens a session holds: issued when it starts, refreshed ahead of
// expiry while it runs (file deliveries only: the agent's environment
// cannot change under it), revoked when the session lets go of them, at
// its end by exit, stop or deadline, and on any failure after they were
// issued. Each issue, skip, refresh and revocation is an audit event that
// names the token by its fingerprint, never by its value.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "audit/audit.h"
#include "cordon/fd.h"
#include "creds/directory.h"
#include "creds/oauth.h"

namespace cordon::creds {

class TokenLease {
  public:
    // Issues a token for each oauth credential of `client_secrets`
    // and the user's `subject_token` (load_static's, which must outlive the
    // lease). An optional
    // credential that fails is skipped (credential.skip); any other failure
    // revokes what was issued and is the error.
    static Result<std::unique_ptr<TokenLease>> issue(
        const profile::Profile& profile, audit::AuditLog& audit, audit::Subject subject,
        const std::map<std::string, Secret>& client_secrets, const Secret& subject_token);

    TokenLease(const TokenLease&) = delete;
    TokenLease& operator=(const TokenLease&) = delete;
    ~TokenLease() { revoke_all(); }

    // A delivery per token, for the agent.
    std::vector<Delivery> deliveries() const;

    // Once the agent runs: plans the refresh of each file-delivered token
    // that would expire before `deadline`, at two thirds of its lifetime,
    // into the credentials directory of the session whose init is `init`,
    // files owned by uid:gid. Nothing to refresh: nothing opened.
    Status watch(pid_t init, uid_t uid, gid_t gid, std::chrono::system_clock::time_point deadline);

    // The timer for the supervising loop (-1 when nothing refreshes), and
    // what to do when it fires.
    int timer_fd() const { return timer_.valid() ? timer_.get() : -1; }
    void on_timer();

    // Revokes every token still held (RFC 7009), once, each on the record.
    void revoke_all();

  private:
    using Steady = std::chrono::steady_clock;

    struct Held {
        OAuthClient client;
        IssuedToken token;
        std::optional<Steady::time_point> refresh_at;  // unset: never refreshed
    };

    TokenLease(const profile::Profile& profile, audit::AuditLog& audit, audit::Subject subject,
               const Secret& subject_token)
        : profile_(profile),
          audit_(audit),
          subject_(std::move(subject)),
          subject_token_(subject_token) {}

    Status issue_one(const std::string& name, const Secret& client_secret);
    void plan_refresh(Held& held) const;
    void refresh(Held& held);
    void revoke_one(const Held& held, const IssuedToken& token);
    void arm();

    const profile::Profile& profile_;
    audit::AuditLog& audit_;
    audit::Subject subject_;
    const Secret& subject_token_;
    std::vector<Held> held_;
    std::optional<LiveDirectory> dir_;
    std::chrono::system_clock::time_point deadline_;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
    UniqueFd timer_;
};

}  // namespace cordon::creds
