// SPDX-License-Identifier: Apache-2.0
#include "launch/mounts.h"

#include <sched.h>
#include <sys/mount.h>

#include <cerrno>
#include <filesystem>
#include <set>

namespace cordon::launch {
namespace {

int apply_step(const MountStep& step) {
    constexpr unsigned long kHardened = MS_NOSUID | MS_NODEV;
    switch (step.kind) {
        case MountStep::Kind::bind_file_ro:
            if (::mount(step.source.c_str(), step.target.c_str(), nullptr, MS_BIND, nullptr) != 0)
                return -errno;
            // A bind mount takes its flags only on a remount (mount(2), MS_BIND).
            if (::mount(nullptr, step.target.c_str(), nullptr,
                        MS_BIND | MS_REMOUNT | MS_RDONLY | kHardened | MS_NOEXEC, nullptr) != 0)
                return -errno;
            return 0;
        case MountStep::Kind::tmpfs:
            if (::mount("tmpfs", step.target.c_str(), "tmpfs", kHardened,
                        step.options.empty() ? nullptr : step.options.c_str()) != 0)
                return -errno;
            return 0;
        case MountStep::Kind::secrets_tmpfs:
            if (::mount("tmpfs", step.target.c_str(), "tmpfs", kHardened | MS_NOEXEC,
                        step.options.c_str()) != 0)
                return -errno;
            return 0;
        case MountStep::Kind::procfs:
            if (::mount("proc", step.target.c_str(), "proc", kHardened | MS_NOEXEC, nullptr) != 0)
                return -errno;
            return 0;
    }
    return -EINVAL;
}

}  // namespace

Result<MountPlan> dns_view(const std::string& resolv_conf) {
    namespace fs = std::filesystem;
    // Ubuntu links /etc/resolv.conf into /run/systemd/resolve; a bind mount
    // follows the link, so the file it names is the one to cover.
    std::error_code ec;
    fs::path host = fs::canonical("/etc/resolv.conf", ec);
    if (ec || !fs::is_regular_file(host))
        return plain_error("cannot lay the session's resolv.conf over /etc/resolv.conf: " +
                               (ec ? ec.message() : std::string("not a regular file")),
                           "create /etc/resolv.conf on this host");
    MountPlan plan;
    plan.steps.push_back({MountStep::Kind::bind_file_ro, resolv_conf, host.string(), {}});
    mask_sockets(plan, {
                           "/run/systemd/resolve/io.systemd.Resolve",
                           "/run/systemd/resolve/io.systemd.Resolve.Monitor",
                           "/run/nscd/socket",
                           "/var/run/nscd/socket",
                           "/run/dbus/system_bus_socket",
                       });
    return plan;
}

void mask_sockets(MountPlan& plan, const std::vector<std::string>& paths) {
    namespace fs = std::filesystem;
    std::set<std::string> covered;
    for (const auto& step : plan.steps) covered.insert(step.target);
    std::error_code ec;
    for (const auto& path : paths) {
        fs::path real = fs::canonical(path, ec);
        if (!ec && fs::is_socket(real) && covered.insert(real.string()).second)
            plan.steps.push_back({MountStep::Kind::bind_file_ro, "/dev/null", real.string(), {}});
    }
}

int apply(const MountPlan& plan, int* failed_step) {
    *failed_step = -1;
    if (::unshare(CLONE_NEWNS) != 0) return -errno;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) return -errno;
    for (size_t i = 0; i < plan.steps.size(); ++i) {
        int rc = apply_step(plan.steps[i]);
        if (rc != 0) {
            *failed_step = static_cast<int>(i);
            return rc;
        }
    }
    return 0;
}

}  // namespace cordon::launch
