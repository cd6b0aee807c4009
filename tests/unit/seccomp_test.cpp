// SPDX-License-Identifier: Apache-2.0
// The seccomp data and its resolution: group expansion, the errors a
// reviewer sees for broken data or profiles, the profile's additions, and
// the lint that keeps the default baseline from letting an escape through.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "seccomp/seccomp.h"

namespace cordon::seccomp {
namespace {

namespace fs = std::filesystem;

const std::string kDataDir = CORDON_SOURCE_DIR "/profiles/seccomp";

// The groups the lint guards: nothing in them may be allowed without an
// argument filter by agent-default.
const std::vector<std::string> kDangerous = {"@escape", "@mount", "@keyring", "@namespaces",
                                             "@io-uring"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

// A scratch data directory with the given groups.json and baselines.
class DataDir {
  public:
    DataDir(const std::string& groups, const std::map<std::string, std::string>& baselines) {
        char tmpl[] = "/tmp/cordon-seccomp-XXXXXX";
        dir_ = ::mkdtemp(tmpl);
        fs::create_directory(dir_ / "baselines");
        std::ofstream(dir_ / "groups.json") << groups;
        for (const auto& [name, text] : baselines)
            std::ofstream(dir_ / "baselines" / (name + ".json")) << text;
    }
    ~DataDir() { fs::remove_all(dir_); }
    std::string path() const { return dir_.string(); }

  private:
    fs::path dir_;
};

const char* kSmallGroups = R"({"groups": {
    "@a": {"help": "a", "syscalls": ["ptrace", "@b"]},
    "@b": {"help": "b", "syscalls": ["bpf", "umount2"]}
}})";

std::string baseline(const std::string& rules, const std::string& def = "allow") {
    return R"({"baseline": "base", "help": "test", "default": ")" + def + R"(", "rules": )" +
           rules + "}";
}

Catalog must_load(const std::string& dir) {
    auto cat = load_catalog(dir);
    EXPECT_TRUE(cat) << cat.error().message();
    return cat ? std::move(cat).value() : Catalog{};
}

// The rules of the scratch baseline "base".
Result<Ruleset> resolve_base(const Catalog& cat) {
    profile::SyscallPolicy policy;
    policy.baseline = "base";
    return resolve(cat, policy);
}

std::string load_error(const std::string& groups, const std::string& base) {
    DataDir d(groups, {{"base", base}});
    auto cat = load_catalog(d.path());
    EXPECT_FALSE(cat) << "loaded although broken";
    return cat ? "" : cat.error().message();
}

TEST(SeccompData, ShippedDataLoads) {
    Catalog cat = must_load(kDataDir);
    ASSERT_TRUE(cat.baselines.count("agent-default"));
    for (const auto& g : kDangerous) {
        ASSERT_TRUE(cat.groups.count(g)) << g;
        EXPECT_FALSE(cat.groups.at(g).help.empty()) << g;
    }
}

TEST(SeccompData, GroupsExpandThroughIncludes) {
    Catalog cat = must_load(kDataDir);
    auto escape = expand(cat, "@escape", "test");
    ASSERT_TRUE(escape) << escape.error().message();
    for (const char* s : {"ptrace", "process_vm_readv", "process_vm_writev", "bpf",
                          "perf_event_open", "userfaultfd", "kexec_load", "kexec_file_load",
                          "init_module", "finit_module", "delete_module", "open_by_handle_at"})
        EXPECT_TRUE(contains(*escape, s)) << s;
    EXPECT_TRUE(std::is_sorted(escape->begin(), escape->end()));
    EXPECT_EQ(std::adjacent_find(escape->begin(), escape->end()), escape->end());

    auto all = expand(cat, "@sandbox-escape", "test");
    ASSERT_TRUE(all);
    for (const char* s : {"mount", "fsopen", "keyctl", "add_key", "unshare", "setns", "ptrace"})
        EXPECT_TRUE(contains(*all, s)) << s;

    auto one = expand(cat, "getpid", "test");
    ASSERT_TRUE(one);
    EXPECT_EQ(*one, std::vector<std::string>{"getpid"});
}

