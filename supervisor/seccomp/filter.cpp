// SPDX-License-Identifier: Apache-2.0
// From a Catalog to the classic BPF program a child installs: resolve the
// baseline and the profile's additions into one rule list per syscall,
// hand it to libseccomp for the native architecture, export the result.
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>

#include <spdlog/spdlog.h>

#include "cordon/fd.h"
#include "cordon/log.h"
#include "seccomp/seccomp.h"

namespace cordon::seccomp {
namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("seccomp");
    return logger;
}

struct FilterDeleter {
    void operator()(void* ctx) const {
        if (ctx) seccomp_release(ctx);
    }
};
using FilterCtx = std::unique_ptr<void, FilterDeleter>;

// True when `a` and `b` are an unconditional allow and a conditional
// refusal, in either order: the refusal is an exception (see compile).
bool exception_pair(const Rule& a, const Rule& b) {
    const Rule& plain = a.when.empty() ? a : b;
    const Rule& cond = a.when.empty() ? b : a;
    return plain.when.empty() && !cond.when.empty() && plain.action.allows() &&
           !cond.action.allows();
}

// Adds `rule` for each syscall of `names`, refusing two rules that
// contradict each other: an unconditional rule may only share a syscall
// with conditional refusals, and only when it allows.
Status add_rules(Ruleset& rs, const std::vector<std::string>& names, const Rule& rule) {
    for (const auto& name : names) {
        auto& rules = rs.syscalls[name];
        bool duplicate = false;
        for (const auto& r : rules) {
            duplicate =
                duplicate || (r.when.empty() && rule.when.empty() && r.action == rule.action);
            if (!duplicate && (r.when.empty() || rule.when.empty()) && !exception_pair(r, rule))
                return plain_error(rule.origin + ": " + name + " already has a rule at " +
                                       r.origin +
                                       "; an unconditional rule shares a syscall only with "
                                       "conditional refusals, and only when it allows",
                                   "move the syscall out of one of the two rules");
        }
        if (!duplicate) rules.push_back(rule);
    }
    return ok_status();
}

// The profile's allow and deny lists replace the baseline's rules for the
// syscalls they name.
Status apply_additions(const Catalog& cat, Ruleset& rs, const std::vector<std::string>& names,
                       const char* key, Action action) {
    for (size_t i = 0; i < names.size(); ++i) {
        std::string where = std::string("syscalls.") + key + "[" + std::to_string(i) + "]";
        auto syscalls = expand(cat, names[i], where);
        if (!syscalls) return syscalls.error();
        for (const auto& s : *syscalls) rs.syscalls[s] = {Rule{action, {}, where}};
    }
    return ok_status();
}

// "arg == v" as libseccomp sees it. For a 32-bit argument the high half of
// the register is masked off: the kernel ignores it, and so must the test,
// or socket(AF_PACKET | 1UL << 32, ...) would slip past a refusal.
scmp_arg_cmp equal(const Condition& c, uint64_t v) {
    if (c.wide) return scmp_arg_cmp{c.arg, SCMP_CMP_EQ, v, 0};
    return scmp_arg_cmp{c.arg, SCMP_CMP_MASKED_EQ, 0xffffffffULL, v & 0xffffffffULL};
}

