// SPDX-License-Identifier: Apache-2.0
// Reading profiles/seccomp/: the group table, the baselines, the names a
// rule may use for argument values. Everything is validated here, so that
// resolve() and compile() only meet well-formed data.
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "seccomp/seccomp.h"

namespace cordon::seccomp {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kFormatHint = "see profiles/seccomp/README.md for the format";

// Errno names an action may return. A table, so that the data can only
// name errnos a reviewer will recognise.
constexpr std::pair<const char*, int> kErrnos[] = {
    {"EPERM", EPERM},           {"EACCES", EACCES},
    {"ENOSYS", ENOSYS},         {"EINVAL", EINVAL},
    {"ENOTTY", ENOTTY},         {"EAFNOSUPPORT", EAFNOSUPPORT},
    {"EOPNOTSUPP", EOPNOTSUPP}, {"EPROTONOSUPPORT", EPROTONOSUPPORT},
};

#define CORDON_CONST(name) \
    { #name, static_cast < uint64_t>(name) }
// Symbolic argument values a rule may use instead of numbers.
const std::pair<const char*, uint64_t> kConstants[] = {
    CORDON_CONST(AF_UNSPEC),
    CORDON_CONST(AF_UNIX),
    CORDON_CONST(AF_INET),
    CORDON_CONST(AF_INET6),
    CORDON_CONST(AF_NETLINK),
    CORDON_CONST(AF_PACKET),
    CORDON_CONST(AF_VSOCK),
    CORDON_CONST(AF_KEY),
    CORDON_CONST(AF_ALG),
    CORDON_CONST(AF_BLUETOOTH),
    CORDON_CONST(AF_CAN),
    CORDON_CONST(AF_TIPC),
    CORDON_CONST(AF_RDS),
    CORDON_CONST(AF_XDP),
    CORDON_CONST(AF_QIPCRTR),
    CORDON_CONST(AF_APPLETALK),
    CORDON_CONST(AF_X25),
    CORDON_CONST(AF_AX25),
    CORDON_CONST(AF_LLC),
    CORDON_CONST(SOCK_RAW),
    CORDON_CONST(SOCK_PACKET),
    CORDON_CONST(NETLINK_ROUTE),
    CORDON_CONST(NETLINK_AUDIT),
    CORDON_CONST(NETLINK_NETFILTER),
    CORDON_CONST(NETLINK_GENERIC),
    CORDON_CONST(NETLINK_KOBJECT_UEVENT),
    CORDON_CONST(NETLINK_SOCK_DIAG),
    CORDON_CONST(NETLINK_XFRM),
    CORDON_CONST(CLONE_NEWNS),
    CORDON_CONST(CLONE_NEWCGROUP),
    CORDON_CONST(CLONE_NEWUTS),
    CORDON_CONST(CLONE_NEWIPC),
    CORDON_CONST(CLONE_NEWUSER),
    CORDON_CONST(CLONE_NEWPID),
    CORDON_CONST(CLONE_NEWNET),
    CORDON_CONST(CLONE_NEWTIME),
    CORDON_CONST(TIOCSTI),
    CORDON_CONST(TIOCLINUX),
    CORDON_CONST(TCXONC),
    CORDON_CONST(SOCK_STREAM),
    CORDON_CONST(SOCK_DGRAM),
    CORDON_CONST(SOCK_SEQPACKET),
    CORDON_CONST(AT_EMPTY_PATH),
    CORDON_CONST(PER_LINUX),
    CORDON_CONST(PER_LINUX32),
    CORDON_CONST(READ_IMPLIES_EXEC),
    CORDON_CONST(ADDR_NO_RANDOMIZE),
    // Names of our own, for masks and values that have none in the headers.
    {"CLONE_NAMESPACES", CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                             CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET},
    {"PERSONALITY_QUERY", 0xffffffffULL},  // personality(2): read, do not change
    {"HIGH_32_BITS", 0xffffffff00000000ULL},
};
#undef CORDON_CONST

Error data_error(const std::string& where, const std::string& what) {
    return plain_error(where + ": " + what, kFormatHint);
}

// Unknown keys are errors, as in the NHI profile: a typo must not silently
// drop a rule.
Status check_keys(const json& obj, std::initializer_list<const char*> known,
                  const std::string& where) {
    if (!obj.is_object()) return data_error(where, "must be an object");
    for (const auto& [key, _] : obj.items()) {
        auto it = std::find_if(known.begin(), known.end(), [&](const char* k) { return key == k; });
        if (it == known.end()) return data_error(where, "unknown key '" + key + "'");
    }
    return ok_status();
}

Result<std::string> get_string(const json& obj, const char* key, const std::string& where,
                               bool required) {
    if (!obj.contains(key)) {
        if (required) return data_error(where, std::string("missing '") + key + "'");
        return std::string{};
    }
    if (!obj[key].is_string()) return data_error(where + "." + key, "must be a string");
    return obj[key].get<std::string>();
}

Result<std::vector<std::string>> get_names(const json& obj, const char* key,
                                           const std::string& where) {
    std::string path = where + "." + key;
    if (!obj.contains(key) || !obj[key].is_array() || obj[key].empty())
        return data_error(path, "must be a non-empty array of syscall or @group names");
    std::vector<std::string> names;
    for (const auto& n : obj[key]) {
        if (!n.is_string()) return data_error(path, "must hold only strings");
        names.push_back(n.get<std::string>());
    }
    return names;
}

Result<json> read_json(const fs::path& file) {
    std::ifstream in(file);
    if (!in) return errno_error("cannot read " + file.string(), kFormatHint);
    try {
        return json::parse(in, nullptr, true, /*ignore_comments=*/false);
    } catch (const json::parse_error& e) {
        return plain_error(file.string() + ": " + e.what(), "fix the JSON syntax");
    }
}

Result<uint64_t> parse_value(const json& v, const std::string& where) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_string()) {
        for (const auto& [name, value] : kConstants)
            if (v.get<std::string>() == name) return value;
        return data_error(where, "unknown constant '" + v.get<std::string>() + "'");
    }
    return data_error(where, "must be a non-negative number or a constant name");
}

