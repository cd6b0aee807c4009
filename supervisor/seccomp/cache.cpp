// SPDX-License-Identifier: Apache-2.0
#include "seccomp/cache.h"

#include <fcntl.h>
#include <seccomp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <spdlog/spdlog.h>

#include "cordon/fd.h"
#include "cordon/log.h"

namespace cordon::seccomp {
namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("seccomp");
    return logger;
}

// Bump when compile() changes what it emits for the same rules.
constexpr int kFormat = 1;
constexpr char kMagic[8] = {'C', 'S', 'C', 'M', 'P', 'v', '1', '\n'};

const char* op_name(Condition::Op op) {
    switch (op) {
        case Condition::Op::eq:
            return "eq";
        case Condition::Op::ne:
            return "ne";
        case Condition::Op::masked_eq:
            return "masked_eq";
        case Condition::Op::any_bits:
            return "any_bits";
        case Condition::Op::in:
            return "in";
        case Condition::Op::ge:
            return "ge";
    }
    return "?";
}

// FNV-1a: only names the file; the text inside decides a hit.
uint64_t fnv1a(const std::string& s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
    return h;
}

// The file: magic, then five 64-bit counts (text bytes, notifies, main
// instructions, exception instructions, reserved), the text, the programs.
struct Header {
    char magic[8];
    uint64_t text_size, notifies, insns, exceptions, reserved;
};

bool read_all(int fd, void* buf, size_t n) {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
        ssize_t r = ::read(fd, p, n);
        if (r <= 0) return false;
        p += r;
        n -= static_cast<size_t>(r);
    }
    return true;
}

bool write_all(int fd, const void* buf, size_t n) {
    const auto* p = static_cast<const char*>(buf);
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

// Refuses a file or directory someone else could have written.
Status check_private(int fd, const std::string& path, mode_t type) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno_error("cannot stat " + path);
    if ((st.st_mode & S_IFMT) != type)
        return plain_error(path + " is not a " + (type == S_IFDIR ? "directory" : "regular file"),
                           "remove it; agent-run rebuilds its seccomp cache");
    if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
        return plain_error(path + " is owned by uid " + std::to_string(st.st_uid) + " with mode " +
                               mode + ": the seccomp cache must be private to agent-run's user",
                           "remove it; agent-run rebuilds it");
    }
    return ok_status();
}

// The program stored at `path` when it is sound and was compiled from
// exactly `text`.
Result<Program> read_program(const std::string& path, const std::string& text) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return errno_error("cannot open " + path);
    if (auto st = check_private(fd.get(), path, S_IFREG); !st) return st.error();
    Header h{};
    if (!read_all(fd.get(), &h, sizeof h) || std::memcmp(h.magic, kMagic, sizeof kMagic) != 0)
        return plain_error(path + ": not a seccomp cache file");
    if (h.text_size != text.size() || h.insns == 0 || h.insns > BPF_MAXINSNS ||
        h.exceptions > BPF_MAXINSNS || h.notifies > 1)
        return plain_error(path + ": holds another policy, or is damaged");
    std::string stored(h.text_size, '\0');
    if (!read_all(fd.get(), stored.data(), stored.size()) || stored != text)
        return plain_error(path + ": holds another policy");
    std::vector<sock_filter> insns(h.insns), exceptions(h.exceptions);
    if (!read_all(fd.get(), insns.data(), insns.size() * sizeof(sock_filter)) ||
        !read_all(fd.get(), exceptions.data(), exceptions.size() * sizeof(sock_filter)))
        return plain_error(path + ": truncated");
    char extra;
    if (::read(fd.get(), &extra, 1) != 0) return plain_error(path + ": trailing bytes");
    return Program(std::move(insns), h.notifies == 1, std::move(exceptions));
}