// A rule's conditions as alternatives of libseccomp comparisons: each
// alternative is one seccomp_rule_add (all of its comparisons must hold),
// and any alternative makes the rule match. "in" and "any_bits" multiply
// the alternatives; the others add a comparison to each.
std::vector<std::vector<scmp_arg_cmp>> alternatives(const std::vector<Condition>& when) {
    std::vector<std::vector<scmp_arg_cmp>> alts(1);
    for (const auto& c : when) {
        std::vector<scmp_arg_cmp> choices;  // OR-ed
        std::vector<scmp_arg_cmp> all;      // AND-ed
        switch (c.op) {
            case Condition::Op::eq:
                all.push_back(equal(c, c.values[0]));
                break;
            case Condition::Op::ne:
                all.push_back({c.arg, SCMP_CMP_NE, c.values[0], 0});
                break;
            case Condition::Op::ge:
                all.push_back({c.arg, SCMP_CMP_GE, c.values[0], 0});
                break;
            case Condition::Op::masked_eq: {
                uint64_t mask = c.wide ? c.values[0] : c.values[0] & 0xffffffffULL;
                all.push_back({c.arg, SCMP_CMP_MASKED_EQ, mask, c.values[1] & mask});
                break;
            }
            case Condition::Op::in:
                for (uint64_t v : c.values) choices.push_back(equal(c, v));
                break;
            case Condition::Op::any_bits:
                for (uint64_t bit : c.values)
                    choices.push_back({c.arg, SCMP_CMP_MASKED_EQ, bit, bit});
                break;
        }
        if (choices.empty()) {
            for (auto& alt : alts) alt.insert(alt.end(), all.begin(), all.end());
            continue;
        }
        std::vector<std::vector<scmp_arg_cmp>> next;
        for (const auto& alt : alts)
            for (const auto& choice : choices) {
                next.push_back(alt);
                next.back().push_back(choice);
            }
        alts = std::move(next);
    }
    return alts;
}

uint32_t to_scmp(const Action& a) {
    switch (a.kind) {
        case Action::Kind::allow:
            return SCMP_ACT_ALLOW;
        case Action::Kind::log:
            return SCMP_ACT_LOG;
        case Action::Kind::kill_process:
            return SCMP_ACT_KILL_PROCESS;
        case Action::Kind::errno_ret:
            return SCMP_ACT_ERRNO(a.err);
        case Action::Kind::notify:
            return SCMP_ACT_NOTIFY;
    }
    return SCMP_ACT_KILL_PROCESS;
}

// True when `rules` holds an unconditional rule: its conditional rules are
// then exceptions to it.
bool has_unconditional(const std::vector<Rule>& rules) {
    return std::any_of(rules.begin(), rules.end(), [](const Rule& r) { return r.when.empty(); });
}

// Adds the rules of `name` that `wanted` selects.
Status add_syscall(scmp_filter_ctx ctx, const std::string& name, const std::vector<Rule>& rules,
                   const Action& def, const std::function<bool(const Rule&)>& wanted) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    for (const auto& rule : rules) {
        // libseccomp refuses a rule that repeats the default; it changes nothing anyway.
        if (rule.action == def || !wanted(rule)) continue;
        for (const auto& cmps : alternatives(rule.when)) {
            int rc = seccomp_rule_add_exact_array(ctx, to_scmp(rule.action), nr,
                                                  static_cast<unsigned>(cmps.size()), cmps.data());
            if (rc < 0)
                return neg_errno_error(
                    rc, "cannot add the seccomp rule for " + name + " from " + rule.origin);
        }
    }
    return ok_status();
}

// Reads the filter back through a memfd: libseccomp 2.5 exports only to a
// file descriptor.
Result<std::vector<sock_filter>> export_bpf(scmp_filter_ctx ctx) {
    UniqueFd fd(static_cast<int>(::syscall(SYS_memfd_create, "cordon-seccomp", MFD_CLOEXEC)));
    if (!fd.valid()) return errno_error("cannot create a memfd for the seccomp filter");
    if (int rc = seccomp_export_bpf(ctx, fd.get()); rc < 0)
        return neg_errno_error(rc, "cannot export the seccomp filter");
    off_t size = ::lseek(fd.get(), 0, SEEK_END);
    if (size <= 0 || size % sizeof(sock_filter) != 0)
        return plain_error("seccomp_export_bpf wrote " + std::to_string(size) +
                           " bytes, not a whole number of BPF instructions");
    if (size / sizeof(sock_filter) > BPF_MAXINSNS)
        return plain_error("the seccomp filter has " + std::to_string(size / sizeof(sock_filter)) +
                               " instructions, more than the kernel's " +
                               std::to_string(BPF_MAXINSNS),
                           "the baseline has too many argument rules");
    std::vector<sock_filter> insns(size / sizeof(sock_filter));
    if (::pread(fd.get(), insns.data(), size, 0) != size)
        return errno_error("cannot read back the exported seccomp filter");
    return insns;
}

