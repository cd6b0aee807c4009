// SPDX-License-Identifier: Apache-2.0
#include "launch/view.h"

#include <filesystem>

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
    for (const char* dir : {"/tmp", "/var/tmp", "/dev/shm"})
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
