// SPDX-License-Identifier: Apache-2.0
#include "landlock/landlock.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "creds/directory.h"

namespace cordon::landlock {
namespace {

using nlohmann::json;

// The kernel's structs and bits (include/uapi/linux/landlock.h), kept here:
// the distribution's headers may be older than the kernel.
struct RulesetAttr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct [[gnu::packed]] PathBeneathAttr {
    uint64_t allowed_access;
    int32_t parent_fd;
};
static_assert(sizeof(PathBeneathAttr) == 12, "struct landlock_path_beneath_attr is packed");

constexpr uint32_t kCreateRulesetVersion = 1U << 0;
// LANDLOCK_RESTRICT_SELF_LOG_NEW_EXEC_ON (ABI 7): the kernel audits denials
// after execve too, which is when the agent runs; by default it stops there.
constexpr uint32_t kLogNewExecOn = 1U << 1;
constexpr int kRulePathBeneath = 1;

// LANDLOCK_ACCESS_FS_*, bit N named kRightNames[N].
constexpr const char* kRightNames[] = {"execute",    "write_file",  "read_file", "read_dir",
                                       "remove_dir", "remove_file", "make_char", "make_dir",
                                       "make_reg",   "make_sock",   "make_fifo", "make_block",
                                       "make_sym",   "refer",       "truncate",  "ioctl_dev"};
constexpr uint64_t kExecute = 1ULL << 0;
constexpr uint64_t kWriteFile = 1ULL << 1;
constexpr uint64_t kReadFile = 1ULL << 2;
constexpr uint64_t kReadDir = 1ULL << 3;
constexpr uint64_t kRefer = 1ULL << 13;
constexpr uint64_t kTruncate = 1ULL << 14;
constexpr uint64_t kIoctlDev = 1ULL << 15;
constexpr uint64_t kAbi1Rights = (1ULL << 13) - 1;  // execute .. make_sym

// LANDLOCK_SCOPE_*, bit N named kScopeNames[N] (ABI 6).
constexpr const char* kScopeNames[] = {"abstract_unix_socket", "signal"};
constexpr uint64_t kAllScopes = (1ULL << 0) | (1ULL << 1);

// What each list of the profile grants. Write and execute include read:
// a workspace is read back, a script is read by its interpreter.
constexpr uint64_t kRead = kReadFile | kReadDir;
constexpr uint64_t kWrite = (kAbi1Rights | kRefer | kTruncate | kIoctlDev) & ~kExecute;
constexpr uint64_t kExec = kRead | kExecute;
// Terminals and the null device: read, write, truncate (`> /dev/null`), ioctl.
constexpr uint64_t kDevice = kRead | kWriteFile | kTruncate | kIoctlDev;
// The only rights a rule on a file, not a directory, may carry.
constexpr uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;

// Always added, where they exist: what the dynamic loader, libc and the
// common interpreters read and the devices every shell opens (the session's
// own /proc and scratch directories are kAfterMounts).
struct DefaultPath {
    const char* path;
    uint64_t rights;
};

constexpr DefaultPath kDefaults[] = {
    {"/etc", kRead},  // ld.so.cache, passwd, nsswitch.conf, resolv.conf, TLS roots
    {"/usr/lib", kRead},
    {"/usr/lib64", kRead},
    {"/lib", kRead},
    {"/lib64", kRead},
    {"/usr/local/lib", kRead},
    {"/usr/share", kRead},               // locales, zoneinfo, terminfo, ca-certificates
    {"/sys/devices/system/cpu", kRead},  // how many CPUs (nproc, sysconf)
    {"/dev/null", kDevice},
    {"/dev/zero", kRead},
    {"/dev/full", kDevice},
    {"/dev/random", kRead},
    {"/dev/urandom", kRead},
    {"/dev/tty", kDevice},
    {"/dev/pts", kDevice},
};

// The session's own mounts (launch/view.h): a fresh /proc, private
// scratch directories and the credentials directory (read only). A rule on
// the host's directory does not cover a filesystem mounted over it
// (Landlock skips a hidden mount point), so the session's init adds these
// once its mounts are in place.
constexpr DefaultPath kAfterMounts[] = {
    {"/proc", kRead},     {"/tmp", kWrite},      {"/var/tmp", kWrite},
    {"/dev/shm", kWrite}, {"/run/lock", kWrite}, {creds::kCredentialsDir, kRead},
};

std::vector<std::string> names_of(uint64_t bits, const char* const* names, size_t count) {
    std::vector<std::string> out;
    for (size_t i = 0; i < count; ++i)
        if (bits & (1ULL << i)) out.emplace_back(names[i]);
    return out;
}

int probe_abi() {
    long v = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
    return v < 0 ? -errno : static_cast<int>(v);
}

// What keeps a kernel's Landlock from answering, for the launch's error.
std::string why_missing(int abi) {
    if (abi == -EOPNOTSUPP) return "has Landlock built in but not enabled at boot";
    if (abi == -ENOSYS) return "was built without Landlock";
    if (abi < 0) return std::string("refused Landlock's version probe: ") + std::strerror(-abi);
    return "reports Landlock ABI " + std::to_string(abi);
}

// The program the kernel starts to run `file`: the interpreter of a "#!"
// line, or an ELF's PT_INTERP (its dynamic loader). Empty when none.
std::string interpreter_of(const std::string& file) {
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return {};
    char head[256] = {};
    ssize_t n = ::pread(fd.get(), head, sizeof head - 1, 0);
    if (n > 2 && head[0] == '#' && head[1] == '!') {
        std::string line(head + 2, n - 2);
        size_t start = line.find_first_not_of(" \t");
        if (start == std::string::npos) return {};
        return line.substr(start, line.find_first_of(" \t\n", start) - start);
    }
    Elf64_Ehdr eh{};
    if (::pread(fd.get(), &eh, sizeof eh, 0) != sizeof eh ||
        std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64)
        return {};
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph{};
        if (::pread(fd.get(), &ph, sizeof ph, eh.e_phoff + i * eh.e_phentsize) != sizeof ph)
            return {};
        if (ph.p_type != PT_INTERP || ph.p_filesz == 0 || ph.p_filesz > PATH_MAX) continue;
        std::string interp(ph.p_filesz, '\0');
        if (::pread(fd.get(), interp.data(), interp.size(), ph.p_offset) != ssize_t(interp.size()))
            return {};
        return interp.c_str();  // up to its terminating NUL
    }
    return {};
}

// Adds path rules to one ruleset and records what they cover.
class RuleAdder {
  public:
    RuleAdder(int ruleset_fd, uint64_t handled) : ruleset_fd_(ruleset_fd), handled_(handled) {}

