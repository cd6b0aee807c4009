// SPDX-License-Identifier: Apache-2.0
#include "audit/audit.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <date/date.h>
#include <spdlog/spdlog.h>

namespace cordon::audit {

namespace fs = std::filesystem;

std::string format_time(std::chrono::system_clock::time_point t) {
    return date::format("%FT%TZ", std::chrono::floor<std::chrono::milliseconds>(t));
}

std::string now_rfc3339() {
    return format_time(std::chrono::system_clock::now());
}

namespace {

// An existing log is the record to trust only if nobody but root (or us)
// could have written lines into it, and only if it is a plain file.
Status check_existing(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno_error("cannot stat audit log " + path);
    if (!S_ISREG(st.st_mode))
        return plain_error("audit log " + path + " is not a regular file",
                           "give --audit-log a regular file, or a path that does not exist yet");
    if (st.st_uid != 0 && st.st_uid != ::geteuid())
        return plain_error(
            "audit log " + path + " is owned by uid " + std::to_string(st.st_uid),
            "its owner could rewrite the record; chown root " + path + ", or give a new path");
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        return plain_error(
            "audit log " + path + " is writable by group or others (mode " + mode + ")",
            "others could add or forge lines; chmod 0600 " + path);
    }
    return ok_status();
}

// Every directory above the log must be closed to others too: whoever can
// write one can rename the log away and put a forged one in its place
// (sshd's StrictModes asks the same of ~/.ssh). A sticky directory, such as
// /tmp, lets nobody rename or remove a file of ours.
Status check_directories(const std::string& path) {
    std::error_code ec;
    fs::path dir = fs::weakly_canonical(fs::absolute(path, ec).parent_path(), ec);
    if (ec) return Error{ec.value(), "cannot resolve the directory of audit log " + path, ""};
    for (fs::path d = dir;; d = d.parent_path()) {
        struct stat st {};
        if (::stat(d.c_str(), &st) != 0) return errno_error("cannot stat " + d.string());
        bool others_write = (st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX);
        if ((st.st_uid != 0 && st.st_uid != ::geteuid()) || others_write) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
            return plain_error("audit log " + path + ": its directory " + d.string() +
                                   " can be changed by others (owner uid " +
                                   std::to_string(st.st_uid) + ", mode " + mode + ")",
                               "they could replace the log; give a path in a directory only "
                               "root can write, such as /var/log/cordon");
        }
        if (d == d.root_path() || d.empty()) return ok_status();
    }
}

Error open_error(const std::string& path) {
    if (errno == ELOOP)
        return errno_error("cannot open audit log " + path,
                           "it is a symbolic link; give the path of the file itself");
    if (errno == ENXIO)
        return errno_error("cannot open audit log " + path, "it must be a regular file");
    return errno_error("cannot open audit log " + path,
                       "check the directory exists and is writable");
}

// Opens the log file without following a symbolic link and without
// blocking on a FIFO: an existing file is checked, a new one is created
// 0600 (O_EXCL: never someone else's file that appeared meanwhile).
Result<UniqueFd> open_log_file(const std::string& path) {
    constexpr int kFlags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    for (int attempt = 0; attempt < 3; ++attempt) {
        UniqueFd fd(::open(path.c_str(), kFlags));
        if (fd.valid()) {
            if (auto st = check_existing(fd.get(), path); !st) return st.error();
            if (auto st = check_directories(path); !st) return st.error();
        } else if (errno == ENOENT) {
            if (auto st = check_directories(path); !st) return st.error();
            fd.reset(::open(path.c_str(), kFlags | O_CREAT | O_EXCL, 0600));
            if (!fd.valid() && errno == EEXIST) continue;  // created meanwhile: check it
        }
        if (!fd.valid()) return open_error(path);
        if (::fcntl(fd.get(), F_SETFL, O_APPEND) != 0)
            return errno_error("cannot set flags of audit log " + path);
        return fd;
    }
    return plain_error("cannot open audit log " + path + ": it keeps appearing and vanishing",
                       "check what else writes there");
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path) {
    if (path.empty() || path == "-") {
        // A pipe or terminal gets an open file description of our own, where
        // the kernel allows: the agent shares stderr's, and could otherwise
        // make it non-blocking and have audit lines dropped. A regular file
        // keeps the shared one (O_NONBLOCK means nothing there): with a
        // description of our own, its offset would be ours alone, and the
        // agent's writes through the caller's `2> FILE` would overwrite
        // audit lines. (An agent can still write lines of its own to a
        // shared stderr: --audit-log is the record to trust.)
        struct stat st {};
        bool regular = ::fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode);
        UniqueFd fd;
        if (!regular)
            fd.reset(
                ::open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
        if (!fd.valid()) fd.reset(::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3));
        if (!fd.valid()) return errno_error("cannot duplicate stderr for the audit log");
        return std::unique_ptr<AuditLog>(new AuditLog(std::move(fd), true));
    }
    auto fd = open_log_file(path);
    if (!fd) return fd.error();
    return std::unique_ptr<AuditLog>(new AuditLog(std::move(*fd), false));
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
    std::lock_guard lock(mu_);
    if (pending_.size() + text.size() > kMaxPending) {
        ++lines_dropped_;
        return;
    }
    pending_ += text;
    write_pending();
}

void AuditLog::write_pending() {
    while (!pending_.empty()) {
        ssize_t n = ::write(fd_.get(), pending_.data(), pending_.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;  // stderr is full or stopped: later
        if (n <= 0) {
            // Not written and never will be: the lines are counted (and
            // logged, unless stderr is what failed).
            lines_dropped_ += std::count(pending_.begin(), pending_.end(), '\n');
            if (!on_stderr_) spdlog::error("audit log write failed: {}", std::strerror(errno));
            pending_.clear();
            return;
        }
        pending_.erase(0, static_cast<size_t>(n));
    }
}

Status AuditLog::flush(std::chrono::milliseconds timeout) {
    std::lock_guard lock(mu_);
    auto until = std::chrono::steady_clock::now() + timeout;
    for (write_pending(); !pending_.empty(); write_pending()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd_.get(), POLLOUT, 0};
        (void)::poll(&p, 1, static_cast<int>(left.count()));
    }
    size_t lost = lines_dropped_ + std::count(pending_.begin(), pending_.end(), '\n');
    if (lost == 0) return ok_status();
    return plain_error(std::to_string(lost) + " audit lines could not be written to stderr",
                       "the reader of stderr stopped reading or the terminal was stopped; "
                       "use --audit-log FILE for a record the agent cannot hold up");
}

}  // namespace cordon::audit
