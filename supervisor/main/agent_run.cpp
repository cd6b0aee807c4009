// SPDX-License-Identifier: Apache-2.0
// agent-run: launches one agent under its NHI profile, standalone.
//
//   agent-run --profile PROFILE [options] -- COMMAND [ARG...]
//   agent-run --check --profile PROFILE
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "daemon/client.h"
#include "launch/session.h"

extern char** environ;

namespace {

using cordon::launch::kExitFailure;

constexpr const char* kUsage =
    "Usage:\n"
    "  agent-run --profile PROFILE [OPTIONS] -- COMMAND [ARG...]\n"
    "  agent-run --check --profile PROFILE\n\n"
    "Through cordond when its socket exists (any permitted user), else standalone (root).\n"
    "Exit status: the agent's (128+N if signal N killed it), 124 at the session's deadline,\n"
    "125 if agent-run failed and started nothing, 126/127 if COMMAND cannot run or is missing.\n";

void setup_logging(const std::string& level) {
    auto logger = spdlog::stderr_color_mt("agent-run");
    logger->set_pattern("agent-run: %^%l%$: %v");
    logger->set_level(spdlog::level::from_str(level));
    spdlog::set_default_logger(logger);
}

// Map sizes, used when this run loads the BPF programs; pinned programs keep theirs.
void add_map_options(CLI::App& app, cordon::netfilter::NetfilterConfig& config) {
    app.add_option("--max-sessions", config.max_sessions,
                   "live sessions the BPF maps hold, when they are created")
        ->type_name("N")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1u << 20));
    app.add_option("--max-rules", config.max_rules,
                   "rules trie entries of all sessions together, when the maps are created")
        ->type_name("N")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1u << 26));
    app.add_option("--max-destinations", config.max_destinations,
                   "per-destination byte counters of all sessions, when the maps are created")
        ->type_name("N")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1u << 24));
    app.add_option("--max-gates", config.max_gates,
                   "open approval gates of all sessions together, when the maps are created")
        ->type_name("N")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1u << 24));
}

// How agent-run reaches cordond, or does without it.
struct Mode {
    std::string socket;
    bool standalone = false;
};

void add_mode_options(CLI::App& app, Mode& mode) {
    app.add_option("--socket", mode.socket,
                   "cordond's socket (default /run/cordon/cordond.sock); also CORDON_SOCKET")
        ->type_name("PATH");
    app.add_flag("--standalone", mode.standalone,
                 "run the session in this process (root only), even when cordond runs");
}

void add_options(CLI::App& app, cordon::launch::SessionOptions& options, bool& check,
                 std::string& log_level) {
    // Required, but checked after parsing, so that a mistyped option is
    // reported as such rather than as a missing --profile.
    app.add_option("-p,--profile", options.profile_path, "the NHI profile (JSON), required")
        ->type_name("FILE")
        ->envname("CORDON_PROFILE");
    app.add_flag("--check", check,
                 "validate the profile, print the effective policy as JSON and exit");
    app.add_option("--audit-log", options.audit_log,
                   "append audit events to FILE (default: stderr)")
        ->type_name("FILE")
        ->envname("CORDON_AUDIT_LOG");
    app.add_option("--subject-token-file", options.subject_token_file,
                   "the user's access token, for tokenExchange credentials (owned by root or "
                   "you, mode 0600)")
        ->type_name("FILE")
        ->envname("CORDON_SUBJECT_TOKEN_FILE");
    app.add_option("--cgroup", options.cgroup_name, "Cordon's root cgroup, below the cgroup2 mount")
        ->type_name("NAME")
        ->capture_default_str()
        ->envname("CORDON_CGROUP");
    app.add_option("--bpf-pin-dir", options.bpf_pin_dir,
                   "where the BPF programs and maps are pinned")
        ->type_name("DIR")
        ->capture_default_str()
        ->envname("CORDON_BPF_PIN_DIR");
    app.add_option("--run-dir", options.run_dir, "root-only directory of the session lock files")
        ->type_name("DIR")
        ->capture_default_str()
        ->envname("CORDON_RUN_DIR");
    app.add_option("--approvals-dir", options.approvals_dir,
                   "where a session with approval tools puts its approvers' socket")
        ->type_name("DIR")
        ->capture_default_str()
        ->envname("CORDON_APPROVALS_DIR");
    app.add_option("--seccomp-dir", options.seccomp_dir, "seccomp groups and baselines")
        ->type_name("DIR")
        ->envname("CORDON_SECCOMP_DIR");
    add_map_options(app, options.netfilter);
    app.add_option("--dns-upstream", options.dns_upstream,
                   "resolvers for allowed names, ADDR[:PORT][,...] (default: /etc/resolv.conf)")
        ->type_name("ADDR")
        ->envname("CORDON_DNS_UPSTREAM");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
        ->type_name("LEVEL")
        ->capture_default_str()
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
}

