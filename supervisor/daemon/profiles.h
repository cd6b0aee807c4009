// SPDX-License-Identifier: Apache-2.0
// The profiles cordond may launch: every *.json of its profiles directory
// that validates, by name (the file name without .json). A profile that
// does not validate is reported and left out, never half-loaded.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "cordon/result.h"
#include "profile/profile.h"

namespace cordon::daemon {

struct InstalledProfile {
    std::string name;
    std::string path;  // canonical
    std::string agent_id;
    std::string agent_type;
    std::string version;
    profile::Launchers launchers;
};

struct ProfileSet {
    std::map<std::string, InstalledProfile> by_name;
    std::vector<Error> errors;  // one per profile left out

    // By name, or by the path of an installed profile; null when neither.
    const InstalledProfile* find(const std::string& name_or_path) const;
};

ProfileSet load_profiles(const std::string& dir, profile::TimePoint now);

}  // namespace cordon::daemon
