// SPDX-License-Identifier: Apache-2.0
#include "creds/lease.h"

#include <poll.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>

namespace cordon::creds {
namespace {

using nlohmann::json;

// After a failed refresh, the next try comes halfway to the token's
// expiry, while at least this much of its life is left.
constexpr std::chrono::seconds kLastTry{2};

// Whether the session's init is ending, within a moment: a quick agent's
// session tears its mounts down as it goes, so its credentials directory
// may read as missing or as no mount of its own for the last instants.
bool init_ending(pid_t init) {
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, init, 0)));
    if (!pidfd.valid()) return errno == ESRCH;
    pollfd p{pidfd.get(), POLLIN, 0};
    return ::poll(&p, 1, 200) > 0;
}

json token_fields(const IssuedToken& t) {
    return {{"credential", t.credential},
            {"fingerprint", t.fingerprint},
            {"scope", t.scope},
            {"expiresIn", t.expires_in.count()}};
}

// What names a grant's part in an event.
json grant_fields(const std::string& tool) {
    return {{"tool", tool}, {"grant", true}};
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

// An error of granting `tool`, which names it first.
Error granting(const std::string& tool, Error e) {
    e.what = "cannot grant " + tool + ": " + e.what;
    return e;
}

}  // namespace

Result<std::unique_ptr<TokenLease>> TokenLease::issue(
    const profile::Profile& profile, audit::AuditLog& audit, audit::Subject subject,
    const std::map<std::string, Secret>& client_secrets, const Secret& subject_token,
    const std::set<std::string>& deferred) {
    for (const auto& name : deferred)
        if (!profile.credentials.contains(name))
            return plain_error("deferred credential " + name + " is not defined in the profile");
    std::unique_ptr<TokenLease> lease(new TokenLease(profile, audit, std::move(subject),
                                                     client_secrets, subject_token, deferred));
    for (const auto& [name, client_secret] : client_secrets) {
        if (deferred.contains(name)) continue;
        auto st = lease->issue_one(name, client_secret);
        if (st) continue;
        if (!profile.credentials.at(name).optional) return st.error();
        audit.emit("credential.skip", lease->subject_,
                   {{"credential", name}, {"optional", true}, {"error", st.error().message()}});
    }
    return lease;
}

Result<TokenLease::Held> TokenLease::obtain(const std::string& name,
                                            const Secret& client_secret) const {
    auto client = make_client(profile_.credentials.at(name), client_secret);
    if (!client) return client.error();
    client->subject_token = &subject_token_;
    auto token = creds::issue(*client);
    if (!token) return token.error();
    return Held{std::move(*client), std::move(*token), std::nullopt, {}};
}

Status TokenLease::issue_one(const std::string& name, const Secret& client_secret) {
    auto held = obtain(name, client_secret);
    if (!held) return held.error();
    audit_.emit("credential.issue", subject_, token_fields(held->token));
    held_.push_back(std::move(*held));
    return ok_status();
}

std::vector<Delivery> TokenLease::deliveries() const {
    std::vector<Delivery> out;
    for (const auto& h : held_) {
        if (!h.tool.empty()) continue;
        const auto& cred = *h.client.cred;
        out.push_back(Delivery{cred.name, cred.deliver_env, cred.deliver_file,
                               Secret(h.token.token.reveal())});
    }
    return out;
}

void TokenLease::defer_static(std::vector<Delivery>& deliveries) {
    std::vector<Delivery> now;
    for (auto& d : deliveries) {
        if (deferred_.contains(d.credential))
            kept_.insert_or_assign(d.credential, std::move(d));
        else
            now.push_back(std::move(d));
    }
    deliveries = std::move(now);
}

bool TokenLease::delivers_later() const {
    return std::any_of(deferred_.begin(), deferred_.end(), [this](const std::string& name) {
        return !profile_.credentials.at(name).deliver_file.empty();
    });
}

