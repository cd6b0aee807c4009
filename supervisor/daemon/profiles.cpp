// SPDX-License-Identifier: Apache-2.0
#include "daemon/profiles.h"

#include <filesystem>

namespace cordon::daemon {

namespace fs = std::filesystem;

const InstalledProfile* ProfileSet::find(const std::string& name_or_path) const {
    if (auto it = by_name.find(name_or_path); it != by_name.end()) return &it->second;
    if (name_or_path.find('/') == std::string::npos) return nullptr;
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(name_or_path, ec);
    if (ec) return nullptr;
    for (const auto& [_, p] : by_name)
        if (p.path == canonical.string()) return &p;
    return nullptr;
}

ProfileSet load_profiles(const std::string& dir, profile::TimePoint now) {
    ProfileSet set;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
        set.errors.push_back(plain_error("cannot list profiles in " + dir + ": " + ec.message(),
                                         "create it and put profiles there as NAME.json"));
        return set;
    }
    for (const auto& entry : it) {
        if (entry.path().extension() != ".json" || !entry.is_regular_file(ec)) continue;
        std::string path = fs::weakly_canonical(entry.path(), ec).string();
        try {
            auto p = profile::load_profile(path, now);
            std::string name = entry.path().stem().string();
            set.by_name[name] = {
                name,       path, p.identity.agent_id, p.identity.agent_type, p.identity.version,
                p.launchers};
        } catch (const std::exception& e) {
            set.errors.push_back(plain_error(std::string(e.what()) + " (profile left out)"));
        }
    }
    return set;
}

}  // namespace cordon::daemon
