// SPDX-License-Identifier: Apache-2.0
#include "launch/mounts.h"

#include <sched.h>
#include <sys/mount.h>

#include <cerrno>

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
    }
    return -EINVAL;
}

}  // namespace

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