// What programs call most (strace -c of python3, node, bash, git, curl):
// looked at first where libseccomp keeps a linear list.
void prioritise_hot_syscalls(scmp_filter_ctx ctx) {
    static constexpr const char* kHot[] = {"read",   "write",      "futex",          "close",
                                           "openat", "newfstatat", "fstat",          "mmap",
                                           "lseek",  "epoll_wait", "rt_sigprocmask", "poll"};
    constexpr uint8_t kTop = 255;
    for (size_t i = 0; i < std::size(kHot); ++i) {
        int nr = seccomp_syscall_resolve_name(kHot[i]);
        if (nr >= 0) (void)seccomp_syscall_priority(ctx, nr, static_cast<uint8_t>(kTop - i));
    }
}

}  // namespace

std::vector<std::string> notified(const Ruleset& rules) {
    std::vector<std::string> out;
    for (const auto& [name, rs] : rules.syscalls)
        for (const auto& r : rs)
            if (r.action.kind == Action::Kind::notify) {
                out.push_back(name);
                break;
            }
    return out;
}

Result<Ruleset> resolve(const Catalog& catalog, const profile::SyscallPolicy& policy) {
    auto it = catalog.baselines.find(policy.baseline);
    if (it == catalog.baselines.end()) {
        std::string known;
        for (const auto& [name, _] : catalog.baselines) known += (known.empty() ? "" : ", ") + name;
        return plain_error("syscalls.baseline: unknown baseline '" + policy.baseline + "'",
                           "baselines in " + catalog.dir + "/baselines: " + known);
    }
    const Baseline& b = it->second;
    Ruleset rs{b.name, b.default_action, {}};
    for (const auto& entry : b.entries)
        for (size_t i = 0; i < entry.syscalls.size(); ++i) {
            auto names = expand(catalog, entry.syscalls[i],
                                entry.rule.origin + ".syscalls[" + std::to_string(i) + "]");
            if (!names) return names.error();
            if (auto s = add_rules(rs, *names, entry.rule); !s) return s.error();
        }

    if (auto s = apply_additions(catalog, rs, policy.allow, "allow", Action{}); !s)
        return s.error();
    Action eperm{Action::Kind::errno_ret, EPERM};
    if (auto s = apply_additions(catalog, rs, policy.deny, "deny", eperm); !s) return s.error();
    return rs;
}

namespace {

// A libseccomp filter for the native architecture with `def` as its
// default, every other ABI killing the process.
Result<FilterCtx> new_filter(const Action& def) {
    FilterCtx ctx(seccomp_init(to_scmp(def)));
    if (!ctx) return plain_error("seccomp_init failed", "is libseccomp usable on this host?");

    // Only the native architecture is in the filter: i386 through int 0x80
    // and every other ABI hit the bad-arch action. On x86_64 libseccomp
    // also sends x32 numbers (nr >= __X32_SYSCALL_BIT) there when x32 is not
    // in the filter; the integration tests check both.
    if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        rc < 0)
        return neg_errno_error(rc, "cannot set the seccomp bad-arch action");
    // A binary tree of syscall numbers instead of a linear list: the hot
    // path stays short however many rules the baseline has.
    if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0)
        log()->debug("binary-tree optimisation unavailable: {}", rc);
    return ctx;
}

