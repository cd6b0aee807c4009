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
#include <cstring>
#include <fstream>
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

// Creating a session cgroup (mkdir, then flock) is not atomic: a reaper
// between the two would take the new cgroup for an orphan. Creators hold
// the root directory's lock shared, the reaper exclusive.
Result<UniqueFd> lock_root(const std::string& root, int how) {
    UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return errno_error("cannot open cgroup " + root);
    while (::flock(fd.get(), how) != 0)
        if (errno != EINTR) return errno_error("cannot lock cgroup " + root);
    return fd;
}

}  // namespace

Result<SessionCgroup> SessionCgroup::create(const std::string& root, const std::string& name,
                                            const std::string& label) {
    auto root_lock = lock_root(root, LOCK_SH);
    if (!root_lock) return root_lock.error();
    SessionCgroup cg;
    cg.path_ = root + "/" + name;
    if (::mkdir(cg.path_.c_str(), 0755) != 0)
        return errno_error("cannot create cgroup " + cg.path_);
    cg.dir_fd_.reset(::open(cg.path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg.dir_fd_.valid()) return errno_error("cannot open cgroup " + cg.path_);
    // The lock says "a supervisor owns this session"; the kernel drops it
    // when that supervisor dies, however it dies.
    if (::flock(cg.dir_fd_.get(), LOCK_EX | LOCK_NB) != 0)
        return errno_error("cannot lock cgroup " + cg.path_);
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
    if (st) {
        dir_fd_.reset();
        path_.clear();
    }
    return st;
}

static std::string read_label(int dir_fd) {
    char buf[4096];
    ssize_t n = ::fgetxattr(dir_fd, kLabelXattr, buf, sizeof buf);
    return n > 0 ? std::string(buf, n) : std::string();
}

std::vector<Orphan> cleanup_orphans(const std::string& root) {
    std::vector<Orphan> reaped;
    auto root_lock = lock_root(root, LOCK_EX);
    if (!root_lock) return reaped;
    DIR* d = ::opendir(root.c_str());
    if (!d) return reaped;
    while (dirent* e = ::readdir(d)) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
        std::string path = root + "/" + e->d_name;
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // owned
        auto id = cgroup_id(path);
        std::string label = read_label(fd.get());
        auto st = remove_tree(path, 5000);
        if (!st) {
            log()->warn("cannot reap orphaned session cgroup: {}", st.error().message());
            continue;
        }
        log()->info("reaped orphaned session cgroup {}", path);
        if (id) reaped.push_back(Orphan{*id, std::move(label)});
    }
    ::closedir(d);
    return reaped;
}

}  // namespace cordon::cgroup
