// SPDX-License-Identifier: Apache-2.0
// The audit log: one JSON object per line for every decision, with a stable
// schema. Common fields: time, event, agentId, agentType, version, session;
// then the event's own fields. Never give it a secret: credentials reach it
// only as names (see creds::Secret, which cannot be serialised).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "cordon/fd.h"
#include "cordon/result.h"

namespace cordon::audit {

// Who an event is about.
struct Subject {
    std::string agent_id;
    std::string agent_type;
    std::string version;
    std::string session;  // UUID
};

class AuditLog {
  public:
    // path "" or "-" writes to stderr; otherwise the file is created (0600)
    // or appended to. A symbolic link is refused, and so is an existing file
    // that is not a regular file owned by root (or the effective user) and
    // closed to writes by group and others.
    static Result<std::unique_ptr<AuditLog>> open(const std::string& path);

    // Writes one line: the common fields, then `fields`. A line is written
    // with one write(2) on an O_APPEND descriptor, so lines of concurrent
    // sessions never interleave. On stderr (a pipe or terminal, which the
    // agent shares and can fill or stop) it never blocks: what cannot be
    // written now waits, in order, for the next emit or flush(), up to
    // kMaxPending bytes; lines past that are counted, not kept. Safe to call
    // from several threads (the supervise loop, the resolver, the webhook).
    void emit(const std::string& event, const Subject& subject, const nlohmann::json& fields);

    // Writes what waits, for at most `timeout`. An error says how many lines
    // could not be written, in all.
    Status flush(std::chrono::milliseconds timeout);

    static constexpr size_t kMaxPending = 4 << 20;

  private:
    AuditLog(UniqueFd fd, bool on_stderr) : fd_(std::move(fd)), on_stderr_(on_stderr) {}
    void write_pending();  // with mu_ held
    std::mutex mu_;        // pending_, lines_dropped_ and the writes
    UniqueFd fd_;
    bool on_stderr_;
    std::string pending_;  // whole lines, oldest first
    size_t lines_dropped_ = 0;
};

// A time as RFC 3339 UTC with milliseconds: "2026-12-03T19:31:39.123Z".
std::string format_time(std::chrono::system_clock::time_point t);
std::string now_rfc3339();

}  // namespace cordon::audit