Status TokenLease::watch(pid_t init, uid_t uid, gid_t gid,
                         std::chrono::system_clock::time_point deadline) {
    deadline_ = deadline;
    uid_ = uid;
    gid_ = gid;
    for (auto& h : held_) plan_refresh(h);
    bool refreshes =
        std::any_of(held_.begin(), held_.end(), [](const Held& h) { return h.refresh_at; });
    if (!refreshes && !delivers_later()) return ok_status();
    auto dir = LiveDirectory::open(init);
    // A quick agent may be gone already, and its session's init with it: the
    // session is ending, with nothing left to refresh.
    if (!dir && (dir.error().err == ENOENT || dir.error().err == ESRCH || init_ending(init)))
        return ok_status();
    if (!dir) return dir.error();
    dir_.emplace(std::move(*dir));
    // Created now even if nothing refreshes yet: the supervising loop
    // watches the descriptor it had at the start, and a grant's token may
    // need refreshing later.
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
    if (!timer_.valid()) return;
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
        json fields = {{"credential", h.token.credential},
                       {"fingerprint", h.token.fingerprint},
                       {"expiresAt", audit::format_time(expires_at(h.token))},
                       {"retry", h.refresh_at.has_value()},
                       {"error", st.error().message()}};
        if (!h.tool.empty()) fields.update(grant_fields(h.tool));
        audit_.emit("credential.refresh.error", subject_, fields);
        if (fresh) revoke_one(h, *fresh);
        return;
    }
    json fields = token_fields(*fresh);
    fields["previous"] = h.token.fingerprint;
    if (!h.tool.empty()) fields.update(grant_fields(h.tool));
    audit_.emit("credential.refresh", subject_, fields);
    IssuedToken old = std::exchange(h.token, std::move(*fresh));
    plan_refresh(h);
    revoke_one(h, old);
}

