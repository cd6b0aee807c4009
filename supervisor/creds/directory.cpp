// SPDX-License-Identifier: Apache-2.0
#include "creds/directory.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "cordon/fd.h"

namespace cordon::creds {
namespace {

// Room for tokens and keys, not for an agent's scratch files.
constexpr const char* kTmpfsLimits = "size=1m,nr_inodes=256";

bool probe_noswap() {
    UniqueFd fs(::fsopen("tmpfs", FSOPEN_CLOEXEC));
    if (!fs.valid()) return false;
    // An option the kernel does not know fails here, before any mount.
    return ::fsconfig(fs.get(), FSCONFIG_SET_FLAG, "noswap", nullptr, 0) == 0;
}

int write_all(int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        done += static_cast<size_t>(n);
    }
    return 0;
}

}  // namespace

bool noswap_supported() {
    static const bool supported = probe_noswap();
    return supported;
}

std::optional<CredentialsDir> plan_directory(const std::vector<Delivery>& deliveries, uid_t uid,
                                             gid_t gid, bool needed_later) {
    CredentialsDir dir;
    for (const auto& d : deliveries)
        if (!d.file.empty())
            dir.files.push_back({std::string(kCredentialsDir) + "/" + d.file, &d.value});
    if (dir.files.empty() && !needed_later) return std::nullopt;
    dir.uid = uid;
    dir.gid = gid;
    dir.mount_options = "mode=0500,uid=" + std::to_string(uid) + ",gid=" + std::to_string(gid) +
                        "," + kTmpfsLimits + (noswap_supported() ? ",noswap" : "");
    return dir;
}

Status ensure_mount_point(const char* path) {
    if (::mkdir(path, 0755) != 0 && errno != EEXIST)
        return errno_error(std::string("cannot create the mount point ") + path);
    struct stat st {};
    if (::lstat(path, &st) != 0) return errno_error(std::string("cannot stat ") + path);
    if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022) != 0)
        return plain_error(std::string(path) + " is not a root-owned directory others cannot write",
                           "remove it; agent-run creates it as root, mode 0755");
    return ok_status();
}

int write_secret_at(int dir_fd, const char* name, const Secret& value, uid_t uid, gid_t gid) {
    int fd = ::openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0) return -errno;
    int rc = write_all(fd, value.reveal());
    if (rc == 0 && ::fchown(fd, uid, gid) != 0) rc = -errno;
    if (rc == 0 && ::fchmod(fd, 0400) != 0) rc = -errno;
    ::close(fd);
    return rc;
}

int write_files(const CredentialsDir& dir) {
    for (const auto& file : dir.files)
        if (int rc = write_secret_at(AT_FDCWD, file.path.c_str(), *file.value, dir.uid, dir.gid);
            rc != 0)
            return rc;
    return 0;
}

Result<LiveDirectory> LiveDirectory::open(pid_t init) {
    std::string root_path = "/proc/" + std::to_string(init) + "/root";
    UniqueFd root(::open(root_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root.valid()) return errno_error("cannot open the session's root " + root_path);
    // Within the session's root, through no symbolic link the agent may have made.
    open_how how{};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    const char* relative = kCredentialsDir + 1;
    int fd = static_cast<int>(::syscall(SYS_openat2, root.get(), relative, &how, sizeof how));
    if (fd < 0)
        return errno_error("cannot open the session's credentials directory " + root_path + "/" +
                           relative);
    UniqueFd dir(fd);
    // Without the session's own tmpfs there, the path is the host's shared
    // mount point: a secret written into it would reach the host, not the
    // agent. A mount point's device differs from its parent's.
    struct stat self {};
    struct stat parent {};
    if (::fstatat(dir.get(), "", &self, AT_EMPTY_PATH) != 0 ||
        ::fstatat(dir.get(), "..", &parent, AT_SYMLINK_NOFOLLOW) != 0)
        return errno_error("cannot stat the session's credentials directory " + root_path + "/" +
                           relative);
    if (self.st_dev == parent.st_dev)
        return plain_error("the session's credentials directory " + root_path + "/" + relative +
                               " is not a mount of its own",
                           "plan it with plan_directory's needed_later when a grant may "
                           "write into it later");
    return LiveDirectory(std::move(dir));
}

Status LiveDirectory::replace(const std::string& name, const Secret& value, uid_t uid,
                              gid_t gid) const {
    // The new file under a name of its own, then renamed over the old one:
    // a reader sees the old token or the new one, never half of either.
    std::string temp = "." + name + ".new";
    if (::unlinkat(dir_.get(), temp.c_str(), 0) != 0 && errno != ENOENT)
        return errno_error("cannot remove a stale " + temp + " in the credentials directory");
    if (int rc = write_secret_at(dir_.get(), temp.c_str(), value, uid, gid); rc != 0) {
        // A write cut short (a full tmpfs) leaves part of the secret behind.
        if (rc != -EEXIST) (void)::unlinkat(dir_.get(), temp.c_str(), 0);
        return neg_errno_error(rc, "cannot write " + temp + " in the credentials directory");
    }
    if (::renameat(dir_.get(), temp.c_str(), dir_.get(), name.c_str()) != 0) {
        Error e =
            errno_error("cannot rename " + temp + " to " + name + " in the credentials directory");
        (void)::unlinkat(dir_.get(), temp.c_str(), 0);
        return e;
    }
    return ok_status();
}

Status LiveDirectory::remove(const std::string& name) const {
    // unlinkat(2) removes a symbolic link itself, never its target.
    if (::unlinkat(dir_.get(), name.c_str(), 0) != 0 && errno != ENOENT)
        return errno_error("cannot remove " + name + " from the credentials directory");
    return ok_status();
}

}  // namespace cordon::creds
