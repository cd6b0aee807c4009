// SPDX-License-Identifier: Apache-2.0
#include "launch/limits.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "cordon/fd.h"

namespace cordon::launch {
namespace {

using nlohmann::json;

// cpu.max's period, in microseconds (the kernel's default).
constexpr uint64_t kCpuPeriodUs = 100000;

bool has(const std::vector<std::string>& list, const std::string& name) {
    return std::find(list.begin(), list.end(), name) != list.end();
}

// One write(2), as the kernel wants control files written: its errno is the answer.
Status write_file(const std::string& path, const std::string& value, const std::string& hint) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid() || ::write(fd.get(), value.data(), value.size()) < 0)
        return errno_error("cannot write \"" + value + "\" to " + path, hint);
    return ok_status();
}

// Limit `key` through the controller's file where the controller exists,
// else through the rlimit, with the warning that says what the rlimit misses.
struct Route {
    const char* key;
    const char* controller;
    const char* rlimit_name;
    const char* rlimit_misses;
};

constexpr Route kPids{"pids", "pids", "RLIMIT_NPROC",
                      "it counts every process of the agent's account on the whole host, "
                      "other sessions' included, not the session's tasks; a fork past it "
                      "fails with EAGAIN"};
constexpr Route kMemory{"memory", "memory", "RLIMIT_AS",
                        "it caps each process's address space, not the session's memory: each "
                        "process of the session may use that much, memory written into memfds, "
                        "pipes, SysV shared memory and tmpfs is not counted at all (the "
                        "session's memory is not bounded), and programs that reserve large "
                        "address ranges (Go, Java, Node.js) may fail below it"};
constexpr Route kCpu{"cpu", "cpu", "RLIMIT_CPU",
                     "it is the share times the session's longest life in CPU seconds, per "
                     "process: it caps no rate, and a process past it is killed (SIGXCPU, "
                     "then SIGKILL)"};

void route(LimitsPlan& plan, const Route& r, const std::vector<std::string>& available,
           std::vector<std::pair<std::string, std::string>> files, int resource, rlim_t value,
           json shown) {
    if (has(available, r.controller)) {
        plan.controllers.push_back(r.controller);
        for (auto& f : files) plan.cgroup_files.push_back(std::move(f));
        shown["enforcedBy"] = std::string("cgroup ") + r.controller + " controller";
    } else {
        plan.rlimits.push_back({resource, value});
        shown["enforcedBy"] = r.rlimit_name;
        shown["rlimit"] = value;
        plan.warnings.push_back(std::string("limits.") + r.key + ": the cgroup " + r.controller +
                                " controller is not available to Cordon's cgroup on this host "
                                "(a hybrid host binds it to cgroup v1); enforced by " +
                                r.rlimit_name + " instead, which is weaker: " + r.rlimit_misses);
    }
    plan.fields[r.key] = std::move(shown);
}

}  // namespace

LimitsPlan plan_limits(const profile::Limits& limits, const std::vector<std::string>& available,
                       std::chrono::seconds duration) {
    LimitsPlan plan;
    plan.fields = json::object();
    if (limits.pids) {
        auto n = std::to_string(*limits.pids);
        route(plan, kPids, available, {{"pids.max", n}}, RLIMIT_NPROC, *limits.pids,
              {{"max", *limits.pids}});
    }
    if (limits.memory) {
        auto bytes = std::to_string(*limits.memory);
        route(plan, kMemory, available, {{"memory.max", bytes}, {"memory.swap.max", "0"}},
              RLIMIT_AS, *limits.memory, {{"bytes", *limits.memory}});
    }
    if (limits.cpu_percent) {
        uint64_t quota = *limits.cpu_percent * kCpuPeriodUs / 100;
        // Rounded up: a share of a short session still gets a whole second.
        uint64_t seconds = (*limits.cpu_percent * duration.count() + 99) / 100;
        route(plan, kCpu, available,
              {{"cpu.max", std::to_string(quota) + " " + std::to_string(kCpuPeriodUs)}}, RLIMIT_CPU,
              std::max<uint64_t>(seconds, 1), {{"percentOfOneCpu", *limits.cpu_percent}});
    }
    return plan;
}

Result<std::vector<std::string>> available_controllers(const std::string& cgroup2_mount) {
    std::string path = cgroup2_mount + "/cgroup.controllers";
    std::ifstream in(path);
    if (!in) return errno_error("cannot read " + path);
    std::vector<std::string> names;
    for (std::string name; in >> name;) names.push_back(name);
    return names;
}

Status apply_cgroup_limits(const LimitsPlan& plan, const std::string& cgroup2_mount,
                           const std::string& root, const std::string& session_dir) {
    if (plan.cgroup_files.empty()) return ok_status();
    // Each cgroup from the mount down to Cordon's root passes the controllers on.
    std::vector<std::string> parents{cgroup2_mount};
    for (size_t at = root.find('/', cgroup2_mount.size() + 1); at != std::string::npos;
         at = root.find('/', at + 1))
        parents.push_back(root.substr(0, at));
    parents.push_back(root);
    for (const auto& dir : parents)
        for (const auto& controller : plan.controllers)
            if (auto st = write_file(dir + "/cgroup.subtree_control", "+" + controller,
                                     "the controller is listed but cannot be enabled; nothing "
                                     "was started");
                !st)
                return st;
    for (const auto& [file, value] : plan.cgroup_files)
        if (auto st = write_file(session_dir + "/" + file, value,
                                 "the session's limit cannot be set; nothing was started");
            !st)
            return st;
    return ok_status();
}

int apply_rlimits(const std::vector<RlimitStep>& steps) {
    for (const auto& step : steps) {
        rlimit value{step.value, step.value};
        if (::setrlimit(static_cast<__rlimit_resource_t>(step.resource), &value) != 0)
            return -errno;
    }
    return 0;
}

}  // namespace cordon::launch
