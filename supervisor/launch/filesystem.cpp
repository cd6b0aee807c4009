// SPDX-License-Identifier: Apache-2.0
#include "launch/filesystem.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch/spawn.h"

namespace cordon::launch {
namespace {

// The file execvpe will run for `command`: the first of its candidates
// that the agent's account may execute, as the kernel answers a child
// that takes the account's identity (directory modes and ACLs included;
// root may see files on PATH the agent cannot reach). Empty when none:
// execve then fails as it would without Landlock.
std::string command_file(const std::string& command, const Identity& identity) {
    std::vector<std::string> candidates = path_candidates(command);
    if (candidates.empty()) candidates.push_back(command);
    std::vector<const char*> paths;
    for (const auto& c : candidates) paths.push_back(c.c_str());
    constexpr int kNone = 255;
    pid_t pid = ::fork();
    if (pid < 0) return {};
    if (pid == 0) {
        if (become(identity) != 0) ::_exit(kNone);
        struct stat st {};
        for (size_t i = 0; i < paths.size() && i < kNone; ++i)
            if (::access(paths[i], X_OK) == 0 && ::stat(paths[i], &st) == 0 && S_ISREG(st.st_mode))
                ::_exit(static_cast<int>(i));
        ::_exit(kNone);
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) == kNone)
        return {};
    return candidates[WEXITSTATUS(status)];
}

}  // namespace

Result<landlock::Ruleset> filesystem_rules(const profile::FilesystemPolicy& policy,
                                           const std::vector<std::string>& command,
                                           const Identity& identity) {
    auto support = landlock::support_for(landlock::abi_version());
    if (!support) return support.error();
    std::vector<std::string> executables;
    if (!command.empty())
        if (std::string file = command_file(command[0], identity); !file.empty())
            executables.push_back(file);
    return landlock::build(policy, executables, *support);
}

}  // namespace cordon::launch
