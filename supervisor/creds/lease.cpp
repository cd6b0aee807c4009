// SPDX-License-Identifier: Apache-2.0
#include "creds/lease.h"

namespace cordon::creds {

TokenLease::TokenLease(const profile::Profile& profile, audit::AuditLog& audit,
                       audit::Subject subject, std::vector<IssuedToken> tokens)
    : profile_(profile), audit_(audit), subject_(std::move(subject)), tokens_(std::move(tokens)) {
    for (const auto& t : tokens_)
        audit_.emit("credential.issue", subject_,
                    {{"credential", t.credential},
                     {"fingerprint", t.fingerprint},
                     {"scope", t.scope},
                     {"expiresIn", t.expires_in.count()}});
}

std::vector<Delivery> TokenLease::deliveries() const {
    std::vector<Delivery> out;
    for (const auto& t : tokens_) {
        const auto& cred = profile_.credentials.at(t.credential);
        out.push_back(
            Delivery{t.credential, cred.deliver_env, cred.deliver_file, Secret(t.token.reveal())});
    }
    return out;
}

void TokenLease::revoke_all() {
    for (const auto& t : tokens_) {
        const auto& cred = profile_.credentials.at(t.credential);
        nlohmann::json fields = {{"credential", t.credential}, {"fingerprint", t.fingerprint}};
        if (cred.source.oauth.revocation_url.empty()) {
            fields["revoked"] = false;
            fields["reason"] = "no revocationUrl: the token lives until it expires";
        } else if (auto st = revoke(cred, t); !st) {
            fields["revoked"] = false;
            fields["error"] = st.error().message();
            fields["expiresIn"] = t.expires_in.count();
        } else {
            fields["revoked"] = true;
        }
        audit_.emit("credential.revoke", subject_, fields);
    }
    tokens_.clear();
}

}  // namespace cordon::creds