Result<std::vector<uint64_t>> parse_values(const json& v, const std::string& where) {
    if (!v.is_array() || v.empty()) return data_error(where, "must be a non-empty array");
    std::vector<uint64_t> out;
    for (size_t i = 0; i < v.size(); ++i) {
        auto x = parse_value(v[i], where + "[" + std::to_string(i) + "]");
        if (!x) return x.error();
        out.push_back(*x);
    }
    return out;
}

struct OpName {
    const char* key;
    Condition::Op op;
};
constexpr OpName kOps[] = {
    {"eq", Condition::Op::eq},
    {"ne", Condition::Op::ne},
    {"masked_eq", Condition::Op::masked_eq},
    {"any_bits", Condition::Op::any_bits},
    {"in", Condition::Op::in},
    {"ge", Condition::Op::ge},
};

Result<Condition> parse_condition(const json& c, const std::string& where) {
    if (auto s =
            check_keys(c, {"arg", "eq", "ne", "masked_eq", "any_bits", "in", "ge", "wide"}, where);
        !s)
        return s.error();
    if (!c.contains("arg") || !c["arg"].is_number_unsigned() || c["arg"].get<unsigned>() > 5)
        return data_error(where + ".arg", "must be an argument index from 0 to 5");
    Condition cond;
    cond.arg = c["arg"].get<unsigned>();
    if (c.contains("wide")) {
        if (!c["wide"].is_boolean()) return data_error(where + ".wide", "must be true or false");
        cond.wide = c["wide"].get<bool>();
    }
    int ops = 0;
    for (const auto& [key, op] : kOps) {
        if (!c.contains(key)) continue;
        ++ops;
        cond.op = op;
        std::string path = where + "." + key;
        if (op == Condition::Op::eq || op == Condition::Op::ne || op == Condition::Op::ge) {
            auto v = parse_value(c[key], path);
            if (!v) return v.error();
            cond.values = {*v};
        } else {
            auto v = parse_values(c[key], path);
            if (!v) return v.error();
            if (op == Condition::Op::masked_eq && v->size() != 2)
                return data_error(path, "must be [mask, value]");
            cond.values = std::move(*v);
        }
    }
    if (ops != 1)
        return data_error(where, "needs exactly one of eq, ne, masked_eq, any_bits, in, ge");
    return cond;
}

// A negated or ordered test on a 32-bit argument cannot ignore the high
// half of the register (libseccomp has no masked "not equal" or "greater"):
// garbage there makes it true. That errs on the side of a refusal, and of nothing else.
Status check_negations(const Rule& rule, const std::string& where) {
    if (!rule.action.allows()) return ok_status();
    for (const auto& c : rule.when) {
        if ((c.op == Condition::Op::ne || c.op == Condition::Op::ge) && !c.wide)
            return data_error(where,
                              "ne and ge on a 32-bit argument can only refuse: a rule that "
                              "allows must test with eq, in or masked_eq");
    }
    return ok_status();
}