void TokenLease::revoke_one(const Held& h, const IssuedToken& token, const json& extra) {
    json fields = {{"credential", token.credential}, {"fingerprint", token.fingerprint}};
    if (!h.tool.empty()) fields.update(grant_fields(h.tool));
    fields.update(extra);
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

// Grants ------------------------------------------------------------------

Status TokenLease::open_tool(const std::string& tool) {
    auto it = profile_.tools.find(tool);
    if (it == profile_.tools.end())
        return plain_error("cannot grant " + tool + ": no such tool in the profile");
    // Deny wins: a credential a denied tool shares with a grantable one
    // must not come out by the denied tool's name.
    if (!contains(profile_.approval_required, tool))
        return plain_error("cannot grant " + tool + ": it is not in approvalRequired");
    if (contains(profile_.denied_tools, tool))
        return plain_error("cannot grant " + tool + ": it is in deniedTools, and deny wins");
    if (open_tools_.contains(tool)) return ok_status();
    std::vector<std::string> granted;  // by this call, withdrawn if a later one fails
    for (const auto& name : it->second.credentials) {
        if (!deferred_.contains(name) || out_.contains(name)) continue;
        auto st = grant_one(tool, name);
        if (st) {
            granted.push_back(name);
            continue;
        }
        if (profile_.credentials.at(name).optional) {
            json fields = {
                {"credential", name}, {"optional", true}, {"error", st.error().message()}};
            fields.update(grant_fields(tool));
            audit_.emit("credential.skip", subject_, fields);
            continue;
        }
        for (auto r = granted.rbegin(); r != granted.rend(); ++r) withdraw(tool, *r, true);
        return granting(tool, st.error());
    }
    open_tools_.insert(tool);
    arm();
    return ok_status();
}

Status TokenLease::grant_one(const std::string& tool, const std::string& name) {
    const profile::Credential& cred = profile_.credentials.at(name);
    if (cred.deliver_file.empty())
        return plain_error(
            "credentials." + name + ": delivered by env, it cannot reach an agent already running",
            "deliver it as a file");
    if (!dir_)
        return plain_error(
            "credentials." + name + ": the session's credentials directory is not open",
            "grant once the agent runs and TokenLease::watch has opened it");
    auto st = cred.source.issued() ? grant_token(tool, cred) : grant_static(tool, cred);
    if (st) out_.insert(name);
    return st;
}

// A token as at the start, then its file; a token that cannot reach the
// agent is revoked at once.
Status TokenLease::grant_token(const std::string& tool, const profile::Credential& cred) {
    auto secret = client_secrets_.find(cred.name);
    if (secret == client_secrets_.end())
        return plain_error(
            "credentials." + cred.name + ": its client secret was not read at launch",
            "load_static the credentials of grantable tools too");
    auto held = obtain(cred.name, secret->second);
    if (!held) return held.error();
    held->tool = tool;
    json fields = token_fields(held->token);
    fields.update(grant_fields(tool));
    audit_.emit("credential.issue", subject_, fields);
    if (auto st = dir_->replace(cred.deliver_file, held->token.token, uid_, gid_); !st) {
        revoke_one(*held, held->token);
        Error e = st.error();
        e.what = "credentials." + cred.name + ": " + e.what;
        return e;
    }
    plan_refresh(*held);
    held_.push_back(std::move(*held));
    return ok_status();
}

// A static source's value, as read at launch.
Status TokenLease::grant_static(const std::string& tool, const profile::Credential& cred) {
    auto kept = kept_.find(cred.name);
    if (kept == kept_.end())
        return plain_error("credentials." + cred.name + ": its source was not read at launch",
                           "load_static the credentials of grantable tools too, then defer_static");
    if (auto st = dir_->replace(cred.deliver_file, kept->second.value, uid_, gid_); !st) {
        Error e = st.error();
        e.what = "credentials." + cred.name + ": " + e.what;
        return e;
    }
    // No fingerprint: a static secret may be weak enough to guess from one.
    json fields = {{"credential", cred.name}, {"static", true}};
    fields.update(grant_fields(tool));
    audit_.emit("credential.issue", subject_, fields);
    return ok_status();
}

void TokenLease::close_tool(const std::string& tool) {
    if (!open_tools_.erase(tool)) return;
    for (const auto& name : profile_.tools.at(tool).credentials) {
        if (!out_.contains(name)) continue;
        auto other = open_tool_needing(name);
        if (!other) {
            withdraw(tool, name);
            continue;
        }
        // Still out for another grant: its refreshes and revocation name that one.
        for (auto& h : held_)
            if (h.token.credential == name) h.tool = *other;
    }
    arm();
}

std::optional<std::string> TokenLease::open_tool_needing(const std::string& name) const {
    for (const auto& t : open_tools_)
        if (contains(profile_.tools.at(t).credentials, name)) return t;
    return std::nullopt;
}

// The file goes first, so that the agent cannot read it again, then the
// token, so that a copy it kept stops working.
void TokenLease::withdraw(const std::string& tool, const std::string& name, bool undo) {
    out_.erase(name);
    const profile::Credential& cred = profile_.credentials.at(name);
    json fields = grant_fields(tool);
    if (undo) fields["undone"] = true;  // the grant failed on another credential
    auto removed = dir_->remove(cred.deliver_file);
    fields["removed"] = removed.ok();
    if (!removed) fields["removeError"] = removed.error().message();
    auto held = std::find_if(held_.begin(), held_.end(),
                             [&](const Held& h) { return h.token.credential == name; });
    if (held == held_.end()) {
        fields.update({{"credential", name},
                       {"static", true},
                       {"revoked", false},
                       {"reason", "a static secret: it stays valid at its source"}});
        audit_.emit("credential.revoke", subject_, fields);
        return;
    }
    revoke_one(*held, held->token, fields);
    held_.erase(held);
}

void TokenLease::revoke_all() {
    for (const auto& h : held_) revoke_one(h, h.token);
    held_.clear();
    open_tools_.clear();
    out_.clear();
    kept_.clear();
    if (timer_.valid()) timer_ = UniqueFd();
    // The descriptor would keep the session's tmpfs, and its files, alive.
    dir_.reset();
}

}  // namespace cordon::creds