TEST(SeccompData, SyscallsOfOtherArchitecturesAreSkipped) {
#if !defined(__x86_64__)
    GTEST_SKIP() << "umount is absent on x86_64 only";
#endif
    Catalog cat = must_load(kDataDir);
    auto mount = expand(cat, "@mount", "test");
    ASSERT_TRUE(mount);
    EXPECT_FALSE(contains(*mount, "umount"));
    EXPECT_TRUE(contains(*mount, "umount2"));
}

TEST(SeccompData, IncludeCycleIsRejected) {
    std::string msg = load_error(R"({"groups": {
        "@a": {"help": "a", "syscalls": ["ptrace", "@b"]},
        "@b": {"help": "b", "syscalls": ["@c"]},
        "@c": {"help": "c", "syscalls": ["@a"]}
    }})",
                                 baseline("[]"));
    EXPECT_NE(msg.find("groups.json: groups.@a"), std::string::npos) << msg;
    EXPECT_NE(msg.find("include cycle @a -> @b -> @c -> @a"), std::string::npos) << msg;
}

TEST(SeccompData, SelfIncludeIsRejected) {
    std::string msg =
        load_error(R"({"groups": {"@a": {"help": "a", "syscalls": ["@a"]}}})", baseline("[]"));
    EXPECT_NE(msg.find("include cycle @a -> @a"), std::string::npos) << msg;
}

TEST(SeccompData, UnknownSyscallInGroupNamesTheGroup) {
    std::string msg =
        load_error(R"({"groups": {"@a": {"help": "a", "syscalls": ["ptrac"]}}})", baseline("[]"));
    EXPECT_NE(msg.find("groups.json: groups.@a: unknown syscall 'ptrac'"), std::string::npos)
        << msg;
}

TEST(SeccompData, UnknownGroupInBaselineNamesTheRule) {
    std::string msg = load_error(
        kSmallGroups, baseline(R"([{"syscalls": ["@a", "@nope"], "action": "errno:EPERM"}])"));
    EXPECT_NE(msg.find("base.json: rules[0].syscalls[1]: unknown syscall group '@nope'"),
              std::string::npos)
        << msg;
}

TEST(SeccompData, MalformedDataIsRejected) {
    struct Case {
        std::string rules;
        std::string expected;
    };
    const Case cases[] = {
        {R"([{"syscalls": ["ptrace"], "action": "errno:EPERM", "hepl": "x"}])",
         "rules[0]: unknown key 'hepl'"},
        {R"([{"syscalls": ["ptrace"], "action": "deny"}])", "unknown action 'deny'"},
        {R"([{"syscalls": ["ptrace"], "action": "errno:EBOGUS"}])", "unknown errno 'EBOGUS'"},
        {R"([{"syscalls": [], "action": "allow"}])", "rules[0].syscalls: must be a non-empty"},
        {R"([{"syscalls": ["socket"], "action": "errno:EPERM",
              "when": [{"arg": 0, "eq": "AF_PACKET"}]}])",
         "rules[0]: a rule with 'when' needs a 'why'"},
        {R"([{"syscalls": ["socket"], "action": "errno:EPERM", "why": "w",
              "when": [{"arg": 6, "eq": 1}]}])",
         "rules[0].when[0].arg: must be an argument index from 0 to 5"},
        {R"([{"syscalls": ["socket"], "action": "errno:EPERM", "why": "w",
              "when": [{"arg": 0, "eq": "AF_BOGUS"}]}])",
         "rules[0].when[0].eq: unknown constant 'AF_BOGUS'"},
        {R"([{"syscalls": ["socket"], "action": "errno:EPERM", "why": "w",
              "when": [{"arg": 0, "eq": 1, "ne": 2}]}])",
         "rules[0].when[0]: needs exactly one of"},
        {R"([{"syscalls": ["socket"], "action": "allow", "why": "w",
              "when": [{"arg": 0, "ne": "AF_PACKET"}]}])",
         "ne and ge on a 32-bit argument can only refuse"},
        {R"([{"syscalls": ["socket"], "action": "allow", "why": "w",
              "when": [{"arg": 0, "ge": 18}]}])",
         "ne and ge on a 32-bit argument can only refuse"},
    };
    for (const auto& c : cases) {
        std::string msg = load_error(kSmallGroups, baseline(c.rules, "errno:EPERM"));
        EXPECT_NE(msg.find(c.expected), std::string::npos) << msg << "\nexpected: " << c.expected;
    }
}

