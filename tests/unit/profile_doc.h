// SPDX-License-Identifier: Apache-2.0
// The smallest valid profile document, for unit tests of one section.
#pragma once

#include <gtest/gtest.h>

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

// Parses doc at kProfileNow and expects exactly the error "PATH: REASON".
inline void expect_profile_error(const nlohmann::json& doc, const std::string& path,
                                 const std::string& reason) {
    try {
        profile::parse_profile(doc, kProfileNow);
        ADD_FAILURE() << "no error, expected " << path << ": " << reason;
    } catch (const profile::ProfileError& e) {
        EXPECT_EQ(e.path(), path);
        EXPECT_EQ(e.reason(), reason);
        EXPECT_EQ(std::string(e.what()), path.empty() ? reason : path + ": " + reason);
    }
}

}  // namespace cordon::test_support
