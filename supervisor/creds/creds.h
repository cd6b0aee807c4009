// SPDX-License-Identifier: Apache-2.0
// Credentials the session delivers to its agent. A secret lives in a
// Secret, which has no way to be printed, formatted or serialised and wipes
// its memory when destroyed: redaction is a property of the type, not a
// habit of the caller.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cordon/result.h"
#include "profile/profile.h"

namespace cordon::creds {

class Secret {
  public:
    Secret() = default;
    explicit Secret(std::string value) : value_(std::move(value)) {}
    Secret(Secret&& other) noexcept;
    Secret& operator=(Secret&& other) noexcept;
    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;
    ~Secret();

    // The only way to the value. Callers hand it to the agent and nowhere else.
    const std::string& reveal() const { return value_; }
    bool empty() const { return value_.empty(); }

  private:
    void wipe();
    std::string value_;
};

struct Delivery {
    std::string credential;  // name in the profile
    std::string env;         // variable the agent receives it in, or empty
    std::string file;        // else its file's name in the credentials directory
    Secret value;
};

// What agent-run reads of `needed` credentials (those of allowed tools) at
// launch, once: the values of static sources, and the client secrets of
// oauth sources, kept to issue and then revoke their tokens.
struct Loaded {
    std::vector<Delivery> deliveries;
    std::map<std::string, Secret> client_secrets;  // by credential name
    Secret subject_token;  // the user's, when a tokenExchange credential is needed
};

// Reads the sources of `needed` credentials, and the user's token from
// `subject_token_file` when one of them exchanges it. A missing file or
// variable, or an empty value, is an error that names the credential and
// its source, never its value.
Result<Loaded> load_static(const profile::Profile& profile, const std::vector<std::string>& needed,
                           const std::string& subject_token_file);

// Variables of the supervisor's environment that feed any credential of the
// profile: they must not leak into the agent's environment.
std::vector<std::string> source_variables(const profile::Profile& profile);

}  // namespace cordon::creds