TEST(SeccompData, BaselineMustLiveInItsOwnFile) {
    DataDir d(kSmallGroups, {{"other", baseline("[]")}});
    auto cat = load_catalog(d.path());
    ASSERT_FALSE(cat);
    EXPECT_NE(cat.error().message().find("baseline 'base' must live in base.json"),
              std::string::npos);
}

TEST(SeccompResolve, ContradictoryRulesAreRejected) {
    DataDir d(kSmallGroups, {{"base", baseline(R"([
        {"syscalls": ["@a"], "action": "errno:EPERM"},
        {"syscalls": ["bpf"], "action": "errno:ENOSYS"}])")}});
    Catalog cat = must_load(d.path());
    profile::SyscallPolicy policy;
    policy.baseline = "base";
    auto rs = resolve(cat, policy);
    ASSERT_FALSE(rs);
    EXPECT_NE(rs.error().message().find("rules[1]: bpf already has a rule at"), std::string::npos)
        << rs.error().message();
}

TEST(SeccompResolve, UnknownBaselineNamesTheProfileKey) {
    Catalog cat = must_load(kDataDir);
    profile::SyscallPolicy policy;
    policy.baseline = "nope";
    auto rs = resolve(cat, policy);
    ASSERT_FALSE(rs);
    EXPECT_NE(rs.error().message().find("syscalls.baseline: unknown baseline 'nope'"),
              std::string::npos);
    EXPECT_NE(rs.error().message().find("agent-default"), std::string::npos);
}

TEST(SeccompResolve, UnknownNamesInTheProfileNameTheirKey) {
    Catalog cat = must_load(kDataDir);
    profile::SyscallPolicy policy;
    policy.allow = {"getpid", "nosuchcall"};
    auto rs = resolve(cat, policy);
    ASSERT_FALSE(rs);
    EXPECT_NE(rs.error().message().find("syscalls.allow[1]: unknown syscall 'nosuchcall'"),
              std::string::npos)
        << rs.error().message();

    policy.allow.clear();
    policy.deny = {"@nosuchgroup"};
    rs = resolve(cat, policy);
    ASSERT_FALSE(rs);
    EXPECT_NE(rs.error().message().find("syscalls.deny[0]: unknown syscall group '@nosuchgroup'"),
              std::string::npos)
        << rs.error().message();
}

TEST(SeccompResolve, BaselineRulesArePerSyscall) {
    Catalog cat = must_load(kDataDir);
    auto rs = resolve(cat, profile::SyscallPolicy{});
    ASSERT_TRUE(rs) << rs.error().message();
    // An allowlist: what no rule names fails with ENOSYS.
    EXPECT_EQ(rs->default_action.str(), "errno:ENOSYS");
    const auto& ptrace = rs->syscalls.at("ptrace");
    ASSERT_EQ(ptrace.size(), 1u);
    EXPECT_EQ(ptrace[0].action.str(), "notify");
    EXPECT_EQ(rs->syscalls.at("clone3")[0].action.str(), "errno:ENOSYS");
    EXPECT_EQ(rs->syscalls.at("io_uring_setup")[0].action.str(), "errno:ENOSYS");
    EXPECT_EQ(rs->syscalls.at("socket").size(), 10u);
    EXPECT_FALSE(rs->syscalls.at("clone")[0].when.empty());
    ASSERT_EQ(rs->syscalls.at("read").size(), 1u);
    EXPECT_EQ(rs->syscalls.at("read")[0].action.str(), "allow");
    // ioctl: allowed, with conditional refusals as exceptions.
    const auto& ioctl = rs->syscalls.at("ioctl");
    ASSERT_EQ(ioctl.size(), 2u);
    EXPECT_TRUE(ioctl[0].when.empty());
    EXPECT_EQ(ioctl[1].action.str(), "errno:EPERM");
    EXPECT_FALSE(rs->syscalls.count("kcmp"));
}

TEST(SeccompResolve, ProfileAllowAndDenyReplaceTheBaseline) {
    Catalog cat = must_load(kDataDir);
    profile::SyscallPolicy policy;
    policy.allow = {"ptrace", "@keyring", "socket"};
    policy.deny = {"@keyring", "getcwd"};
    auto rs = resolve(cat, policy);
    ASSERT_TRUE(rs) << rs.error().message();

    const auto& ptrace = rs->syscalls.at("ptrace");
    ASSERT_EQ(ptrace.size(), 1u);
    EXPECT_TRUE(ptrace[0].action.allows());
    EXPECT_EQ(ptrace[0].origin, "syscalls.allow[0]");

    const auto& socket = rs->syscalls.at("socket");
    ASSERT_EQ(socket.size(), 1u);
    EXPECT_TRUE(socket[0].when.empty());

    // Deny wins over allow.
    const auto& keyctl = rs->syscalls.at("keyctl");
    ASSERT_EQ(keyctl.size(), 1u);
    EXPECT_EQ(keyctl[0].action.str(), "errno:EPERM");
    EXPECT_EQ(keyctl[0].origin, "syscalls.deny[0]");
    EXPECT_EQ(rs->syscalls.at("getcwd")[0].origin, "syscalls.deny[1]");
}

TEST(SeccompLint, AgentDefaultRefusesEveryDangerousSyscall) {
    Catalog cat = must_load(kDataDir);
    profile::SyscallPolicy policy;
    policy.baseline = "agent-default";
    auto rs = resolve(cat, policy);
    ASSERT_TRUE(rs) << rs.error().message();
    auto problems = lint(cat, *rs, kDangerous);
    ASSERT_TRUE(problems) << problems.error().message();
    for (const auto& p : *problems) ADD_FAILURE() << p;
}

TEST(SeccompLint, FailsWhenADangerousSyscallIsAllowed) {
    Catalog cat = must_load(kDataDir);
    profile::SyscallPolicy policy;
    policy.allow = {"ptrace", "@io-uring"};
    auto rs = resolve(cat, policy);
    ASSERT_TRUE(rs) << rs.error().message();
    auto problems = lint(cat, *rs, kDangerous);
    ASSERT_TRUE(problems);
    ASSERT_EQ(problems->size(), 4u);
    EXPECT_TRUE(contains(*problems,
                         "ptrace (@escape) is allowed without an argument filter by "
                         "syscalls.allow[0]"));

    // A baseline that forgets a dangerous syscall lets it through by default.
    DataDir d(kSmallGroups,
              {{"base", baseline(R"([{"syscalls": ["ptrace"], "action": "errno:EPERM"}])")}});
    Catalog small = must_load(d.path());
    policy = {};
    policy.baseline = "base";
    rs = resolve(small, policy);
    ASSERT_TRUE(rs);
    problems = lint(small, *rs, {"@a"});
    ASSERT_TRUE(problems);
    EXPECT_EQ(*problems, (std::vector<std::string>{
                             "bpf (@a) is allowed by the default action of baseline base",
                             "umount2 (@a) is allowed by the default action of "
                             "baseline base"}));
}

TEST(SeccompLint, AnArgumentFilterSatisfiesIt) {
    DataDir d(kSmallGroups, {{"base", baseline(R"([
        {"syscalls": ["@a"], "action": "errno:EPERM"},
        {"syscalls": ["clone"], "action": "errno:EPERM", "why": "namespaces",
         "when": [{"arg": 0, "any_bits": ["CLONE_NEWUSER", "CLONE_NEWNET"], "wide": true}]}])")}});
    Catalog cat = must_load(d.path());
    profile::SyscallPolicy policy;
    policy.baseline = "base";
    auto rs = resolve(cat, policy);
    ASSERT_TRUE(rs) << rs.error().message();
    auto problems = lint(cat, *rs, {"@a", "clone"});
    ASSERT_TRUE(problems);
    EXPECT_TRUE(problems->empty()) << (*problems)[0];
}

// Hot syscalls never take the round trip to the supervisor: only the
// escape class is handed to the listener.
TEST(SeccompLint, OnlyTheEscapeClassIsNotified) {
    Catalog cat = must_load(kDataDir);
    auto rs = resolve(cat, profile::SyscallPolicy{});
    ASSERT_TRUE(rs) << rs.error().message();
    auto escape = expand(cat, "@sandbox-escape", "test");
    ASSERT_TRUE(escape);
    EXPECT_EQ(notified(*rs), *escape);
    for (const char* hot : {"read", "write", "futex", "openat", "close", "mmap", "ioctl"})
        EXPECT_FALSE(contains(notified(*rs), hot)) << hot;
    for (const char* s : {"ptrace", "bpf", "mount", "unshare", "setns", "keyctl", "add_key",
                          "perf_event_open", "userfaultfd", "init_module", "kexec_load",
                          "process_vm_readv", "process_vm_writev", "open_by_handle_at"})
        EXPECT_TRUE(contains(notified(*rs), s)) << s;
}

// socketcall reaches every socket call past socket()'s argument rules on
// the architectures that have it; x86_64 has none, and the name is skipped.
TEST(SeccompLint, SocketcallIsRefused) {
    Catalog cat = must_load(kDataDir);
    ASSERT_TRUE(cat.groups.count("@socketcall"));
    EXPECT_EQ(cat.groups.at("@socketcall").members, std::vector<std::string>{"socketcall"});
    auto rs = resolve(cat, profile::SyscallPolicy{});
    ASSERT_TRUE(rs);
    auto problems = lint(cat, *rs, {"@socketcall"});
    ASSERT_TRUE(problems);
    EXPECT_TRUE(problems->empty()) << (*problems)[0];
    auto names = expand(cat, "@socketcall", "test");
    ASSERT_TRUE(names);
#if defined(__x86_64__) || defined(__aarch64__)
    EXPECT_TRUE(names->empty()) << "socketcall exists here: check its rule on the kernel";
#else
    ASSERT_EQ(names->size(), 1u);
    EXPECT_EQ(rs->syscalls.at("socketcall")[0].action.str(), "errno:ENOSYS");
#endif
}

TEST(SeccompData, NotifyIsAnAction) {
    auto a = Action::parse("notify");
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->kind, Action::Kind::notify);
    EXPECT_EQ(a->str(), "notify");
    EXPECT_FALSE(a->allows());
    auto bad = Action::parse("notfy");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message().find("allow, log, kill-process, notify or errno:NAME"),
              std::string::npos)
        << bad.error().message();
}

TEST(SeccompData, NotifyIsNoDefault) {
    std::string msg = load_error(kSmallGroups, baseline("[]", "notify"));
    EXPECT_NE(msg.find("notify cannot be a baseline's default"), std::string::npos) << msg;
}

// An unconditional allow may have conditional refusals as exceptions
// (compiled into a second filter); an unconditional refusal may not.
TEST(SeccompResolve, ExceptionsOnlyToAnUnconditionalAllow) {
    DataDir ok(kSmallGroups, {{"base", baseline(R"([
        {"syscalls": ["ioctl"], "action": "allow"},
        {"syscalls": ["ioctl"], "action": "errno:EPERM", "why": "tty injection",
         "when": [{"arg": 1, "eq": "TIOCSTI"}]}])",
                                                "errno:ENOSYS")}});
    auto rs = resolve_base(must_load(ok.path()));
    ASSERT_TRUE(rs) << rs.error().message();
    auto prog = compile(*rs);
    ASSERT_TRUE(prog) << prog.error().message();
    EXPECT_GT(prog->exceptions_size(), 0u);

    DataDir bad(kSmallGroups, {{"base", baseline(R"([
        {"syscalls": ["ioctl"], "action": "errno:EPERM"},
        {"syscalls": ["ioctl"], "action": "allow", "why": "one request",
         "when": [{"arg": 1, "eq": "TIOCSTI"}]}])",
                                                 "errno:ENOSYS")}});
    rs = resolve_base(must_load(bad.path()));
    ASSERT_FALSE(rs);
    EXPECT_NE(rs.error().message().find("ioctl already has a rule at"), std::string::npos)
        << rs.error().message();
    EXPECT_NE(rs.error().message().find("only with conditional refusals"), std::string::npos)
        << rs.error().message();
}