// The exceptions of syscalls that are allowed unconditionally but for some
// arguments (ioctl but TIOCSTI): a second filter that allows everything
// else. libseccomp cannot put both in one filter (its rules for a syscall
// must not overlap), and the kernel takes the most restrictive answer of
// all filters. Syscalls this filter allows outright stay in the kernel's
// per-syscall allow cache, so only the excepted ones pay for it.
Result<std::vector<sock_filter>> compile_exceptions(const Ruleset& rules) {
    bool any = false;
    for (const auto& [name, rs] : rules.syscalls)
        any = any || (has_unconditional(rs) && rs.size() > 1);
    if (!any) return std::vector<sock_filter>{};
    auto ctx = new_filter(Action{});
    if (!ctx) return ctx.error();
    for (const auto& [name, rs] : rules.syscalls) {
        if (!has_unconditional(rs)) continue;
        auto conditional = [](const Rule& r) { return !r.when.empty(); };
        if (auto s = add_syscall(ctx->get(), name, rs, Action{}, conditional); !s) return s.error();
    }
    return export_bpf(ctx->get());
}

}  // namespace

Result<Program> compile(const Ruleset& rules) {
    auto ctx = new_filter(rules.default_action);
    if (!ctx) return ctx.error();
    for (const auto& [name, rs] : rules.syscalls) {
        // With an unconditional rule, the conditional ones are exceptions.
        bool plain_only = has_unconditional(rs);
        auto main_rule = [plain_only](const Rule& r) { return !plain_only || r.when.empty(); };
        if (auto s = add_syscall(ctx->get(), name, rs, rules.default_action, main_rule); !s)
            return s.error();
    }
    prioritise_hot_syscalls(ctx->get());

    auto insns = export_bpf(ctx->get());
    if (!insns) return insns.error();
    auto exceptions = compile_exceptions(rules);
    if (!exceptions) return exceptions.error();
    log()->debug("baseline {}: {} syscalls with rules, {} + {} BPF instructions", rules.baseline,
                 rules.syscalls.size(), insns->size(), exceptions->size());
    return Program(std::move(*insns), !notified(rules).empty(), std::move(*exceptions));
}

Result<Program> build(const profile::SyscallPolicy& policy, const std::string& data_dir) {
    auto catalog = load_catalog(data_dir);
    if (!catalog) return catalog.error();

    auto rules = resolve(*catalog, policy);
    if (!rules) return rules.error();

    return compile(*rules);
}

Result<std::vector<std::string>> lint(const Catalog& catalog, const Ruleset& rules,
                                      const std::vector<std::string>& groups) {
    std::vector<std::string> problems;
    for (const auto& group : groups) {
        auto names = expand(catalog, group, "lint");
        if (!names) return names.error();
        for (const auto& name : *names) {
            auto it = rules.syscalls.find(name);
            const std::vector<Rule> none;
            const auto& rs = it == rules.syscalls.end() ? none : it->second;
            // Sound: some rule refuses it (an unconditional refusal, or an
            // argument filter whose match or fallback refuses).
            bool refused = !rules.default_action.allows();
            const Rule* allowed_by = nullptr;
            for (const auto& r : rs) {
                if (!r.action.allows()) refused = true;
                if (r.when.empty() && r.action.allows()) allowed_by = &r;
            }
            if (allowed_by)
                problems.push_back(name + " (" + group +
                                   ") is allowed without an argument "
                                   "filter by " +
                                   allowed_by->origin);
            else if (!refused)
                problems.push_back(name + " (" + group +
                                   ") is allowed by the default action of "
                                   "baseline " +
                                   rules.baseline);
        }
    }
    return problems;
}

int install(const Program& prog, int* listener) {
    if (prog.size() == 0) return -EINVAL;
    // Required for an unprivileged filter, and what the launcher sets anyway.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
    if (prog.exceptions_size() > 0) {
        sock_fprog exceptions = prog.exceptions_fprog();
        if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &exceptions) != 0) return -errno;
    }
    sock_fprog fprog = prog.fprog();
    bool listen = listener && prog.notifies();
    unsigned flags = listen ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    long rc = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
    if (rc < 0) return -errno;
    if (listen) *listener = static_cast<int>(rc);
    return 0;
}

}  // namespace cordon::seccomp
