// SPDX-License-Identifier: Apache-2.0
#include "creds/secret_file.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "cordon/fd.h"

namespace cordon::creds {
namespace {

std::string fix_command(const std::string& path) {
    return "chown root:root " + path + " && chmod 600 " + path;
}

// The rules of ssh's sshkey_perm_ok: owner root or the reader, no access for
// group or others. Checked on the open descriptor, so what is checked is
// what is read.
Status check_protected(int fd, const std::string& path, const std::string& what) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno_error(what + ": cannot stat " + path);
    if (st.st_uid != 0 && st.st_uid != ::geteuid())
        return plain_error(what + ": " + path + " is owned by uid " + std::to_string(st.st_uid) +
                               ", not by root: another account could replace the secret",
                           "run: " + fix_command(path));
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return plain_error(what + ": " + path + " has mode " + mode +
                               ": group or others may read or change the secret",
                           "run: " + fix_command(path));
    }
    return ok_status();
}

Result<std::string> read_all(int fd, const std::string& path, const std::string& what) {
    std::string data;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            Error e = errno_error(what + ": cannot read " + path);
            ::explicit_bzero(data.data(), data.size());
            return e;
        }
        if (n == 0) break;
        data.append(buf, static_cast<size_t>(n));
    }
    ::explicit_bzero(buf, sizeof buf);
    return data;
}

// Removes the newlines an editor leaves, wiping them rather than leaving
// them past the string's end.
std::string without_trailing_newlines(std::string value) {
    size_t end = value.size();
    while (end > 0 && (value[end - 1] == '\n' || value[end - 1] == '\r')) --end;
    ::explicit_bzero(value.data() + end, value.size() - end);
    value.resize(end);
    return value;
}

}  // namespace

Status check_trusted_file(const std::string& path, const std::string& what) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return errno_error(what + ": cannot use " + path,
                           "check the path; relative paths start at the profile's directory");
    if (!S_ISREG(st.st_mode)) return plain_error(what + ": " + path + " is not a regular file");
    if ((st.st_uid != 0 && st.st_uid != ::geteuid()) || (st.st_mode & 022) != 0)
        return plain_error(what + ": " + path +
                               " can be changed by another account than root: whoever writes "
                               "it chooses which servers agent-run trusts",
                           "run: chown root " + path + " && chmod go-w " + path);
    return ok_status();
}

Result<Secret> read_secret_file(const std::string& path, const std::string& what) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
    if (!fd.valid() && errno == ELOOP)
        return plain_error(what + ": " + path +
                               " is a symbolic link; secrets are read only "
                               "from the file itself",
                           "point the profile at the link's target, owned by root, mode 0600");
    if (!fd.valid())
        return errno_error(what + ": cannot read " + path,
                           "check the path; relative paths start at the profile's directory");
    if (auto st = check_protected(fd.get(), path, what); !st) return st.error();
    auto data = read_all(fd.get(), path, what);
    if (!data) return data.error();
    Secret secret(without_trailing_newlines(std::move(*data)));
    if (secret.empty()) return plain_error(what + ": " + path + " is empty");
    return secret;
}

}  // namespace cordon::creds
