// SPDX-License-Identifier: Apache-2.0
// cordonctl: cordond's sessions, Cordon's profiles and audit log.
//
//   cordonctl sessions [--json]
//   cordonctl stop SESSION
//   cordonctl validate PROFILE...
//   cordonctl audit [--follow] [--session S] [--file FILE]
//   cordonctl approvals [--json]
//   cordonctl approve ID --for DURATION [--uses N]
//   cordonctl deny ID [--reason TEXT]
//
// Approvals are asked of each live session's own socket in the approvals
// directory (--approvals-dir, CORDON_APPROVALS_DIR), standalone agent-run's
// and cordond's alike; each session decides who may see and decide.
//
// Exit status: 0 done; 1 refused or failed (the message says why); 2 bad usage.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "approval/broker.h"
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
    std::string approvals_dir;
    std::string request_id;
    std::string window;
    uint32_t uses = 0;
    std::string reason;
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

std::string approvals_dir(const Args& a) {
    if (!a.approvals_dir.empty()) return a.approvals_dir;
    const char* env = std::getenv(cordon::approval::kApprovalsDirVariable);
    return env && *env ? env : cordon::approval::kDefaultApprovalsDir;
}

// The live sessions' answers to a request, and how many refused to show
// themselves to this caller (left out).
struct Answers {
    std::vector<json> shown;
    size_t hidden = 0;
};

// Each live session's answer to `request`, dead sockets skipped; an error
// when the directory is not there, which is most often the wrong one.
std::optional<Answers> ask_sessions(const Args& a, const json& request) {
    Answers answers;
    std::string dir = approvals_dir(a);
    std::error_code ec;
    std::filesystem::directory_iterator entries(dir, ec);
    if (ec) {
        std::cerr << "cordonctl: cannot read the approvals directory " << dir << ": "
                  << ec.message()
                  << " (no session with approval tools has run with it; give the directory of "
                     "the agent-run or cordond that runs the session: --approvals-dir, "
                     "CORDON_APPROVALS_DIR)\n";
        return std::nullopt;
    }
    for (const auto& entry : entries) {
        if (entry.path().extension() != ".sock") continue;
        auto answer = cordon::daemon::call(entry.path().string(), request);
        if (!answer) {
            // A session whose supervisor is gone, until it is reaped.
            std::cerr << "cordonctl: warning: " << entry.path().string()
                      << " did not answer: " << answer.error().message() << "\n";
            continue;
        }
        if (answer->value("forbidden", false)) {
            answers.hidden++;
            continue;
        }
        answers.shown.push_back(*answer);
    }
    return answers;
}

int approvals(const Args& a) {
    json pending = json::array(), granted = json::array();
    auto answers = ask_sessions(a, {{"op", "list"}});
    if (!answers) return kFailed;
    if (answers->shown.empty() && answers->hidden == 0)
        std::cerr << "cordonctl: no session with approval tools answers in " << approvals_dir(a)
                  << " (if one runs, give the directory of the agent-run or cordond that runs "
                     "it: --approvals-dir, CORDON_APPROVALS_DIR)\n";
    if (answers->hidden)
        std::cerr << "cordonctl: " << answers->hidden
                  << " session(s) not shown: you are neither an approver (approval.approvers) nor "
                     "the launcher of them\n";
    for (const auto& s : answers->shown) {
        if (!s.value("ok", false)) continue;
        for (json r : s["requests"]) {
            r["session"] = s["session"];
            r["agentId"] = s["agentId"];
            pending.push_back(r);
        }
        for (json g : s["grants"]) {
            g["session"] = s["session"];
            g["agentId"] = s["agentId"];
            granted.push_back(g);
        }
    }
    if (a.as_json) {
        std::cout << json{{"requests", pending}, {"grants", granted}}.dump(2) << "\n";
        return 0;
    }
    std::printf("%-12s %-8s %-16s %-16s %-22s %8s %-24s %s\n", "ID", "SESSION", "AGENT", "TOOL",
                "DESTINATION", "ATTEMPTS", "EXPIRES", "REASON");
    for (const auto& r : pending)
        std::printf("%-12s %-8s %-16s %-16s %-22s %8s %-24s %s\n", cell(r, "id").c_str(),
                    cell(r, "session").substr(0, 8).c_str(), cell(r, "agentId").c_str(),
                    cell(r, "tool").c_str(), cell(r, "destination").c_str(),
                    cell(r, "attempts").c_str(), cell(r, "expires").c_str(),
                    cell(r, "reason").c_str());
    if (!granted.empty()) {
        std::printf("\nopen grants:\n%-12s %-16s %-16s %-24s %6s %6s %s\n", "ID", "AGENT", "TOOL",
                    "UNTIL", "USES", "USED", "APPROVER");
        for (const auto& g : granted)
            std::printf("%-12s %-16s %-16s %-24s %6s %6s %s\n", cell(g, "id").c_str(),
                        cell(g, "agentId").c_str(), cell(g, "tool").c_str(),
                        cell(g, "until").c_str(), cell(g, "uses").c_str(), cell(g, "used").c_str(),
                        cell(g, "approver").c_str());
    }
    return 0;
}

