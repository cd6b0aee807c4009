// SPDX-License-Identifier: Apache-2.0
#include "audit/audit.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include <date/date.h>
#include <spdlog/spdlog.h>

namespace cordon::audit {

std::string format_time(std::chrono::system_clock::time_point t) {
    return date::format("%FT%TZ", std::chrono::floor<std::chrono::milliseconds>(t));
}

std::string now_rfc3339() { return format_time(std::chrono::system_clock::now()); }

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path) {
    if (path.empty() || path == "-") {
        // Our own open file description of whatever stderr is, where the
        // kernel allows: the agent shares stderr's, and could otherwise make
        // it non-blocking and have audit lines dropped. (An agent can still
        // write lines of its own to a shared stderr: --audit-log is the
        // record to trust.)
        UniqueFd fd(::open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY));
        if (!fd.valid()) fd.reset(::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3));
        if (!fd.valid()) return errno_error("cannot duplicate stderr for the audit log");
        return std::unique_ptr<AuditLog>(new AuditLog(std::move(fd)));
    }
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid())
        return errno_error("cannot open audit log " + path,
                           "check the directory exists and is writable");
    return std::unique_ptr<AuditLog>(new AuditLog(std::move(fd)));
}

void AuditLog::emit(const std::string& event, const Subject& subject,
                    const nlohmann::json& fields) {
    // nlohmann::ordered_json keeps the common fields first, as documented.
    nlohmann::ordered_json line;
    line["time"] = now_rfc3339();
    line["event"] = event;
    line["agentId"] = subject.agent_id;
    line["agentType"] = subject.agent_type;
    line["version"] = subject.version;
    line["session"] = subject.session;
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    if (::write(fd_.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        spdlog::error("audit log write failed for event {}: {}", event, std::strerror(errno));
}

}  // namespace cordon::audit