    // Opens `path` (following links, as the agent's own opens would) and
    // allows `rights` beneath it. `key` names it in errors; empty for a
    // default, which is skipped when absent.
    Status add(const std::string& path, uint64_t rights, const std::string& key) {
        UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
        if (!fd.valid() && key.empty()) {
            if (errno == ENOENT) return ok_status();
            return errno_error("Landlock: cannot open " + path + ", a path every ruleset allows");
        }
        if (!fd.valid())
            return errno_error(key + ": cannot open " + path + " for a Landlock rule",
                               "create it or remove it from the profile");
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat " + path);
        PathBeneathAttr rule{rights & handled_, fd.get()};
        if (!S_ISDIR(st.st_mode)) rule.allowed_access &= kFileRights;
        if (rule.allowed_access == 0) return ok_status();
        if (::syscall(SYS_landlock_add_rule, ruleset_fd_, kRulePathBeneath, &rule, 0) != 0)
            return errno_error("cannot add a Landlock rule for " + path);
        auto& list = summary_[list_of(rights)];
        if (std::find(list.begin(), list.end(), path) == list.end()) list.push_back(path);
        return ok_status();
    }

    json summary() const { return summary_; }

  private:
    static const char* list_of(uint64_t rights) {
        if (rights & kExecute) return "execute";
        if (rights & kWriteFile) return "write";
        return "read";
    }

