// SPDX-License-Identifier: Apache-2.0
#include "launch/view.h"

#include <algorithm>
#include <filesystem>

#include "approval/broker.h"

namespace cordon::launch {
namespace {

// Host-wide sockets: connecting to one is acting as its service's client,
// and to most of them (docker, containerd, podman, systemd's private bus)
// being root's equal.
constexpr const char* kHostSockets[] = {
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock.ttrpc",
    "/run/podman/podman.sock",
    "/run/systemd/private",
    "/run/systemd/notify",
    "/run/systemd/io.system.ManagedOOM",
    "/run/systemd/io.systemd.ManagedOOM",
    "/run/systemd/userdb/io.systemd.DynamicUser",
    "/run/dbus/system_bus_socket",
    "/var/run/dbus/system_bus_socket",
};

// Per-user sockets below /run/user/UID.
constexpr const char* kUserSockets[] = {
    "bus", "docker.sock", "podman/podman.sock", "systemd/private", "systemd/notify",
};

}  // namespace

std::string scratch_dir_of(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path real = fs::weakly_canonical(fs::absolute(path, ec), ec);
    if (ec) return {};
    for (const char* dir : kScratchDirs) {
        fs::path scratch = fs::weakly_canonical(dir, ec);
        if (ec) continue;
        auto [end, _] = std::mismatch(scratch.begin(), scratch.end(), real.begin(), real.end());
        if (end == scratch.end()) return dir;
    }
    return {};
}

Status refuse_command_in_scratch(const std::string& command) {
    if (command.find('/') == std::string::npos) return ok_status();
    std::string dir = scratch_dir_of(command);
    if (dir.empty()) return ok_status();
    return plain_error(
        "cannot execute " + command + ": it is beneath " + dir +
            ", which the session replaces with an empty private " + dir,
        "put the program elsewhere (/usr/local/bin, /opt, /srv) and run it from there");
}

std::string agent_working_dir(std::string& warning) {
    std::error_code ec;
    std::string cwd = std::filesystem::current_path(ec).string();
    if (ec) return "/";
    std::string dir = scratch_dir_of(cwd);
    if (dir.empty()) return cwd;
    warning = "the working directory " + cwd + " is beneath " + dir +
              ", which the session replaces with an empty private " + dir +
              ": the agent starts in /";
    return "/";
}

std::vector<std::string> host_control_sockets() {
    namespace fs = std::filesystem;
    std::vector<std::string> paths(std::begin(kHostSockets), std::end(kHostSockets));
    std::error_code ec;
    for (const auto& user : fs::directory_iterator("/run/user", ec))
        for (const char* socket : kUserSockets) paths.push_back(user.path() / socket);
    return paths;
}

void add_private_view(MountPlan& plan) {
    namespace fs = std::filesystem;
    plan.steps.push_back({MountStep::Kind::procfs, "proc", "/proc", {}});
    std::error_code ec;
    for (const char* dir : kScratchDirs)
        if (fs::is_directory(dir, ec))
            plan.steps.push_back({MountStep::Kind::tmpfs, "tmpfs", dir, kScratchOptions});
    mask_sockets(plan, host_control_sockets());
}

void add_credentials_view(MountPlan& plan, const std::optional<creds::CredentialsDir>& dir) {
    if (dir)
        plan.steps.push_back(
            {MountStep::Kind::secrets_tmpfs, "tmpfs", creds::kCredentialsDir, dir->mount_options});
}

}  // namespace cordon::launch

namespace cordon::launch {

void add_approval_view(MountPlan& plan, const std::string& dir) {
    // A bind of a directory takes the same steps as one of a file. Connecting
    // to a socket needs no write access to its filesystem (unix(7)).
    plan.steps.push_back({MountStep::Kind::bind_file_ro, dir, approval::kAgentSocketDir, {}});
}

}  // namespace cordon::launch
