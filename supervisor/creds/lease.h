// SPDX-License-Identifier: Apache-2.0
// The tokens a session holds: issued when it starts, refreshed ahead of
// expiry while it runs (file deliveries only: the agent's environment
// cannot change under it), revoked when the session lets go of them, at
// its end by exit, stop or deadline, and on any failure after they were
// issued. Each issue, skip, refresh and revocation is an audit event that
// names the token by its fingerprint, never by its value.
//
// The credentials of approval-gated tools are deferred: read at launch
// like the others, but issued only while a human's grant holds a tool
// open (open_tool), into the running agent's credentials directory, and
// revoked and removed when the last open tool that needs them closes.
//
// Not thread-safe: the supervising loop calls everything, grants included,
// as it calls on_timer; each grant blocks it for the token endpoint's
// answer, as a refresh does (creds/http.h bounds it).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "audit/audit.h"
#include "cordon/fd.h"
#include "creds/directory.h"
#include "creds/oauth.h"

namespace cordon::creds {

class TokenLease {
  public:
    // Issues a token for each oauth credential of `client_secrets` but the
    // `deferred` ones, with the user's `subject_token` (load_static's). Both
    // must outlive the lease: a deferred token is issued later, by
    // open_tool, with the secret read at launch. An optional credential
    // that fails is skipped (credential.skip); any other failure revokes
    // what was issued and is the error.
    static Result<std::unique_ptr<TokenLease>> issue(
        const profile::Profile& profile, audit::AuditLog& audit, audit::Subject subject,
        const std::map<std::string, Secret>& client_secrets, const Secret& subject_token,
        const std::set<std::string>& deferred = {});

    TokenLease(const TokenLease&) = delete;
    TokenLease& operator=(const TokenLease&) = delete;
    ~TokenLease() { revoke_all(); }

    // A delivery per token issued at the start, for the agent.
    std::vector<Delivery> deliveries() const;

    // Moves the static deliveries (file and env sources) of deferred
    // credentials out of `deliveries`, the spawn's, into the lease, which
    // writes them when a grant opens their tool and wipes them at the end.
    void defer_static(std::vector<Delivery>& deliveries);

    // True when a deferred credential is delivered as a file: the session's
    // credentials directory must then be mounted from the start
    // (plan_directory's needed_later), for open_tool to write into.
    bool delivers_later() const;

    // Once the agent runs: plans the refresh of each file-delivered token
    // that would expire before `deadline`, at two thirds of its lifetime,
    // into the credentials directory of the session whose init is `init`,
    // files owned by uid:gid; and opens that directory for open_tool when
    // credentials are deferred. Nothing to refresh or defer: nothing opened.
    Status watch(pid_t init, uid_t uid, gid_t gid, std::chrono::system_clock::time_point deadline);

    // The timer for the supervising loop (-1 when nothing refreshes or is
    // deferred), and what to do when it fires.
    int timer_fd() const { return timer_.valid() ? timer_.get() : -1; }
    void on_timer();

    // A human granted `tool`, once watch() ran: issues each of its deferred
    // credentials no open tool holds yet (an oauth token as at the start, a
    // static source's value as read at launch) and writes it into the
    // credentials directory, each a credential.issue event with "tool" and
    // "grant". Tokens so issued are refreshed like the others. On failure
    // nothing this call issued stays issued or written, and the error
    // names the credential and why; an optional credential that fails is
    // skipped instead. Opening an open tool does nothing; a tool not in
    // approvalRequired, or also in deniedTools, is refused.
    Status open_tool(const std::string& tool);

    // The grant of `tool` ended: each of its deferred credentials that no
    // other open tool needs is removed from the credentials directory and
    // revoked (credential.revoke or credential.revoke.error, with "tool").
    // Closing a tool that is not open does nothing.
    void close_tool(const std::string& tool);

    // Revokes every token still held (RFC 7009), once, each on the record,
    // those of open tools too; forgets the deferred values.
    void revoke_all();

  private:
    using Steady = std::chrono::steady_clock;

    struct Held {
        OAuthClient client;
        IssuedToken token;
        std::optional<Steady::time_point> refresh_at;  // unset: never refreshed
        std::string tool;  // the tool whose grant issued it; empty: issued at the start
    };

    TokenLease(const profile::Profile& profile, audit::AuditLog& audit, audit::Subject subject,
               const std::map<std::string, Secret>& client_secrets, const Secret& subject_token,
               std::set<std::string> deferred)
        : profile_(profile),
          audit_(audit),
          subject_(std::move(subject)),
          client_secrets_(client_secrets),
          subject_token_(subject_token),
          deferred_(std::move(deferred)) {}

    Result<Held> obtain(const std::string& name, const Secret& client_secret) const;
    Status issue_one(const std::string& name, const Secret& client_secret);
    Status grant_one(const std::string& tool, const std::string& name);
    Status grant_token(const std::string& tool, const profile::Credential& cred);
    Status grant_static(const std::string& tool, const profile::Credential& cred);
    void withdraw(const std::string& tool, const std::string& name, bool undo = false);
    std::optional<std::string> open_tool_needing(const std::string& name) const;
    void plan_refresh(Held& held) const;
    void refresh(Held& held);
    void revoke_one(const Held& held, const IssuedToken& token,
                    const nlohmann::json& extra = nlohmann::json::object());
    void arm();

    const profile::Profile& profile_;
    audit::AuditLog& audit_;
    audit::Subject subject_;
    const std::map<std::string, Secret>& client_secrets_;
    const Secret& subject_token_;
    std::vector<Held> held_;
    std::optional<LiveDirectory> dir_;
    std::chrono::system_clock::time_point deadline_;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
    UniqueFd timer_;

    // Grants. A deferred credential is out (issued and written) while at
    // least one open tool lists it: the open tools are its reference count.
    std::set<std::string> deferred_;
    std::map<std::string, Delivery> kept_;  // static values of deferred credentials
    std::set<std::string> open_tools_;
    std::set<std::string> out_;  // deferred credentials issued and written now
};

}  // namespace cordon::creds
