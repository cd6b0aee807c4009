// SPDX-License-Identifier: Apache-2.0
#include "cgroup/cgroup.h"
#include "cordon/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

namespace cordon::cgroup {
namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("cgroup");
    return logger;
}

Status write_file(const std::string& path, const std::string& text) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd.valid()) return errno_error("cannot open " + path);
    if (::write(fd.get(), text.data(), text.size()) < 0) return errno_error("cannot write " + path);
    return ok_status();
}

}  // namespace

Result<std::string> cgroup2_mount_from(const std::string& text) {
    // mountinfo(5): "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER".
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream f(line);
        std::string id, parent, dev, root, mount_point, field;
        f >> id >> parent >> dev >> root >> mount_point;
        while (f >> field && field != "-") {
        }
        std::string fstype;
        if (f >> fstype && fstype == "cgroup2") return mount_point;
    }
    return plain_error("no cgroup2 filesystem is mounted",
                       "Cordon needs cgroup v2; mount it with "
                       "'mount -t cgroup2 none /sys/fs/cgroup/unified' or boot with "
                       "systemd.unified_cgroup_hierarchy=1");
}

Result<std::string> find_cgroup2_mount(const std::string& mountinfo) {
    std::ifstream in(mountinfo);
    if (!in) return errno_error("cannot read " + mountinfo);
    std::stringstream text;
    text << in.rdbuf();
    return cgroup2_mount_from(text.str());
}

Result<uint64_t> cgroup_id(const std::string& dir) {
    // On cgroup2 the id BPF sees is the kernfs node id, which is the
    // directory's inode number (cgroup-v2.rst; systemd's cg_path_get_cgroupid
    // reads the same value through name_to_handle_at).
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return errno_error("cannot stat cgroup " + dir);
    return static_cast<uint64_t>(st.st_ino);
}

Status ensure_dir(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return ok_status();
    return errno_error("cannot create cgroup " + dir,
                       "run as root, or check that cgroup2 is writable");
}

constexpr const char* kLabelXattr = "trusted.cordon.session";

namespace {

// mkdir -p: missing parents 0755, dir itself 0700.
Status make_private_dirs(const std::string& dir) {
    for (size_t pos = dir.find('/', 1);; pos = dir.find('/', pos + 1)) {
        bool last = pos == std::string::npos;
        std::string part = last ? dir : dir.substr(0, pos);
        if (::mkdir(part.c_str(), last ? 0700 : 0755) != 0 && errno != EEXIST)
            return errno_error("cannot create lock directory " + part,
                               "run as root, or give --run-dir a writable place");
        if (last) return ok_status();
    }
}

// A lock directory an agent could open would let it hold (or fake) a
// supervisor's locks: it must be the effective user's and closed to others.
Status check_private(int fd, const std::string& dir) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno_error("cannot stat lock directory " + dir);
    if (st.st_uid != ::geteuid())
        return plain_error("lock directory " + dir + " is owned by uid " +
                               std::to_string(st.st_uid) + ", not by uid " +
                               std::to_string(::geteuid()),
                           "another user could hold its locks; remove it and agent-run "
                           "creates it afresh");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        return plain_error("lock directory " + dir + " has mode " + mode +
                               ": others could open and lock its files",
                           "chmod 0700 " + dir);
    }
    return ok_status();
}

std::string lock_file_name(const std::string& session) {
    return session + ".lock";
}