Result<Baseline::Entry> parse_entry(const json& e, const std::string& where) {
    if (auto s = check_keys(e, {"syscalls", "action", "when", "why", "help"}, where); !s)
        return s.error();
    Baseline::Entry entry;
    auto names = get_names(e, "syscalls", where);
    if (!names) return names.error();
    entry.syscalls = std::move(*names);
    auto action_text = get_string(e, "action", where, true);
    if (!action_text) return action_text.error();
    auto action = Action::parse(*action_text);
    if (!action) return data_error(where + ".action", action.error().what);
    entry.rule.action = *action;
    entry.rule.origin = where;
    if (e.contains("when")) {
        if (!e["when"].is_array() || e["when"].empty())
            return data_error(where + ".when", "must be a non-empty array of conditions");
        for (size_t i = 0; i < e["when"].size(); ++i) {
            auto c = parse_condition(e["when"][i], where + ".when[" + std::to_string(i) + "]");
            if (!c) return c.error();
            entry.rule.when.push_back(std::move(*c));
        }
        // An argument filter is the non-obvious kind of rule: say why.
        if (!e.contains("why"))
            return data_error(where, "a rule with 'when' needs a 'why' saying what it stops");
    }
    if (auto s = check_negations(entry.rule, where); !s) return s.error();
    return entry;
}

Status load_groups(Catalog& cat) {
    fs::path file = fs::path(cat.dir) / "groups.json";
    auto doc = read_json(file);
    if (!doc) return doc.error();
    std::string where = file.string();
    if (auto s = check_keys(*doc, {"help", "groups"}, where); !s) return s.error();
    if (!doc->contains("groups") || !(*doc)["groups"].is_object())
        return data_error(where, "missing object 'groups'");
    for (const auto& [name, g] : (*doc)["groups"].items()) {
        std::string gw = where + ": groups." + name;
        if (name.size() < 2 || name[0] != '@') return data_error(gw, "must start with '@'");
        if (auto s = check_keys(g, {"help", "why", "syscalls"}, gw); !s) return s.error();
        Group group{name, {}, {}, gw};
        auto help = get_string(g, "help", gw, true);
        if (!help) return help.error();
        group.help = *help;
        auto members = get_names(g, "syscalls", gw);
        if (!members) return members.error();
        group.members = std::move(*members);
        cat.groups.emplace(name, std::move(group));
    }
    return ok_status();
}

Status load_baseline(Catalog& cat, const fs::path& file) {
    auto doc = read_json(file);
    if (!doc) return doc.error();
    std::string where = file.string();
    if (auto s = check_keys(*doc, {"baseline", "help", "default", "rules"}, where); !s)
        return s.error();
    Baseline b;
    b.origin = where;
    auto name = get_string(*doc, "baseline", where, true);
    if (!name) return name.error();
    if (*name != file.stem().string())
        return data_error(where, "baseline '" + *name + "' must live in " + *name + ".json");
    b.name = *name;
    auto help = get_string(*doc, "help", where, true);
    if (!help) return help.error();
    b.help = *help;
    auto def_text = get_string(*doc, "default", where, true);
    if (!def_text) return def_text.error();
    auto def = Action::parse(*def_text);
    if (!def) return data_error(where + ": default", def.error().what);
    // Every syscall, read and write included, would wait for agent-run.
    if (def->kind == Action::Kind::notify)
        return data_error(where + ": default",
                          "notify cannot be a baseline's default; name the syscalls agent-run "
                          "should answer in a rule");
    b.default_action = *def;
    if (!doc->contains("rules") || !(*doc)["rules"].is_array())
        return data_error(where, "missing array 'rules'");
    const json& rules = (*doc)["rules"];
    for (size_t i = 0; i < rules.size(); ++i) {
        auto e = parse_entry(rules[i], where + ": rules[" + std::to_string(i) + "]");
        if (!e) return e.error();
        b.entries.push_back(std::move(*e));
    }
    cat.baselines.emplace(b.name, std::move(b));
    return ok_status();
}