    int ruleset_fd_;
    uint64_t handled_;
    json summary_ = {{"read", json::array()}, {"write", json::array()}, {"execute", json::array()}};
};

Status add_profile_lists(RuleAdder& rules, const profile::FilesystemPolicy& policy) {
    struct List {
        const char* key;
        const std::vector<std::string>& paths;
        uint64_t rights;
    };
    const List lists[] = {{"read", policy.read, kRead},
                          {"write", policy.write, kWrite},
                          {"execute", policy.execute, kExec}};
    for (const List& list : lists) {
        for (size_t i = 0; i < list.paths.size(); ++i) {
            std::string key = std::string("filesystem.") + list.key + "[" + std::to_string(i) + "]";
            if (auto st = rules.add(list.paths[i], list.rights, key); !st) return st;
        }
    }
    return ok_status();
}

// Each executable and the chain of interpreters it needs (a script's
// interpreter, then that one's dynamic loader).
Status add_executables(RuleAdder& rules, const std::vector<std::string>& executables) {
    for (const auto& exe : executables) {
        std::string file = exe;
        for (int depth = 0; depth < 4 && !file.empty(); ++depth) {
            if (auto st = rules.add(file, kExec, ""); !st) return st;
            file = interpreter_of(file);
        }
    }
    return ok_status();
}

}  // namespace

int abi_version() {
    static const int abi = probe_abi();
    return abi;
}

Result<Support> support_for(int abi) {
    if (abi < 1)
        return plain_error(
            "Landlock: the profile's filesystem section needs Landlock, and this kernel " +
                why_missing(abi) + "; nothing was started",
            "boot Linux 5.13 or later with landlock in its lsm= list (see "
            "/sys/kernel/security/lsm), or remove filesystem from the profile");
    Support s{abi, kAbi1Rights, 0};
    if (abi >= 2) s.fs_rights |= kRefer;
    if (abi >= 3) s.fs_rights |= kTruncate;
    if (abi >= 5) s.fs_rights |= kIoctlDev;
    if (abi >= 6) s.scopes = kAllScopes;
    return s;
}

std::vector<std::string> right_names(uint64_t fs_rights) {
    return names_of(fs_rights, kRightNames, std::size(kRightNames));
}

std::vector<std::string> scope_names(uint64_t scopes) {
    return names_of(scopes, kScopeNames, std::size(kScopeNames));
}

json kernel_json() {
    int abi = abi_version();
    auto support = support_for(abi);
    if (!support)
        return {{"abi", nullptr},
                {"enforced", json::array()},
                {"scopes", json::array()},
                {"missing", "this kernel " + why_missing(abi)}};
    return {{"abi", support->abi},
            {"enforced", right_names(support->fs_rights)},
            {"scopes", scope_names(support->scopes)}};
}

Result<Ruleset> build(const profile::FilesystemPolicy& policy,
                      const std::vector<std::string>& executables, const Support& support) {
    // A kernel older than ABI 6 reads no scoped field; it must be zero then.
    RulesetAttr attr{support.fs_rights, 0, support.scopes};
    UniqueFd fd(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0)));
    if (!fd.valid()) return errno_error("Landlock: cannot create a ruleset");
    RuleAdder rules(fd.get(), support.fs_rights);
    if (auto st = add_profile_lists(rules, policy); !st) return st.error();
    for (const auto& d : kDefaults)
        if (auto st = rules.add(d.path, d.rights, ""); !st) return st.error();
    if (auto st = add_executables(rules, executables); !st) return st.error();
    json summary = rules.summary();
    for (const auto& d : kAfterMounts) {
        auto& list = summary[d.rights & kWriteFile ? "write" : "read"];
        if (std::find(list.begin(), list.end(), d.path) == list.end()) list.push_back(d.path);
    }
    summary["landlockAbi"] = support.abi;
    summary["scopes"] = scope_names(support.scopes);
    return Ruleset{std::move(fd), summary, support.fs_rights};
}

int add_after_mounts(const Ruleset& ruleset) {
    for (const auto& d : kAfterMounts) {
        int dir = ::open(d.path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0) {
            if (errno == ENOENT) continue;
            return -errno;
        }
        PathBeneathAttr rule{d.rights & ruleset.handled, dir};
        long rc = ::syscall(SYS_landlock_add_rule, ruleset.fd.get(), kRulePathBeneath, &rule, 0);
        int err = errno;
        ::close(dir);
        if (rc != 0) return -err;
    }
    return 0;
}

int restrict_self(int ruleset_fd) {
    // abi_version() was probed by the supervisor before the clone: a read.
    uint32_t flags = abi_version() >= 7 ? kLogNewExecOn : 0U;
    if (::syscall(SYS_landlock_restrict_self, ruleset_fd, flags) != 0) return -errno;
    return 0;
}

}  // namespace cordon::landlock
