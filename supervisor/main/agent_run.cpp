// SPDX-License-Identifier: Apache-2.0
// agent-run: launches one agent under its NHI profile, standalone.
//
//   agent-run --profile PROFILE [options] -- COMMAND [ARG...]
//   agent-run --check --profile PROFILE
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "launch/session.h"

namespace {

void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("agent-run");
    logger->set_pattern("agent-run: %^%l%$: %v");
    logger->set_level(spdlog::level::from_str(level));
    spdlog::set_default_logger(logger);
}

}  // namespace

int main(int argc, char** argv) {
    using cordon::launch::kExitFailure;
    cordon::launch::SessionOptions options;
    bool check = false;
    std::string log_level = "info";

    CLI::App app{"Launch an AI agent under its Non-Human Identity profile, kernel-enforced."};
    app.add_option("-p,--profile", options.profile_path, "NHI profile (JSON)")
        ->required()
        ->envname("CORDON_PROFILE");
    app.add_flag("--check", check,
                 "validate the profile, print the effective policy as JSON, exit");
    app.add_option("--audit-log", options.audit_log,
                   "append audit events to FILE (default: stderr)")
        ->envname("CORDON_AUDIT_LOG");
    app.add_option("--cgroup", options.cgroup_name, "Cordon's root cgroup, below the cgroup2 mount")
        ->capture_default_str()
        ->envname("CORDON_CGROUP");
    app.add_option("--bpf-pin-dir", options.bpf_pin_dir,
                   "where the BPF programs and maps are pinned")
        ->capture_default_str()
        ->envname("CORDON_BPF_PIN_DIR");
    app.add_option("--seccomp-dir", options.seccomp_dir, "seccomp groups and baselines")
        ->envname("CORDON_SECCOMP_DIR");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
        ->capture_default_str()
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
    // Everything after the first positional (or after --) is the agent's command.
    app.prefix_command();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : kExitFailure;
    }
    setup_logging(log_level);

    if (check) return cordon::launch::check_profile(options);
    options.command = app.remaining();
    if (!options.command.empty() && options.command.front() == "--")
        options.command.erase(options.command.begin());
    if (options.command.empty()) {
        spdlog::error("no command given (usage: agent-run --profile PROFILE -- COMMAND [ARG...])");
        return kExitFailure;
    }
    return cordon::launch::run_session(options);
}