// Depth-first walk that refuses a group reaching itself and names the loop.
Status check_cycles(const Catalog& cat) {
    enum class Mark { none, active, done };
    std::map<std::string, Mark> marks;
    std::vector<std::string> stack;
    std::function<Status(const std::string&)> visit = [&](const std::string& name) -> Status {
        Mark& m = marks[name];
        if (m == Mark::done) return ok_status();
        if (m == Mark::active) {
            auto start = std::find(stack.begin(), stack.end(), name);
            std::string loop;
            for (auto it = start; it != stack.end(); ++it) loop += *it + " -> ";
            return data_error(cat.groups.at(name).origin, "include cycle " + loop + name);
        }
        m = Mark::active;
        stack.push_back(name);
        for (const auto& member : cat.groups.at(name).members) {
            if (member[0] != '@' || !cat.groups.count(member)) continue;
            if (auto s = visit(member); !s) return s;
        }
        stack.pop_back();
        marks[name] = Mark::done;
        return ok_status();
    };
    for (const auto& [name, _] : cat.groups)
        if (auto s = visit(name); !s) return s;
    return ok_status();
}

// Expands every reference once, so that a typo anywhere in the data fails
// the load rather than the one session that happens to use it.
Status check_references(const Catalog& cat) {
    for (const auto& [name, g] : cat.groups)
        if (auto r = expand(cat, name, g.origin); !r) return r.error();
    for (const auto& [name, b] : cat.baselines)
        for (const auto& e : b.entries)
            for (size_t i = 0; i < e.syscalls.size(); ++i)
                if (auto r = expand(cat, e.syscalls[i],
                                    e.rule.origin + ".syscalls[" + std::to_string(i) + "]");
                    !r)
                    return r.error();
    return ok_status();
}

Status expand_into(const Catalog& cat, const std::string& name, const std::string& where,
                   std::set<std::string>& out, std::vector<std::string>& path) {
    if (name.empty()) return data_error(where, "empty syscall name");
    if (name[0] == '@') {
        auto it = cat.groups.find(name);
        if (it == cat.groups.end())
            return plain_error(where + ": unknown syscall group '" + name + "'",
                               "groups are defined in " + cat.dir + "/groups.json");
        if (std::find(path.begin(), path.end(), name) != path.end())
            return data_error(it->second.origin, "include cycle through " + name);
        path.push_back(name);
        for (const auto& m : it->second.members)
            if (auto s = expand_into(cat, m, it->second.origin, out, path); !s) return s;
        path.pop_back();
        return ok_status();
    }
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR)
        return plain_error(where + ": unknown syscall '" + name + "'",
                           "use a name from syscalls(2) or an @group");
    // Negative numbers are syscalls of other architectures (umount on
    // x86_64): nothing to filter here.
    if (nr >= 0) out.insert(name);
    return ok_status();
}

}  // namespace

Result<Action> Action::parse(const std::string& text) {
    if (text == "allow") return Action{Kind::allow, 0};
    if (text == "log") return Action{Kind::log, 0};
    if (text == "kill-process") return Action{Kind::kill_process, 0};
    if (text == "notify") return Action{Kind::notify, 0};
    if (text.rfind("errno:", 0) == 0) {
        std::string name = text.substr(6);
        for (const auto& [n, e] : kErrnos)
            if (name == n) return Action{Kind::errno_ret, e};
        return plain_error("unknown errno '" + name + "' in action '" + text + "'");
    }
    return plain_error("unknown action '" + text +
                       "' (allow, log, kill-process, notify or errno:NAME)");
}

std::string Action::str() const {
    switch (kind) {
        case Kind::allow:
            return "allow";
        case Kind::log:
            return "log";
        case Kind::kill_process:
            return "kill-process";
        case Kind::notify:
            return "notify";
        case Kind::errno_ret:
            for (const auto& [n, e] : kErrnos)
                if (e == err) return std::string("errno:") + n;
            return "errno:" + std::to_string(err);
    }
    return "?";
}

Result<std::vector<std::string>> expand(const Catalog& catalog, const std::string& name,
                                        const std::string& where) {
    std::set<std::string> out;
    std::vector<std::string> path;
    if (auto s = expand_into(catalog, name, where, out, path); !s) return s.error();
    return std::vector<std::string>(out.begin(), out.end());
}

Result<Catalog> load_catalog(const std::string& data_dir) {
    Catalog cat;
    cat.dir = data_dir;
    if (auto s = load_groups(cat); !s) return s.error();

    fs::path dir = fs::path(data_dir) / "baselines";
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& ent : fs::directory_iterator(dir, ec))
        if (ent.path().extension() == ".json") files.push_back(ent.path());
    if (ec) return Error{ec.value(), "cannot list " + dir.string(), kFormatHint};
    std::sort(files.begin(), files.end());
    for (const auto& f : files)
        if (auto s = load_baseline(cat, f); !s) return s.error();

    if (auto s = check_cycles(cat); !s) return s.error();
    if (auto s = check_references(cat); !s) return s.error();
    return cat;
}

}  // namespace cordon::seccomp