// Sends a decision to whichever session holds the request.
int decide(const Args& a, json request) {
    request["id"] = a.request_id;
    auto answers = ask_sessions(a, request);
    if (!answers) return kFailed;
    for (const auto& answer : answers->shown) {
        std::string error =
            answer.value("error", json("")).is_string() ? answer.value("error", "") : std::string();
        if (error.rfind("no pending request", 0) == 0) continue;
        if (!answer.value("ok", false)) {
            std::cerr << "cordonctl: refused: " << error << "\n";
            return kFailed;
        }
        if (answer.contains("grant"))
            std::cout << "granted " << a.request_id << ": "
                      << answer["grant"]["tool"].get<std::string>() << " until "
                      << answer["grant"]["until"].get<std::string>() << "\n";
        else
            std::cout << "denied " << a.request_id << "\n";
        return 0;
    }
    std::cerr << "cordonctl: no pending request " << a.request_id
              << " in any session you may see (cordonctl approvals lists them)\n";
    return kFailed;
}

int approve(const Args& a) {
    int64_t seconds = 0;
    try {
        seconds = cordon::profile::parse_duration(a.window).count();
    } catch (const std::exception& e) {
        std::cerr << "cordonctl: --for: " << e.what() << "\n";
        return 2;
    }
    json request = {{"op", "approve"}, {"for", seconds}};
    if (a.uses > 0) request["uses"] = a.uses;
    return decide(a, request);
}

int deny(const Args& a) {
    return decide(a, {{"op", "deny"}, {"reason", a.reason}});
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
    auto* ap = app.add_subcommand("approvals", "list pending approval requests and open grants");
    ap->add_flag("--json", a.as_json, "as JSON");
    auto* ok = app.add_subcommand("approve", "grant a request: its tool opens for a window");
    ok->add_option("ID", a.request_id, "the request id (cordonctl approvals)")->required();
    ok->add_option("--for", a.window, "how long the tool stays open: 30s, 10m, 1h")->required();
    ok->add_option("--uses", a.uses, "at most N new connections in the window")
        ->check(CLI::Range(1u, 1000000u));
    auto* no = app.add_subcommand("deny", "deny a request: its tool stays closed");
    no->add_option("ID", a.request_id, "the request id (cordonctl approvals)")->required();
    no->add_option("--reason", a.reason, "why, for the agent and the audit log");
    // Before or after the subcommand, as --socket and --config.
    app.add_option("--approvals-dir", a.approvals_dir,
                   "for approvals, approve and deny: the sessions' approval sockets (default "
                   "/run/cordon/approvals; also CORDON_APPROVALS_DIR)")
        ->type_name("DIR");
    for (auto* sub : {ap, ok, no}) sub->fallthrough();
    app.failure_message([](const CLI::App*, const CLI::Error& e) {
        return "cordonctl: " + std::string(e.what()) + " (cordonctl --help)\n";
    });
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    if (*s) return sessions(a);
    if (*st) return stop(a);
    if (*v) return validate(a);
    if (*ap) return approvals(a);
    if (*ok) return approve(a);
    if (*no) return deny(a);
    return audit(a);
}
