// SPDX-License-Identifier: Apache-2.0
// The session's seccomp filter, built with libseccomp from reviewed data:
// named syscall groups and baselines in profiles/seccomp/, plus the
// profile's own additions. The filter is compiled to a classic BPF program
// in the supervisor, so the child only has to install it (no allocation
// between clone and exec).
//
// The steps, each usable on its own (tests and the lint use them):
//   load_catalog   groups.json and baselines/*.json, validated, cycles refused
//   resolve        baseline + profile allow/deny -> one rule list per syscall
//   compile        rules -> libseccomp -> classic BPF for the native ABI only
//   install        in the child: no_new_privs, then seccomp(2), with a
//                  user-notification listener when the filter has notify rules
// The escape class answers through a listener agent-run watches (see
// notify.h).
// The data format is documented in profiles/seccomp/README.md.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cordon/result.h"
#include "profile/profile.h"

namespace cordon::seccomp {

// What the filter does with a syscall.
struct Action {
    // notify: seccomp user notification; the supervisor answers (EPERM).
    enum class Kind { allow, log, errno_ret, kill_process, notify };
    Kind kind = Kind::allow;
    int err = 0;  // for errno_ret

    // "allow", "log", "kill-process", "notify", "errno:EPERM".
    static Result<Action> parse(const std::string& text);
    std::string str() const;
    bool allows() const { return kind == Kind::allow || kind == Kind::log; }
    bool operator==(const Action&) const = default;
};

// One test on a syscall argument. Arguments are 32 bits wide unless
// `wide` is set: the kernel reads an int from the low half of the register
// and ignores the rest, so a 32-bit test must not be fooled by garbage in
// the high half.
struct Condition {
    enum class Op { eq, ne, masked_eq, any_bits, in, ge };
    unsigned arg = 0;  // 0..5
    Op op = Op::eq;
    std::vector<uint64_t> values;  // eq/ne/ge: 1; masked_eq: {mask, value}; in/any_bits: the set
    bool wide = false;
};

// A rule: `action` when every condition holds (always, when there is none).
struct Rule {
    Action action;
    std::vector<Condition> when;
    std::string origin;  // "baselines/agent-default.json: rules[2]", for messages
};

struct Group {
    std::string name;  // "@mount"
    std::string help;
    std::vector<std::string> members;  // syscalls and @groups, as written
    std::string origin;
};

struct Baseline {
    struct Entry {
        std::vector<std::string> syscalls;  // syscalls and @groups, as written
        Rule rule;
    };
    std::string name;
    std::string help;
    Action default_action;
    std::vector<Entry> entries;
    std::string origin;  // the file
};

// Everything under profiles/seccomp/, validated: every name resolves, no
// group includes itself.
struct Catalog {
    std::string dir;
    std::map<std::string, Group> groups;
    std::map<std::string, Baseline> baselines;
};

// The effective policy: the default, and the rules of each syscall that has
// any. Syscalls the native architecture lacks are already left out.
struct Ruleset {
    std::string baseline;
    Action default_action;
    std::map<std::string, std::vector<Rule>> syscalls;
};

// A compiled filter, ready for seccomp(SECCOMP_SET_MODE_FILTER): the main
// program, and a second one for the exceptions to syscalls it allows
// outright (ioctl but TIOCSTI), empty when there are none.
class Program {
  public:
    Program() = default;
    Program(std::vector<sock_filter> insns, bool notifies, std::vector<sock_filter> exceptions = {})
        : insns_(std::move(insns)), exceptions_(std::move(exceptions)), notifies_(notifies) {}
    // Valid as long as this Program lives.
    sock_fprog fprog() const { return as_fprog(insns_); }
    sock_fprog exceptions_fprog() const { return as_fprog(exceptions_); }
    size_t exceptions_size() const { return exceptions_.size(); }
    const std::vector<sock_filter>& exceptions() const { return exceptions_; }
    size_t size() const { return insns_.size(); }
    const std::vector<sock_filter>& insns() const { return insns_; }
    // True when some rule hands a syscall to a user-notification listener.
    bool notifies() const { return notifies_; }

  private:
    static sock_fprog as_fprog(const std::vector<sock_filter>& insns) {
        return sock_fprog{static_cast<unsigned short>(insns.size()),
                          const_cast<sock_filter*>(insns.data())};
    }
    std::vector<sock_filter> insns_;
    std::vector<sock_filter> exceptions_;
    bool notifies_ = false;
};

// Reads and validates groups.json and baselines/*.json under data_dir.
Result<Catalog> load_catalog(const std::string& data_dir);

// `name` (a syscall or an @group) as the sorted list of syscalls it stands
// for on the native architecture. `where` names the reference in messages.
Result<std::vector<std::string>> expand(const Catalog& catalog, const std::string& name,
                                        const std::string& where);

// The baseline `policy` names, with its allow list and then its deny list
// applied: each replaces whatever the baseline said about those syscalls
// (deny wins over allow, as for tools). Profile errors name the profile key
// ("syscalls.allow[1]").
Result<Ruleset> resolve(const Catalog& catalog, const profile::SyscallPolicy& policy);

// The filter for `rules`: native architecture only; every other ABI,
// x32 included, kills the process.
Result<Program> compile(const Ruleset& rules);

// load_catalog + resolve + compile.
Result<Program> build(const profile::SyscallPolicy& policy, const std::string& data_dir);

// The syscalls of `groups` that `rules` lets through without an argument
// filter, one message each ("ptrace (@escape) is allowed by ..."). Empty
// when the baseline is sound.
Result<std::vector<std::string>> lint(const Catalog& catalog, const Ruleset& rules,
                                      const std::vector<std::string>& groups);

// The syscalls `rules` hands to the listener (action notify), sorted.
std::vector<std::string> notified(const Ruleset& rules);

// Installs `prog` on the calling thread, after setting no_new_privs.
// Async-signal-safe: for the child between clone3 and execve. Returns 0 or
// -errno. When `listener` is set and the program notifies, the filter is
// installed with a new user-notification listener, stored there; without
// one, the kernel answers the notified syscalls with ENOSYS.
int install(const Program& prog, int* listener = nullptr);

}  // namespace cordon::seccomp
