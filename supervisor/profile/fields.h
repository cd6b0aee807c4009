// SPDX-License-Identifier: Apache-2.0
// Table-driven reading of JSON objects for the profile parser (internal to
// supervisor/profile). Each object of the format is a table of Field: its
// key, whether it is required, what a valid value looks like and the
// function that reads it. Keys not in the table are errors.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <span>
#include <string>

#include "profile/profile.h"

namespace cordon::profile::detail {

using json = nlohmann::json;

inline std::string join_path(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
}

inline std::string index_path(const std::string& path, size_t i) {
    return path + "[" + std::to_string(i) + "]";
}

[[noreturn]] inline void wrong_type(const json& value, const std::string& path,
                                    const std::string& expected) {
    throw ProfileError(path, "expected " + expected + ", got " + value.type_name());
}

inline const std::string& read_string(const json& value, const std::string& path,
                                      const std::string& expected) {
    if (!value.is_string()) wrong_type(value, path, expected);
    return value.get_ref<const std::string&>();
}

inline void read_url(const json& value, const std::string& path, std::string& out) {
    out = read_string(value, path, "an http:// or https:// URL");
    if (out.rfind("https://", 0) != 0 && out.rfind("http://", 0) != 0)
        throw ProfileError(path, "\"" + out + "\" is not an http:// or https:// URL");
}

// A duration string such as "30s" or "15m".
inline std::chrono::seconds read_duration(const json& value, const std::string& path) {
    const std::string& text = read_string(value, path, "a duration string such as \"30s\"");
    try {
        return parse_duration(text);
    } catch (const std::invalid_argument& e) {
        throw ProfileError(path, e.what());
    }
}

template <typename T>
struct Field {
    const char* key;
    bool required;
    const char* expected;  // "an RFC 3339 time such as ...", shown when missing
    void (*read)(const json& value, const std::string& path, T& out);
};

template <typename T>
std::string key_list(std::span<const Field<T>> fields) {
    std::string keys;
    for (const Field<T>& f : fields) keys += (keys.empty() ? "" : ", ") + std::string(f.key);
    return keys;
}

// Reads the object at `path` into out through `fields`.
template <typename T>
void read_object(const json& value, const std::string& path, std::span<const Field<T>> fields,
                 T& out) {
    if (!value.is_object()) wrong_type(value, path, "an object with keys " + key_list(fields));
    for (const auto& item : value.items()) {
        auto known = std::find_if(fields.begin(), fields.end(),
                                  [&](const Field<T>& f) { return item.key() == f.key; });
        if (known == fields.end()) {
            throw ProfileError(join_path(path, item.key()),
                               "unknown key (expected one of: " + key_list(fields) + ")");
        }
    }
    for (const Field<T>& f : fields) {
        auto it = value.find(f.key);
        if (it != value.end()) {
            f.read(*it, join_path(path, f.key), out);
        } else if (f.required) {
            throw ProfileError(join_path(path, f.key),
                               std::string("missing (") + f.expected + " is required)");
        }
    }
}

// A size: a string such as "10M" or a JSON integer of bytes, positive.
// `unset_hint` says how to have none ("leave egressBudget out for no budget").
uint64_t read_positive_size(const json& value, const std::string& path,
                            const std::string& unset_hint);

// The limits object (profile/limits.cpp).
void read_limits(const json& value, const std::string& path, Profile& out);

// The launchers object (profile/launchers.cpp).
void read_launchers(const json& value, const std::string& path, Profile& out);

// An object of users and groups, as launchers and approval.approvers are.
void read_accounts(const json& value, const std::string& path, Launchers& out);

// The approval object (profile/approval.cpp), and its checks against the
// rest of the profile once everything is read.
void read_approval(const json& value, const std::string& path, Profile& out);
void check_approval(const Profile& profile);

}  // namespace cordon::profile::detail
