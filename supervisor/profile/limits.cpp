// SPDX-License-Identifier: Apache-2.0
// The profile's limits object: pids, memory and cpu.
#include <array>
#include <string>

#include "profile/fields.h"

namespace cordon::profile::detail {
namespace {

// The session's init is one task, the agent another.
constexpr uint64_t kMinPids = 2;
// The kernel's own ceiling on tasks (PID_MAX_LIMIT on 64-bit).
constexpr uint64_t kMaxPids = 4194304;
// 1024 CPUs: more than any share a profile means.
constexpr uint64_t kMaxCpuPercent = 102400;

void read_pids(const json& value, const std::string& path, Limits& out) {
    if (!value.is_number_integer()) wrong_type(value, path, "a number of tasks such as 256");
    if (value.get<int64_t>() < static_cast<int64_t>(kMinPids) || value.get<uint64_t>() > kMaxPids)
        throw ProfileError(path, "is " + value.dump() + " (expected a number of tasks from " +
                                     std::to_string(kMinPids) + " to " + std::to_string(kMaxPids) +
                                     ", the session's init and the agent included)");
    out.pids = value.get<uint64_t>();
}

void read_memory(const json& value, const std::string& path, Limits& out) {
    out.memory = read_positive_size(value, path, "leave memory out for no limit");
}

// "50%": half of one CPU; "250%": two and a half.
void read_cpu(const json& value, const std::string& path, Limits& out) {
    constexpr const char* kExpected =
        "a share of one CPU in percent, such as \"50%\" (half a CPU) or \"200%\" (two)";
    if (!value.is_string()) wrong_type(value, path, kExpected);
    const auto& text = value.get_ref<const std::string&>();
    size_t digits = text.find_first_not_of("0123456789");
    bool well_formed = digits > 0 && digits <= 6 && digits == text.size() - 1 && text.back() == '%';
    uint64_t percent = well_formed ? std::stoull(text.substr(0, digits)) : 0;
    if (!well_formed || percent == 0 || percent > kMaxCpuPercent)
        throw ProfileError(path, "\"" + text + "\" is not a CPU share (expected " + kExpected +
                                     ", from 1% to " + std::to_string(kMaxCpuPercent) + "%)");
    out.cpu_percent = percent;
}

constexpr std::array<Field<Limits>, 3> kLimitsFields{{
    {"pids", false, "a number of tasks", read_pids},
    {"memory", false, "a size such as \"512M\"", read_memory},
    {"cpu", false, "a share of one CPU such as \"50%\"", read_cpu},
}};

}  // namespace

void read_limits(const json& value, const std::string& path, Profile& out) {
    read_object<Limits>(value, path, kLimitsFields, out.limits);
}

}  // namespace cordon::profile::detail
