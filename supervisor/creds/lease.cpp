// SPDX-License-Identifier: Apache-2.0
#include "creds/lease.h"

#include <sys/timerfd.h>
#include <unistd.h>

namespace cordon::creds {
namespace {

using nlohmann::json;

// After a failed refresh, the next try comes halfway to the token's
// expiry, while at least this much of its life is left.
constexpr std::chrono::seconds kLastTry{2};

json token_fields(const IssuedToken& t) {
    return {{"credential", t.credential},
            {"fingerprint", t.fingerprint},
            {"scope", t.scope},
            {"expiresIn", t.expires_in.count()}};
}

}  // namespace

Result<std::unique_ptr<TokenLease>> TokenLease::issue(
    const profile::Profile& profile, audit::AuditLog& audit, audit::Subject subject,
    const std::map<std::string, Secret>& client_secrets, const Secret& subject_token) {
    std::unique_ptr<TokenLease> lease(
        new TokenLease(profile, audit, std::move(subject), subject_token));
    for (const auto& [name, client_secret] : client_secrets) {
        auto st = lease->issue_one(name, client_secret);
        if (st) continue;
        if (!profile.credentials.at(name).optional) return st.error();
        audit.emit("credential.skip", lease->subject_,
                   {{"credential", name}, {"optional", true}, {"error", st.error().message()}});
    }
    return lease;
}

Status TokenLease::issue_one(const std::string& name, const Secret& client_secret) {
    auto client = make_client(profile_.credentials.at(name), client_secret);
    if (!client) return client.error();
    client->subject_token = &subject_token_;
    auto token = creds::issue(*client);
    if (!token) return token.error();
    audit_.emit("credential.issue", subject_, token_fields(*token));
    held_.push_back(Held{std::move(*client), std::move(*token), std::nullopt});
    return ok_status();
}

std::vector<Delivery> TokenLease::deliveries() const {
    std::vector<Delivery> out;
    for (const auto& h : held_) {
        const auto& cred = *h.client.cred;
        out.push_back(Delivery{cred.name, cred.deliver_env, cred.deliver_file,
                               Secret(h.token.token.reveal())});
    }
    return out;
}

Status TokenLease::watch(pid_t init, uid_t uid, gid_t gid,
                         std::chrono::system_clock::time_point deadline) {
    deadline_ = deadline;
    for (auto& h : held_) plan_refresh(h);
    if (std::none_of(held_.begin(), held_.end(), [](const Held& h) { return h.refresh_at; }))
        return ok_status();
    auto dir = LiveDirectory::open(init);
    // A quick agent may be gone already, and its session's init with it: the
    // session is ending, with nothing left to refresh.
    if (!dir && (dir.error().err == ENOENT || dir.error().err == ESRCH)) return ok_status();
    if (!dir) return dir.error();
    dir_.emplace(std::move(*dir));
    uid_ = uid;
    gid_ = gid;
    timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!timer_.valid()) return errno_error("cannot create a timerfd for token refresh");
    arm();
    return ok_status();
}

// Refreshed at two thirds of its lifetime when it would expire before the
// session does and the agent reads it from a file.
void TokenLease::plan_refresh(Held& h) const {
    const auto& t = h.token;
    bool file = !h.client.cred->deliver_file.empty();
    h.refresh_at.reset();
    if (file && t.expires_in.count() > 0 && expires_at(t) < deadline_)
        h.refresh_at = t.issued_at + t.expires_in * 2 / 3;
}

void TokenLease::arm() {
    std::optional<Steady::time_point> next;
    for (const auto& h : held_)
        if (h.refresh_at && (!next || *h.refresh_at < *next)) next = h.refresh_at;
    itimerspec spec{};
    if (next) {
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next->time_since_epoch());
        // Zero would disarm the timer: a time already past fires at once.
        spec.it_value.tv_sec = ns.count() / 1000000000;
        spec.it_value.tv_nsec = std::max<long>(ns.count() % 1000000000, 1);
    }
    (void)::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
}

void TokenLease::on_timer() {
    uint64_t expirations;
    (void)!::read(timer_.get(), &expirations, sizeof expirations);
    auto now = Steady::now();
    for (auto& h : held_)
        if (h.refresh_at && *h.refresh_at <= now) refresh(h);
    arm();
}

// A new token, written over the old one's file, then the old one revoked.
void TokenLease::refresh(Held& h) {
    auto fresh = creds::issue(h.client);
    Status st = fresh ? dir_->replace(h.client.cred->deliver_file, fresh->token, uid_, gid_)
                      : Status(fresh.error());
    if (!st) {
        auto left = h.token.issued_at + h.token.expires_in - Steady::now();
        h.refresh_at.reset();
        if (left > kLastTry) h.refresh_at = Steady::now() + left / 2;
        audit_.emit("credential.refresh.error", subject_,
                    {{"credential", h.token.credential},
                     {"fingerprint", h.token.fingerprint},
                     {"expiresAt", audit::format_time(expires_at(h.token))},
                     {"retry", h.refresh_at.has_value()},
                     {"error", st.error().message()}});
        if (fresh) revoke_one(h, *fresh);
        return;
    }
    json fields = token_fields(*fresh);
    fields["previous"] = h.token.fingerprint;
    audit_.emit("credential.refresh", subject_, fields);
    IssuedToken old = std::exchange(h.token, std::move(*fresh));
    plan_refresh(h);
    revoke_one(h, old);
}

void TokenLease::revoke_one(const Held& h, const IssuedToken& token) {
    json fields = {{"credential", token.credential}, {"fingerprint", token.fingerprint}};
    if (h.client.revocation_url.empty()) {
        fields["revoked"] = false;
        fields["reason"] = "no revocation endpoint: the token lives until it expires";
    } else if (auto st = revoke(h.client, token); !st) {
        fields["expiresAt"] = audit::format_time(expires_at(token));
        fields["error"] = st.error().message();
        audit_.emit("credential.revoke.error", subject_, fields);
        return;
    } else {
        fields["revoked"] = true;
    }
    audit_.emit("credential.revoke", subject_, fields);
}

void TokenLease::revoke_all() {
    for (const auto& h : held_) revoke_one(h, h.token);
    held_.clear();
    if (timer_.valid()) timer_ = UniqueFd();
    // The descriptor would keep the session's tmpfs, and its files, alive.
    dir_.reset();
}

}  // namespace cordon::creds
