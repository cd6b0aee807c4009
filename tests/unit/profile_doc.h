// SPDX-License-Identifier: Apache-2.0
// The smallest valid profile document, for unit tests of one section.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "profile/profile.h"

namespace cordon::test_support {

// The clock the unit tests parse profiles at: before the documents' expiresAt.
inline const profile::TimePoint kProfileNow = profile::parse_rfc3339("2026-06-01T00:00:00Z");

// apiVersion and identity, plus `key`: `value` when a key is given.
inline nlohmann::json minimal_profile(const std::string& key = "", nlohmann::json value = {}) {
    nlohmann::json doc = {{"apiVersion", "cordon/v1"},
                          {"identity",
                           {{"agentId", "a"},
                            {"agentType", "t"},
                            {"version", "1"},
                            {"expiresAt", "2027-01-31T00:00:00Z"}}}};
    if (!key.empty()) doc[key] = std::move(value);
    return doc;
}

}  // namespace cordon::test_support
