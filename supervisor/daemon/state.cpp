// SPDX-License-Identifier: Apache-2.0
#include "daemon/state.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "audit/audit.h"
#include "cordon/log.h"

namespace cordon::daemon {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("daemon");
    return logger;
}

int64_t ms_since_epoch(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A session id as cordond makes them: a lowercase UUID, safe as a file name.
bool valid_session_id(const std::string& id) {
    return id.size() == 36 && id.find_first_not_of("0123456789abcdef-") == std::string::npos;
}

}  // namespace

json to_json(const SessionRecord& r) {
    return {{"session", r.session},
            {"agentId", r.agent_id},
            {"agentType", r.agent_type},
            {"version", r.version},
            {"profile", r.profile},
            {"user", r.user},
            {"uid", r.uid},
            {"launcherUid", r.launcher_uid},
            {"pid", r.agent_pid},
            {"supervisorPid", r.supervisor_pid},
            {"supervisorStart", r.supervisor_start},
            {"started", r.started},
            {"deadline", audit::format_time(r.deadline)},
            {"deadlineMs", ms_since_epoch(r.deadline)},
            {"cgroup", r.cgroup_path},
            {"cgroupId", r.cgroup_id},
            {"denials", r.denials}};
}

Result<SessionRecord> record_from_json(const json& j) {
    try {
        SessionRecord r;
        r.session = j.at("session").get<std::string>();
        if (!valid_session_id(r.session)) return plain_error("not a session id: " + r.session);
        r.agent_id = j.at("agentId").get<std::string>();
        r.agent_type = j.value("agentType", "");
        r.version = j.value("version", "");
        r.profile = j.at("profile").get<std::string>();
        r.user = j.at("user").get<std::string>();
        r.uid = j.at("uid").get<uid_t>();
        r.launcher_uid = j.at("launcherUid").get<uid_t>();
        r.agent_pid = j.at("pid").get<pid_t>();
        r.supervisor_pid = j.at("supervisorPid").get<pid_t>();
        r.supervisor_start = j.at("supervisorStart").get<uint64_t>();
        r.started = j.at("started").get<std::string>();
        r.deadline = std::chrono::system_clock::time_point(
            std::chrono::milliseconds(j.at("deadlineMs").get<int64_t>()));
        r.cgroup_path = j.at("cgroup").get<std::string>();
        r.cgroup_id = j.at("cgroupId").get<uint64_t>();
        r.denials = j.value("denials", uint64_t{0});
        return r;
    } catch (const std::exception& e) {
        return plain_error(std::string("not a session record: ") + e.what());
    }
}

std::string state_dir(const std::string& run_dir) {
    return run_dir + "/state";
}

Status write_record(const std::string& run_dir, const SessionRecord& r) {
    std::string dir = state_dir(run_dir);
    std::string path = dir + "/" + r.session + ".json";
    std::string tmp = path + ".tmp";
    std::string text = to_json(r).dump() + "\n";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.valid()) return errno_error("cannot write " + tmp);
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        return errno_error("cannot write " + tmp);
    if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("cannot rename " + tmp);
    return ok_status();
}

std::vector<SessionRecord> read_records(const std::string& run_dir) {
    std::vector<SessionRecord> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(state_dir(run_dir), ec)) {
        if (entry.path().extension() != ".json") continue;
        std::ifstream in(entry.path());
        std::stringstream text;
        text << in.rdbuf();
        auto record = record_from_json(json::parse(text.str(), nullptr, false));
        if (record) {
            out.push_back(std::move(*record));
            continue;
        }
        log()->warn("{}: {} (removed)", entry.path().string(), record.error().message());
        fs::remove(entry.path(), ec);
    }
    return out;
}

void remove_record(const std::string& run_dir, const std::string& session) {
    if (!valid_session_id(session)) return;
    std::error_code ec;
    fs::remove(state_dir(run_dir) + "/" + session + ".json", ec);
}

std::optional<uint64_t> process_start_time(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name, field 2, is in parentheses and may hold anything.
    size_t close = text.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    // Fields 3 to 21, then 22, starttime.
    for (int i = 3; i <= 22 && fields >> field; ++i)
        if (i == 22) return std::stoull(field);
    return std::nullopt;
}

}  // namespace cordon::daemon