TEST(SeccompCompile, NativeArchitectureOnlyAndX32Killed) {
    auto prog = build(profile::SyscallPolicy{}, kDataDir);
    ASSERT_TRUE(prog) << prog.error().message();
    const auto& insns = prog->insns();
    ASSERT_GT(insns.size(), 4u);
    // The first test is on seccomp_data.arch; anything else is the bad-arch
    // action, which must kill the process.
    EXPECT_EQ(insns[0].code, BPF_LD | BPF_W | BPF_ABS);
    EXPECT_EQ(insns[0].k, 4u);
    EXPECT_EQ(insns[1].code, BPF_JMP | BPF_JEQ | BPF_K);
    EXPECT_EQ(insns[1].k, static_cast<uint32_t>(AUDIT_ARCH_X86_64));
    const sock_filter& bad_arch = insns[1 + 1 + insns[1].jf];
    EXPECT_EQ(bad_arch.code, BPF_RET | BPF_K);
    EXPECT_EQ(bad_arch.k, static_cast<uint32_t>(SECCOMP_RET_KILL_PROCESS));
#if defined(__x86_64__)
    // libseccomp's x32 test: nr >= __X32_SYSCALL_BIT leads to the bad-arch
    // action (checked on the kernel by the integration tests).
    bool x32_check = std::any_of(insns.begin(), insns.end(), [](const sock_filter& i) {
        return i.code == (BPF_JMP | BPF_JGE | BPF_K) && i.k == 0x40000000u;
    });
    EXPECT_TRUE(x32_check);
#endif
}

TEST(SeccompCompile, EveryConditionFormCompiles) {
    DataDir d(kSmallGroups, {{"base", baseline(R"([
        {"syscalls": ["socket"], "action": "allow", "why": "families",
         "when": [{"arg": 0, "in": ["AF_UNIX", "AF_INET", "AF_INET6"]}]},
        {"syscalls": ["ioctl"], "action": "errno:EPERM", "why": "tty injection",
         "when": [{"arg": 1, "masked_eq": [4294967295, "TIOCSTI"]}]},
        {"syscalls": ["personality"], "action": "allow", "why": "default only",
         "when": [{"arg": 0, "eq": 0}]},
        {"syscalls": ["getpid"], "action": "allow"}])",
                                               "errno:EPERM")}});
    auto rs = resolve_base(must_load(d.path()));
    ASSERT_TRUE(rs) << rs.error().message();
    auto prog = compile(*rs);
    ASSERT_TRUE(prog) << prog.error().message();
    EXPECT_GT(prog->size(), 10u);
}

TEST(SeccompInstall, RefusesAnEmptyProgram) {
    EXPECT_EQ(install(Program{}), -EINVAL);
}

}  // namespace
}  // namespace cordon::seccomp
