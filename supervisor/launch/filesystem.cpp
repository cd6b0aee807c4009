// SPDX-License-Identifier: Apache-2.0
#include "launch/filesystem.h"

#include <filesystem>

#include "launch/spawn.h"

namespace cordon::launch {
namespace {

// The file the command names: itself when it has a '/', else the first
// regular file among execvpe's PATH candidates. Empty when none (execve
// will then fail with 127, as without Landlock).
std::string command_file(const std::string& command) {
    std::vector<std::string> candidates = path_candidates(command);
    if (candidates.empty()) candidates.push_back(command);
    for (const auto& c : candidates) {
        std::error_code ec;
        if (std::filesystem::is_regular_file(c, ec)) return c;
    }
    return {};
}

}  // namespace

Result<landlock::Ruleset> filesystem_rules(const profile::FilesystemPolicy& policy,
                                           const std::vector<std::string>& command) {
    auto support = landlock::support_for(landlock::abi_version());
    if (!support) return support.error();
    std::vector<std::string> executables;
    if (!command.empty())
        if (std::string file = command_file(command[0]); !file.empty()) executables.push_back(file);
    return landlock::build(policy, executables, *support);
}

}  // namespace cordon::launch