// Creates and locks a session's lock file, before its cgroup exists: no
// reaper looks at a lock file whose cgroup does not exist, so nobody else
// can hold this one yet.
Result<UniqueFd> take_lock(const OwnerLocks& locks, const std::string& file) {
    std::string path = locks.path() + "/" + file;
    UniqueFd fd(::openat(locks.fd(), file.c_str(),
                         O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return errno_error("cannot create lock file " + path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return errno_error("cannot lock " + path);
    return fd;
}

// The lock file of a session cgroup, locked by us, if no live supervisor
// holds it; an invalid fd if one does. A cgroup with no lock file has no
// owner either (its supervisor makes the file before the cgroup and removes
// it after): we make one, so that two reapers never reap the same cgroup.
UniqueFd claim(const OwnerLocks& locks, const std::string& file) {
    UniqueFd fd(::openat(locks.fd(), file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid() && errno == ENOENT)
        fd.reset(::openat(locks.fd(), file.c_str(),
                          O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return UniqueFd();
    return fd;
}

}  // namespace

Result<OwnerLocks> OwnerLocks::open(const std::string& dir) {
    if (auto st = make_private_dirs(dir); !st) return st.error();
    OwnerLocks locks;
    locks.path_ = dir;
    locks.fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!locks.fd_.valid())
        return errno_error("cannot open lock directory " + dir,
                           "it must be a directory, not a symbolic link; remove it");
    if (auto st = check_private(locks.fd_.get(), dir); !st) return st.error();
    return locks;
}

std::string owner_lock_dir(const std::string& run_dir, const std::string& cgroup_name) {
    // One path component per root: '/' and '%' escaped, a leading '.' too.
    std::string component;
    for (char c : cgroup_name) {
        if (c == '/' || c == '%' || (c == '.' && component.empty())) {
            char esc[4];
            std::snprintf(esc, sizeof esc, "%%%02X", static_cast<unsigned char>(c));
            component += esc;
        } else {
            component += c;
        }
    }
    return run_dir + "/" + component;
}

Result<SessionCgroup> SessionCgroup::create(const std::string& root, const std::string& name,
                                            const std::string& label, const OwnerLocks* locks) {
    SessionCgroup cg;
    if (locks) {
        auto lock = take_lock(*locks, lock_file_name(name));
        if (!lock) return lock.error();
        cg.lock_fd_ = std::move(*lock);
        cg.lock_dir_fd_.reset(::fcntl(locks->fd(), F_DUPFD_CLOEXEC, 3));
        cg.lock_name_ = lock_file_name(name);
    }
    cg.path_ = root + "/" + name;
    if (::mkdir(cg.path_.c_str(), 0755) != 0) {
        auto e = errno_error("cannot create cgroup " + cg.path_);
        if (cg.lock_dir_fd_.valid()) ::unlinkat(cg.lock_dir_fd_.get(), cg.lock_name_.c_str(), 0);
        return e;
    }
    // From here a failure leaves the cgroup behind, but its lock file is
    // released as cg goes out of scope: the next reaper removes both.
    cg.dir_fd_.reset(::open(cg.path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg.dir_fd_.valid()) return errno_error("cannot open cgroup " + cg.path_);
    if (!label.empty() &&
        ::fsetxattr(cg.dir_fd_.get(), kLabelXattr, label.data(), label.size(), 0) != 0)
        log()->debug("cannot label {}: {}", cg.path_, std::strerror(errno));
    auto id = cgroup_id(cg.path_);
    if (!id) return id.error();
    cg.id_ = *id;
    return cg;
}

Status SessionCgroup::kill_all() const {
    return write_file(path_ + "/cgroup.kill", "1");
}

namespace {

Result<bool> read_populated(const std::string& path) {
    std::ifstream in(path + "/cgroup.events");
    if (!in) return errno_error("cannot read " + path + "/cgroup.events");
    std::string key;
    int value = 0;
    while (in >> key >> value)
        if (key == "populated") return value != 0;
    return plain_error(path + "/cgroup.events has no 'populated' line");
}

}  // namespace

Result<bool> SessionCgroup::populated() const {
    return read_populated(path_);
}

Result<UniqueFd> SessionCgroup::open_events() const {
    UniqueFd fd(::open((path_ + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return errno_error("cannot open " + path_ + "/cgroup.events");
    return fd;
}

namespace {

// Waits until the cgroup at path has no process, polling cgroup.events.
bool wait_empty(const std::string& path, int timeout_ms) {
    UniqueFd events(::open((path + "/cgroup.events").c_str(), O_RDONLY | O_CLOEXEC));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
        auto populated = read_populated(path);
        if (!populated) return false;
        if (!*populated) return true;
        pollfd p{events.get(), POLLPRI, 0};
        ::poll(&p, 1, 50);
    }
    return false;
}

Status remove_tree(const std::string& path, int timeout_ms) {
    (void)write_file(path + "/cgroup.kill", "1");  // an empty cgroup is fine too
    if (!wait_empty(path, timeout_ms))
        return plain_error("cgroup " + path + " still has processes after cgroup.kill",
                           "a process may be stuck in uninterruptible sleep; retry later");
    // Children (an agent may not create them, but a root agent could) first.
    if (DIR* d = ::opendir(path.c_str())) {
        while (dirent* e = ::readdir(d))
            if (e->d_type == DT_DIR && e->d_name[0] != '.')
                (void)remove_tree(path + "/" + e->d_name, timeout_ms);  // rmdir below reports
        ::closedir(d);
    }
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT)
        return errno_error("cannot remove cgroup " + path);
    return ok_status();
}

}  // namespace

Status SessionCgroup::destroy(int timeout_ms) {
    if (path_.empty()) return ok_status();
    auto st = remove_tree(path_, timeout_ms);
    if (!st) return st;  // still locked: ours until we exit, then the reaper's
    dir_fd_.reset();
    path_.clear();
    // The lock file goes after the cgroup: a cgroup never lacks one while owned.
    if (lock_dir_fd_.valid() && ::unlinkat(lock_dir_fd_.get(), lock_name_.c_str(), 0) != 0)
        log()->debug("cannot remove lock file {}: {}", lock_name_, std::strerror(errno));
    lock_fd_.reset();
    lock_dir_fd_.reset();
    return st;
}

namespace {

std::string read_label(int dir_fd) {
    char buf[4096];
    ssize_t n = ::fgetxattr(dir_fd, kLabelXattr, buf, sizeof buf);
    return n > 0 ? std::string(buf, n) : std::string();
}

// Kills and removes one session cgroup whose lock we hold.
std::optional<Orphan> reap_one(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return std::nullopt;  // another reaper removed it meanwhile
    auto id = cgroup_id(path);
    std::string label = read_label(fd.get());
    if (auto st = remove_tree(path, 5000); !st) {
        log()->warn("cannot reap orphaned session cgroup: {}", st.error().message());
        return std::nullopt;
    }
    log()->info("reaped orphaned session cgroup {}", path);
    if (!id) return std::nullopt;
    return Orphan{*id, std::move(label)};
}

}  // namespace

std::vector<Orphan> cleanup_orphans(const std::string& root, const OwnerLocks& locks) {
    std::vector<Orphan> reaped;
    DIR* d = ::opendir(root.c_str());
    if (!d) return reaped;
    while (dirent* e = ::readdir(d)) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
        std::string file = lock_file_name(e->d_name);
        UniqueFd lock = claim(locks, file);
        if (!lock.valid()) continue;  // a live supervisor owns it
        std::string path = root + "/" + e->d_name;
        auto orphan = reap_one(path);
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) continue;  // still there: retried next time
        ::unlinkat(locks.fd(), file.c_str(), 0);
        if (orphan) reaped.push_back(std::move(*orphan));
    }
    ::closedir(d);
    return reaped;
}

}  // namespace cordon::cgroup
