// SPDX-License-Identifier: Apache-2.0
// What cordond knows of each live session, kept as one file per session
// under RUN_DIR/state (root's, 0700), so that a restarted cordond finds
// the sessions that outlived its predecessor. A session's supervising
// child writes its record when the agent runs and removes it at the end.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/result.h"

namespace cordon::daemon {

struct SessionRecord {
    std::string session;
    std::string agent_id;
    std::string agent_type;
    std::string version;
    std::string profile;
    std::string user;  // the agent's account
    uid_t uid = 0;
    uid_t launcher_uid = 0;  // who asked for it
    pid_t agent_pid = 0;     // the session's init
    pid_t supervisor_pid = 0;
    uint64_t supervisor_start = 0;  // its start time (/proc/PID/stat), against pid reuse
    std::string started;            // RFC 3339
    std::chrono::system_clock::time_point deadline;
    std::string cgroup_path;
    uint64_t cgroup_id = 0;
    uint64_t denials = 0;
};

nlohmann::json to_json(const SessionRecord& r);
Result<SessionRecord> record_from_json(const nlohmann::json& j);

std::string state_dir(const std::string& run_dir);

// Atomic: written to a temporary file and renamed over the old one.
Status write_record(const std::string& run_dir, const SessionRecord& r);
// Every record that reads back; unreadable files are removed, with a log.
std::vector<SessionRecord> read_records(const std::string& run_dir);
void remove_record(const std::string& run_dir, const std::string& session);

// The start time of pid in clock ticks since boot (proc(5), field 22), or
// nullopt when no such process exists.
std::optional<uint64_t> process_start_time(pid_t pid);

}  // namespace cordon::daemon
