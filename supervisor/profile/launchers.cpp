// SPDX-License-Identifier: Apache-2.0
// The profile's launchers object: the users and groups cordond lets start
// a session of it.
#include <algorithm>
#include <array>
#include <regex>
#include <string>

#include "profile/fields.h"

namespace cordon::profile::detail {
namespace {

// POSIX portable names, as useradd and groupadd accept them, or a number.
std::vector<std::string> read_account_list(const json& value, const std::string& path,
                                           const char* kind) {
    static const std::regex kName("[a-z_][a-z0-9_-]{0,31}[$]?|[0-9]{1,10}");
    std::string expected = std::string("an array of ") + kind + " names or numeric ids";
    if (!value.is_array()) wrong_type(value, path, expected);
    std::vector<std::string> names;
    for (size_t i = 0; i < value.size(); ++i) {
        std::string at = index_path(path, i);
        if (!value[i].is_string()) wrong_type(value[i], at, std::string("a ") + kind + " name");
        const auto& name = value[i].get_ref<const std::string&>();
        if (!std::regex_match(name, kName))
            throw ProfileError(at, "\"" + name + "\" is not a " + kind + " name or numeric id");
        if (std::find(names.begin(), names.end(), name) != names.end())
            throw ProfileError(at, "\"" + name + "\" is listed twice (list it once)");
        names.push_back(name);
    }
    return names;
}

constexpr std::array<Field<Launchers>, 2> kLaunchersFields{{
    {"users", false, "an array of user names",
     [](const json& v, const std::string& p, Launchers& out) {
         out.users = read_account_list(v, p, "user");
     }},
    {"groups", false, "an array of group names",
     [](const json& v, const std::string& p, Launchers& out) {
         out.groups = read_account_list(v, p, "group");
     }},
}};

}  // namespace

void read_accounts(const json& value, const std::string& path, Launchers& out) {
    read_object<Launchers>(value, path, kLaunchersFields, out);
}

void read_launchers(const json& value, const std::string& path, Profile& out) {
    read_accounts(value, path, out.launchers);
}

}  // namespace cordon::profile::detail
