// SPDX-License-Identifier: Apache-2.0
// cordonctl: cordond's sessions, Cordon's profiles and audit log.
//
//   cordonctl sessions [--json]
//   cordonctl stop SESSION
//   cordonctl validate PROFILE...
//   cordonctl audit [--follow] [--session S] [--file FILE]
//
// Exit status: 0 done; 1 refused or failed (the message says why); 2 bad usage.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "daemon/client.h"
#include "daemon/config.h"
#include "profile/profile.h"

namespace {

using nlohmann::json;

constexpr int kFailed = 1;

struct Args {
    std::string socket;
    std::string config = cordon::daemon::kDefaultConfig;
    bool as_json = false;
    std::string session;
    std::vector<std::string> profiles;
    bool follow = false;
    std::string audit_file;
};

// cordond's answer, or nullopt after printing why there is none.
std::optional<json> ask(const Args& a, const json& request) {
    auto answer = cordon::daemon::call(cordon::daemon::socket_path(a.socket), request);
    if (!answer) {
        std::cerr << "cordonctl: " << answer.error().message() << "\n";
        return std::nullopt;
    }
    if (answer->value("ok", false)) return *answer;
    std::cerr << "cordonctl: cordond refused: " << answer->value("error", json("")).dump() << "\n";
    return std::nullopt;
}

std::string cell(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return "-";
    return it->is_string() ? it->get<std::string>() : it->dump();
}

int sessions(const Args& a) {
    auto answer = ask(a, {{"op", "sessions"}});
    if (!answer) return kFailed;
    const json& list = (*answer)["sessions"];
    if (a.as_json) {
        std::cout << list.dump(2) << "\n";
        return 0;
    }
    const char* kColumns[] = {"agentId", "session",  "user",     "pid",
                              "started", "deadline", "bytesOut", "denials"};
    std::printf("%-16s %-36s %-12s %-8s %-24s %-24s %10s %8s\n", "AGENT", "SESSION", "USER", "PID",
                "STARTED", "DEADLINE", "BYTES-OUT", "DENIALS");
    for (const auto& s : list) {
        std::string c[8];
        for (int i = 0; i < 8; ++i) c[i] = cell(s, kColumns[i]);
        std::printf("%-16s %-36s %-12s %-8s %-24s %-24s %10s %8s\n", c[0].c_str(), c[1].c_str(),
                    c[2].c_str(), c[3].c_str(), c[4].c_str(), c[5].c_str(), c[6].c_str(),
                    c[7].c_str());
    }
    return 0;
}

int stop(const Args& a) {
    if (!ask(a, {{"op", "stop"}, {"session", a.session}})) return kFailed;
    std::cout << "stopped " << a.session << "\n";
    return 0;
}

int validate(const Args& a) {
    int status = 0;
    auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    for (const auto& path : a.profiles) {
        try {
            auto p = cordon::profile::load_profile(path, now);
            std::cout << path << ": ok (agentId " << p.identity.agent_id << ", expires "
                      << cordon::profile::format_rfc3339(p.identity.expires_at) << ")\n";
        } catch (const std::exception& e) {
            std::cerr << e.what() << "\n";
            status = kFailed;
        }
    }
    return status;
}

bool matches(const std::string& line, const std::string& session) {
    if (session.empty()) return true;
    auto j = json::parse(line, nullptr, false);
    return j.is_object() && j.value("session", json("")) == session;
}

// Prints the log's lines, then, with --follow, those appended later (from
// the start again when the file was rotated or truncated).
int audit(const Args& a) {
    std::string path = a.audit_file;
    if (path.empty()) {
        auto config = cordon::daemon::load_config(a.config);
        path = config ? config->audit_log : cordon::daemon::Config{}.audit_log;
    }
    std::ifstream in(path);
    if (!in) {
        std::cerr << "cordonctl: cannot read " << path << ": " << std::strerror(errno)
                  << " (the audit log is root's; use sudo, or --file)\n";
        return kFailed;
    }
    std::string line;
    for (;;) {
        while (std::getline(in, line))
            if (matches(line, a.session)) std::cout << line << std::endl;
        if (!a.follow) return 0;
        in.clear();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        std::ifstream probe(path, std::ios::ate);
        if (probe && probe.tellg() < in.tellg()) in = std::move(probe), in.seekg(0);
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Cordon's control tool: sessions, profiles, audit log."};
    app.require_subcommand(1);
    Args a;
    app.add_option("--socket", a.socket, "cordond's socket (also CORDON_SOCKET)")
        ->type_name("PATH");
    app.add_option("-c,--config", a.config, "cordond's configuration, for the audit log's path")
        ->type_name("FILE");
    auto* s = app.add_subcommand("sessions", "list live sessions (yours, or all for admins)");
    s->add_flag("--json", a.as_json, "as a JSON array");
    auto* st = app.add_subcommand("stop", "stop a session: its whole cgroup is killed");
    st->add_option("SESSION", a.session, "the session id")->required();
    auto* v = app.add_subcommand("validate", "check profiles as cordond and agent-run would");
    v->add_option("PROFILE", a.profiles, "profile files")->required();
    auto* au = app.add_subcommand("audit", "print the audit log");
    au->add_flag("-f,--follow", a.follow, "keep printing new events");
    au->add_option("--session", a.session, "only this session's events");
    au->add_option("--file", a.audit_file, "the audit log (default: cordond's auditLog)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    if (*s) return sessions(a);
    if (*st) return stop(a);
    if (*v) return validate(a);
    return audit(a);
}
