// SPDX-License-Identifier: Apache-2.0
#include "daemon/config.h"

#include <fstream>
#include <functional>
#include <sstream>

#include <nlohmann/json.hpp>

namespace cordon::daemon {
namespace {

using nlohmann::json;

// Reads one key into the Config; returns what was expected when it cannot.
using Reader = std::function<std::string(const json&, Config&)>;

Reader path_of(std::string Config::*member, bool absolute = true) {
    return [member, absolute](const json& v, Config& c) -> std::string {
        if (!v.is_string() || v.get_ref<const std::string&>().empty()) return "a non-empty string";
        const auto& text = v.get_ref<const std::string&>();
        if (absolute && text[0] != '/') return "an absolute path";
        c.*member = text;
        return {};
    };
}

std::string read_admin_groups(const json& v, Config& c) {
    if (!v.is_array()) return "an array of group names";
    c.admin_groups.clear();
    for (const auto& g : v) {
        if (!g.is_string() || g.get_ref<const std::string&>().empty())
            return "an array of group names";
        c.admin_groups.push_back(g.get<std::string>());
    }
    return {};
}

Reader count_of(unsigned Config::*member) {
    return [member](const json& v, Config& c) -> std::string {
        if (!v.is_number_unsigned() || v.get<uint64_t>() == 0 || v.get<uint64_t>() > 65536)
            return "a number of sessions from 1 to 65536";
        c.*member = v.get<unsigned>();
        return {};
    };
}

std::string read_audit_to_log(const json& v, Config& c) {
    if (!v.is_boolean()) return "true or false";
    c.audit_to_log = v.get<bool>();
    return {};
}

std::string read_log_level(const json& v, Config& c) {
    static const std::vector<std::string> kLevels{"trace", "debug", "info", "warn", "error", "off"};
    if (!v.is_string() ||
        std::find(kLevels.begin(), kLevels.end(), v.get<std::string>()) == kLevels.end())
        return "one of trace, debug, info, warn, error, off";
    c.log_level = v.get<std::string>();
    return {};
}

const std::vector<std::pair<const char*, Reader>>& readers() {
    static const std::vector<std::pair<const char*, Reader>> kReaders{
        {"socket", path_of(&Config::socket)},
        {"runDir", path_of(&Config::run_dir)},
        {"cgroup", path_of(&Config::cgroup, false)},
        {"bpfPinDir", path_of(&Config::bpf_pin_dir)},
        {"profilesDir", path_of(&Config::profiles_dir)},
        {"auditLog", path_of(&Config::audit_log)},
        {"seccompDir", path_of(&Config::seccomp_dir)},
        {"dnsUpstream", path_of(&Config::dns_upstream, false)},
        {"approvalsDir", path_of(&Config::approvals_dir)},
        {"adminGroups", read_admin_groups},
        {"maxSessions", count_of(&Config::max_sessions)},
        {"maxSessionsPerUser", count_of(&Config::max_sessions_per_user)},
        {"auditToLog", read_audit_to_log},
        {"logLevel", read_log_level},
    };
    return kReaders;
}

std::string key_list() {
    std::string keys;
    for (const auto& [key, _] : readers()) keys += (keys.empty() ? "" : ", ") + std::string(key);
    return keys;
}

}  // namespace

Result<Config> load_config(const std::string& path) {
    std::ifstream in(path);
    if (!in) return errno_error("cannot read " + path, "give another file with --config");
    std::stringstream text;
    text << in.rdbuf();
    json doc = json::parse(text.str(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object())
        return plain_error(path + ": not a JSON object", "see cordond(8) for the keys");
    Config config;
    for (const auto& item : doc.items()) {
        const auto& all = readers();
        auto it = std::find_if(all.begin(), all.end(),
                               [&](const auto& r) { return item.key() == r.first; });
        if (it == all.end())
            return plain_error(path + ": " + item.key() +
                               ": unknown key (expected one of: " + key_list() + ")");
        if (std::string expected = it->second(item.value(), config); !expected.empty())
            return plain_error(path + ": " + item.key() + ": expected " + expected + ", got " +
                               item.value().dump());
    }
    if (config.cgroup.find("..") != std::string::npos || config.cgroup[0] == '/')
        return plain_error(path + ": cgroup: expected a relative cgroup path without ..");
    return config;
}

launch::SessionOptions session_options(const Config& config) {
    launch::SessionOptions o;
    o.audit_log = config.audit_log;
    o.cgroup_name = config.cgroup;
    o.bpf_pin_dir = config.bpf_pin_dir;
    o.run_dir = config.run_dir;
    o.seccomp_dir = config.seccomp_dir;
    o.dns_upstream = config.dns_upstream;
    o.approvals_dir = config.approvals_dir;
    return o;
}

}  // namespace cordon::daemon