// Writes `prog` for `text` to `path`: a private temporary file renamed
// over it, so that a reader never sees half a program.
Status write_program(const std::string& path, const std::string& text, const Program& prog) {
    std::string tmp = path + ".tmp." + std::to_string(::getpid());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd.valid()) return errno_error("cannot create " + tmp);
    Header h{};
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    h.text_size = text.size();
    h.notifies = prog.notifies() ? 1 : 0;
    h.insns = prog.size();
    h.exceptions = prog.exceptions_size();
    bool ok = write_all(fd.get(), &h, sizeof h) && write_all(fd.get(), text.data(), text.size()) &&
              write_all(fd.get(), prog.insns().data(), prog.size() * sizeof(sock_filter)) &&
              write_all(fd.get(), prog.exceptions().data(),
                        prog.exceptions_size() * sizeof(sock_filter)) &&
              ::fsync(fd.get()) == 0;
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        Error e = errno_error("cannot write " + tmp);
        ::unlink(tmp.c_str());
        return e;
    }
    return ok_status();
}

// The cache directory, made private when missing (its missing parents
// 0755, as the lock directories'), refused when it is not private.
Status prepare_dir(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ec);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return errno_error("cannot create " + dir,
                           "run as root, or give --run-dir a writable place");
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return errno_error("cannot open " + dir);
    return check_private(fd.get(), dir, S_IFDIR);
}

}  // namespace

std::string canonical_text(const Ruleset& rules) {
    const scmp_version* v = seccomp_version();
    std::ostringstream out;
    out << "cordon-seccomp " << kFormat << "\nlibseccomp " << v->major << "." << v->minor << "."
        << v->micro << "\narch " << seccomp_arch_native() << "\ndefault "
        << rules.default_action.str() << "\n";
    for (const auto& [name, rs] : rules.syscalls) {
        out << "syscall " << name << "\n";
        for (const auto& r : rs) {
            out << " rule " << r.action.str();
            for (const auto& c : r.when) {
                out << " | arg" << c.arg << " " << op_name(c.op) << (c.wide ? " wide" : "");
                for (uint64_t x : c.values) out << " " << x;
            }
            out << "\n";
        }
    }
    return out.str();
}

Result<Program> ProgramCache::get(const Ruleset& rules) {
    std::string text = canonical_text(rules);
    std::lock_guard lock(mu_);
    if (auto it = programs_.find(text); it != programs_.end()) return it->second;
    auto prog = compile(rules);
    if (!prog) return prog.error();
    programs_.emplace(std::move(text), *prog);
    return prog;
}

size_t ProgramCache::size() const {
    std::lock_guard lock(mu_);
    return programs_.size();
}

std::string DiskCache::path_for(const std::string& text) const {
    char name[32];
    std::snprintf(name, sizeof name, "%016llx.bpf", static_cast<unsigned long long>(fnv1a(text)));
    return dir_ + "/" + name;
}

Result<Program> DiskCache::get(const Ruleset& rules, CacheOutcome* outcome) {
    std::string text = canonical_text(rules);
    std::string path = path_for(text);
    CacheOutcome result = CacheOutcome::miss;
    if (auto dir = prepare_dir(dir_); !dir) {
        // Only a directory someone else could write is worth a warning; one
        // that cannot be made (--check as a user) just means no cache.
        if (dir.error().err == 0)
            log()->warn("seccomp cache not used: {}", dir.error().message());
        else
            log()->debug("seccomp cache not used: {}", dir.error().message());
        if (outcome) *outcome = CacheOutcome::miss;
        return compile(rules);
    }
    if (::access(path.c_str(), F_OK) == 0 || errno != ENOENT) {
        auto stored = read_program(path, text);
        if (stored) {
            if (outcome) *outcome = CacheOutcome::hit;
            log()->debug("seccomp filter from {}", path);
            return stored;
        }
        log()->warn("seccomp cache: {}; compiling again", stored.error().message());
        // A file we cannot trust is removed first: rename would follow no
        // link, but a directory in its place would stay.
        ::unlink(path.c_str());
        result = CacheOutcome::replaced;
    }
    auto prog = compile(rules);
    if (!prog) return prog.error();
    if (auto st = write_program(path, text, *prog); !st)
        log()->warn("seccomp cache: {}", st.error().message());
    if (outcome) *outcome = result;
    return prog;
}

Result<Program> build_cached(const profile::SyscallPolicy& policy, const std::string& data_dir,
                             const std::string& cache_dir) {
    auto catalog = load_catalog(data_dir);
    if (!catalog) return catalog.error();
    auto rules = resolve(*catalog, policy);
    if (!rules) return rules.error();
    return DiskCache(cache_dir).get(*rules);
}

}  // namespace cordon::seccomp