// Options that set up the host, which cordond's configuration decides.
constexpr const char* kHostOptions[] = {"--audit-log", "--cgroup",       "--bpf-pin-dir",
                                        "--run-dir",   "--seccomp-dir",  "--dns-upstream",
                                        "--max-rules", "--max-sessions", "--max-destinations",
                                        "--max-gates", "--approvals-dir"};

// The request cordond gets: the profile by name (or its absolute path),
// the command, where and with what environment it runs.
cordon::daemon::LaunchRequest launch_request(const cordon::launch::SessionOptions& options) {
    cordon::daemon::LaunchRequest r;
    r.profile = options.profile_path;
    std::error_code ec;
    if (r.profile.find('/') != std::string::npos)
        r.profile = std::filesystem::absolute(r.profile, ec).string();
    r.argv = options.command;
    r.cwd = std::filesystem::current_path(ec).string();
    if (ec) r.cwd = "/";
    for (char** e = environ; *e; ++e) r.env.emplace_back(*e);
    return r;
}

// Through cordond, when it serves; else standalone as root; else an error
// that says how to start cordond. -1: standalone.
int run_through_daemon(const CLI::App& app, const Mode& mode,
                       const cordon::launch::SessionOptions& options) {
    std::string socket = cordon::daemon::socket_path(mode.socket);
    if (mode.standalone || !cordon::daemon::socket_exists(socket)) {
        if (::geteuid() == 0) return -1;
        spdlog::error(
            "no cordond socket at {}: start cordond (systemctl start cordond), name the socket "
            "it serves with --socket or CORDON_SOCKET, or run agent-run as root for a standalone "
            "session",
            socket);
        return kExitFailure;
    }
    for (const char* option : kHostOptions)
        if (app.count(option)) {
            spdlog::error(
                "{} is a standalone option; cordond's configuration sets it (add "
                "--standalone, as root, to run without cordond)",
                option);
            return kExitFailure;
        }
    return cordon::daemon::launch_through(socket, launch_request(options));
}

}  // namespace

int main(int argc, char** argv) {
    // agent-run holds credentials (client secrets, delivered tokens): no
    // core dump, and no ptrace or /proc/PID/mem for its uid without
    // CAP_SYS_PTRACE (prctl(2), PR_SET_DUMPABLE).
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        std::cerr << "agent-run: error: cannot make agent-run non-dumpable: "
                  << std::strerror(errno) << "\n";
        return kExitFailure;
    }
    cordon::launch::SessionOptions options;
    bool check = false;
    std::string log_level = "info";
    Mode mode;

    CLI::App app{"Launch an AI agent under its Non-Human Identity profile, kernel-enforced."};
    app.footer(kUsage);
    add_options(app, options, check, log_level);
    add_mode_options(app, mode);

    // agent-run's own options stop at "--"; the agent's command follows it,
    // so a mistyped option is an error, never a command to run.
    char** dashdash = std::find_if(argv + 1, argv + argc,
                                   [](const char* a) { return std::strcmp(a, "--") == 0; });
    std::vector<std::string> command(dashdash == argv + argc ? dashdash : dashdash + 1,
                                     argv + argc);
    try {
        app.parse(static_cast<int>(dashdash - argv), argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "agent-run: error: " << e.what() << "\n"
                  << (dynamic_cast<const CLI::ExtrasError*>(&e)
                          ? "agent-run: the agent's command goes after --\n"
                          : "")
                  << "Run with --help for more information.\n";
        return kExitFailure;
    }
    setup_logging(log_level);
    if (options.profile_path.empty()) {
        spdlog::error("--profile is required (agent-run --profile PROFILE -- COMMAND [ARG...])");
        return kExitFailure;
    }

    if (check) {
        if (!command.empty()) {
            spdlog::error("--check runs nothing; remove the command after --");
            return kExitFailure;
        }
        return cordon::launch::check_profile(options);
    }
    if (command.empty()) {
        spdlog::error("no command given (usage: agent-run --profile PROFILE -- COMMAND [ARG...])");
        return kExitFailure;
    }
    options.command = std::move(command);
    if (int status = run_through_daemon(app, mode, options); status >= 0) return status;
    try {
        return cordon::launch::run_session(options);
    } catch (const std::exception& e) {
        // Unwound: the session's cgroup, and every process in it, is gone.
        spdlog::error("internal error: {} (the session was killed; please report this)", e.what());
        return kExitFailure;
    }
}
