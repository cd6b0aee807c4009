// SPDX-License-Identifier: Apache-2.0
// cordond: Cordon's supervisor daemon. Serves launch requests from
// permitted users over a Unix socket and runs each session in a child of
// its own (see supervisor/daemon).
//
//   cordond [--config FILE] [--socket PATH] [--run-dir DIR] ...
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <iostream>

#include "daemon/config.h"
#include "daemon/delegation.h"
#include "daemon/profiles.h"
#include "daemon/server.h"

namespace {

using cordon::daemon::Config;

// Options that override the file's keys, for tests and second instances.
struct Overrides {
    std::string socket, run_dir, cgroup, bpf_pin_dir, profiles_dir, audit_log, log_level;
};

void add_overrides(CLI::App& app, Overrides& o) {
    app.add_option("--socket", o.socket, "the API socket (socket)")->type_name("PATH");
    app.add_option("--run-dir", o.run_dir, "root-only state directory (runDir)")->type_name("DIR");
    app.add_option("--cgroup", o.cgroup, "Cordon's root cgroup below the cgroup2 mount (cgroup)")
        ->type_name("NAME");
    app.add_option("--bpf-pin-dir", o.bpf_pin_dir, "where BPF objects are pinned (bpfPinDir)")
        ->type_name("DIR");
    app.add_option("--profiles-dir", o.profiles_dir, "the launchable profiles (profilesDir)")
        ->type_name("DIR");
    app.add_option("--audit-log", o.audit_log, "the audit log file (auditLog)")->type_name("FILE");
    app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error or off (logLevel)")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
}

void apply(const Overrides& o, Config& c) {
    for (auto [from, to] : {std::pair{&o.socket, &c.socket},
                            {&o.run_dir, &c.run_dir},
                            {&o.cgroup, &c.cgroup},
                            {&o.bpf_pin_dir, &c.bpf_pin_dir},
                            {&o.profiles_dir, &c.profiles_dir},
                            {&o.audit_log, &c.audit_log},
                            {&o.log_level, &c.log_level}})
        if (!from->empty()) *to = *from;
}

// To the journal under systemd (it adds time and name), to stderr otherwise.
void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("cordond");
    logger->set_pattern("cordond: %^%l%$: %v");
    logger->set_level(spdlog::level::from_str(level));
    spdlog::set_default_logger(logger);
}

// --check: the configuration and every profile, then exit.
int check(const Config& config) {
    auto set = cordon::daemon::load_profiles(
        config.profiles_dir,
        std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
    for (const auto& e : set.errors) spdlog::error("{}", e.message());
    for (const auto& [name, p] : set.by_name) std::cout << name << ": " << p.path << "\n";
    return set.errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    // Session children hold credentials, as agent-run does.
    (void)::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    CLI::App app{"Cordon's supervisor daemon: launches agents for permitted users."};
    std::string config_path = cordon::daemon::kDefaultConfig;
    bool check_only = false;
    Overrides overrides;
    app.add_option("-c,--config", config_path, "the configuration file")
        ->type_name("FILE")
        ->capture_default_str();
    app.add_flag("--check", check_only, "check the configuration and profiles, then exit");
    add_overrides(app, overrides);
    CLI11_PARSE(app, argc, argv);

    auto config = cordon::daemon::load_config(config_path);
    if (!config) {
        std::cerr << "cordond: error: " << config.error().message() << "\n";
        return 1;
    }
    apply(overrides, *config);
    setup_logging(config->log_level);
    if (check_only) return check(*config);
    if (::geteuid() != 0) {
        spdlog::error("cordond must run as root (it creates cgroups and attaches BPF programs)");
        return 1;
    }
    auto cgroup = cordon::daemon::sessions_cgroup(config->cgroup);
    if (!cgroup) {
        spdlog::error("{}", cgroup.error().message());
        return 1;
    }
    config->cgroup = *cgroup;
    return cordon::daemon::serve(*config, config_path);
}
