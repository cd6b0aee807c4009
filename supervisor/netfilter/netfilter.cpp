// SPDX-License-Identifier: Apache-2.0
// Loader and map owner of bpf/netfilter. The pin directory holds
//   links/<hook>   one BPF link per program, attached to Cordon's root cgroup
//   maps/<map>     sessions, counters, rules, gates, destinations, events and event_slots
// so that enforcement outlives the process that loaded it, and a later
// process opens the maps without loading anything.
#include "netfilter/netfilter.h"
#include "cordon/log.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include "bpf/netfilter/netfilter.h"
#include "cgroup/cgroup.h"
#include "cordon/fd.h"
#include "netfilter.skel.h"
#include "netfilter/fold.h"

namespace cordon::netfilter {

// The structs shared with the BPF programs, as the C++ compiler sees them.
static_assert(sizeof(session_policy) == 40);
static_assert(offsetof(session_policy, rule_count) == 4);
static_assert(offsetof(session_policy, egress_budget) == 8);
static_assert(offsetof(session_policy, resolver_addr) == 16);
static_assert(offsetof(session_policy, resolver_port) == 32);
static_assert(offsetof(session_policy, events_slot) == 36);
static_assert(sizeof(session_counters) == 64);
static_assert(offsetof(session_counters, events_lost) == 0);
static_assert(offsetof(session_counters, egress_dropped) == 8);
static_assert(offsetof(session_counters, budget_dropped) == 16);
static_assert(offsetof(session_counters, bytes_sent) == 24);
static_assert(offsetof(session_counters, packets_sent) == 32);
static_assert(offsetof(session_counters, unattributed_bytes) == 40);
static_assert(offsetof(session_counters, unattributed_packets) == 48);
static_assert(offsetof(session_counters, unix_denied) == 56);
static_assert(sizeof(destination_key) == 32);
static_assert(offsetof(destination_key, addr) == 8);
static_assert(offsetof(destination_key, port) == 24);
static_assert(offsetof(destination_key, protocol) == 26);
static_assert(sizeof(destination_counters) == 16);
static_assert(offsetof(destination_counters, packets) == 8);
static_assert(sizeof(rule_key) == 28);
static_assert(offsetof(rule_key, cgroup_id) == 4);
static_assert(offsetof(rule_key, addr) == 12);
static_assert(sizeof(rule_value) == 60);
static_assert(offsetof(rule_value, port_last) == 2 * CORDON_MAX_PORT_RANGES);
static_assert(offsetof(rule_value, protocols) == 4 * CORDON_MAX_PORT_RANGES);
static_assert(offsetof(rule_value, count) == 40);
static_assert(offsetof(rule_value, gate) == 44);
static_assert(sizeof(rule_value::gate) == 2 * CORDON_MAX_PORT_RANGES);
static_assert(sizeof(gate_key) == 16);
static_assert(offsetof(gate_key, gate) == 8);
static_assert(sizeof(gate_value) == 32);
static_assert(offsetof(gate_value, generation) == 16);
static_assert(offsetof(gate_value, uses) == 4);
static_assert(offsetof(gate_value, closes_at) == 8);
static_assert(offsetof(gate_value, used) == 24);
static_assert(sizeof(net_event) == 80);
static_assert(offsetof(net_event, pid) == 8);
static_assert(offsetof(net_event, hook) == 12);
static_assert(offsetof(net_event, reason) == 16);
static_assert(offsetof(net_event, port) == 20);
static_assert(offsetof(net_event, protocol) == 22);
static_assert(offsetof(net_event, family) == 23);
static_assert(offsetof(net_event, addr) == 24);
static_assert(offsetof(net_event, comm) == 40);
static_assert(offsetof(net_event, drops) == 56);
static_assert(offsetof(net_event, gate) == 64);
static_assert(offsetof(net_event, uses_left) == 68);
static_assert(offsetof(net_event, used) == 72);
static_assert(std::is_same_v<decltype(Rule::gate), decltype(gate_key::gate)>);
static_assert(std::string_view(kApprovalSocket) == CORDON_APPROVAL_SOCKET);
static_assert(sizeof(CORDON_APPROVAL_SOCKET) <= sizeof(sockaddr_un::sun_path));
static_assert(CORDON_PROTO_TCP == static_cast<int>(profile::Protocol::tcp));
static_assert(CORDON_PROTO_UDP == static_cast<int>(profile::Protocol::udp));
static_assert(sizeof(profile::Ip6) == sizeof(rule_key::addr));
static_assert(sizeof(profile::Ip6) == sizeof(session_policy::resolver_addr));
static_assert(NetfilterConfig{}.max_sessions == CORDON_MAX_SESSIONS);
static_assert(NetfilterConfig{}.max_rules == CORDON_MAX_RULES);
static_assert(NetfilterConfig{}.max_destinations == CORDON_MAX_DESTINATIONS);
static_assert(NetfilterConfig{}.max_gates == CORDON_MAX_GATES);

namespace {

using detail::FoldedRules;
using detail::format_prefix;
using detail::Prefix;

// The hint for a failure with err (positive errno): privileges, when that is what failed.
std::string privilege_hint(int err) {
    if (err == EPERM || err == EACCES) return "run as root or grant CAP_BPF and CAP_NET_ADMIN";
    return {};
}

// ---------------------------------------------------------------- logging

std::shared_ptr<spdlog::logger> logger() {
    static auto log = layer_logger("netfilter");
    return log;
}

int libbpf_print(enum libbpf_print_level, const char* format, va_list args) {
    if (!logger()->should_log(spdlog::level::debug)) return 0;
    char line[1024];
    int n = std::vsnprintf(line, sizeof(line), format, args);
    if (n <= 0) return n;
    size_t len = std::min(static_cast<size_t>(n), sizeof(line) - 1);
    while (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
    logger()->debug("{}", line);  // libbpf prefixes its own name
    return n;
}

void route_libbpf_logs() {
    static std::once_flag once;
    std::call_once(once, [] { libbpf_set_print(libbpf_print); });
}

// ---------------------------------------------------------------- owners

struct SkeletonDeleter {
    void operator()(netfilter_bpf* s) const { netfilter_bpf__destroy(s); }
};
using Skeleton = std::unique_ptr<netfilter_bpf, SkeletonDeleter>;

struct LinkDeleter {
    void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

struct RingBufferDeleter {
    void operator()(ring_buffer* rb) const { ring_buffer__free(rb); }
};
using RingBuffer = std::unique_ptr<ring_buffer, RingBufferDeleter>;

// ---------------------------------------------------------------- pins

using Progs = decltype(netfilter_bpf::progs);
using Maps = decltype(netfilter_bpf::maps);

// The Unix socket hooks' attach types (linux/bpf.h of 6.7; the build's
// headers may be older). Fixed by the kernel's ABI.
constexpr auto kUnixConnect = static_cast<bpf_attach_type>(49);  // BPF_CGROUP_UNIX_CONNECT
constexpr auto kUnixSendmsg = static_cast<bpf_attach_type>(50);  // BPF_CGROUP_UNIX_SENDMSG

struct ProgramPin {
    const char* name;  // pin file name and the hook's name in messages
    bpf_program* Progs::*program;
    // Set for a program whose section name does not say its attach type;
    // such a program is also optional: off on kernels that lack the hook.
    std::optional<bpf_attach_type> attach_type = std::nullopt;
};

const ProgramPin kPrograms[] = {
    {"connect4", &Progs::cordon_connect4},
    {"connect6", &Progs::cordon_connect6},
    {"sendmsg4", &Progs::cordon_sendmsg4},
    {"sendmsg6", &Progs::cordon_sendmsg6},
    {"sock_create", &Progs::cordon_sock_create},
    {"setsockopt", &Progs::cordon_sockopt},
    {"egress", &Progs::cordon_egress},
    {"connect_unix", &Progs::cordon_unix_conn, kUnixConnect},
    {"sendmsg_unix", &Progs::cordon_unix_send, kUnixSendmsg},
};

// Whether the kernel takes a sock_addr program for attach type: loads the
// smallest one ("return 1"), as systemd and libbpf probe features.
bool sock_addr_hook_supported(bpf_attach_type type) {
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = type);
    int fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "cordon_probe", "GPL", insns, 2, &opts);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

// Sets the attach types the section names cannot carry and switches off
// the programs this kernel cannot run; returns what is off, for the log.
std::vector<std::string> select_programs(netfilter_bpf* skel) {
    std::vector<std::string> off;
    for (const auto& p : kPrograms) {
        if (!p.attach_type) continue;
        bpf_program* prog = skel->progs.*p.program;
        if (sock_addr_hook_supported(*p.attach_type)) {
            bpf_program__set_expected_attach_type(prog, *p.attach_type);
        } else {
            bpf_program__set_autoload(prog, false);
            off.push_back(p.name);
        }
    }
    return off;
}

// Each pinned map, the shape it must have (pins left by an older,
// incompatible build are refused rather than misread), the setting that
// sizes it and the agent-run option that sets that.
struct MapPin {
    const char* name;
    bpf_map_type type;
    uint32_t key_size;
    uint32_t value_size;
    bpf_map* Maps::*map;
    uint32_t NetfilterConfig::*size;
    const char* option;
};

enum MapIndex {
    kSessions,
    kCounters,
    kRules,
    kDestinations,
    kEvents,
    kEventSlots,
    kGates,
    kMapCount
};

constexpr MapPin kMaps[kMapCount] = {
    {"sessions", BPF_MAP_TYPE_HASH, sizeof(uint64_t), sizeof(session_policy), &Maps::sessions,
     &NetfilterConfig::max_sessions, "--max-sessions"},
    {"counters", BPF_MAP_TYPE_HASH, sizeof(uint64_t), sizeof(session_counters), &Maps::counters,
     &NetfilterConfig::max_sessions, "--max-sessions"},
    {"rules", BPF_MAP_TYPE_LPM_TRIE, sizeof(rule_key), sizeof(rule_value), &Maps::rules,
     &NetfilterConfig::max_rules, "--max-rules"},
    {"destinations", BPF_MAP_TYPE_HASH, sizeof(destination_key), sizeof(destination_counters),
     &Maps::destinations, &NetfilterConfig::max_destinations, "--max-destinations"},
    {"events", BPF_MAP_TYPE_ARRAY_OF_MAPS, sizeof(uint32_t), sizeof(uint32_t), &Maps::events,
     &NetfilterConfig::max_sessions, "--max-sessions"},
    {"event_slots", BPF_MAP_TYPE_HASH, sizeof(uint32_t), sizeof(uint64_t), &Maps::event_slots,
     &NetfilterConfig::max_sessions, "--max-sessions"},
    {"gates", BPF_MAP_TYPE_HASH, sizeof(gate_key), sizeof(gate_value), &Maps::gates,
     &NetfilterConfig::max_gates, "--max-gates"},
};

std::string link_pin(const std::string& pin_dir, const char* name) {
    return pin_dir + "/links/" + name;
}
std::string map_pin(const std::string& pin_dir, const char* name) {
    return pin_dir + "/maps/" + name;
}

std::vector<std::string> all_pins(const std::string& pin_dir) {
    std::vector<std::string> pins;
    for (const auto& p : kPrograms) pins.push_back(link_pin(pin_dir, p.name));
    for (const auto& m : kMaps) pins.push_back(map_pin(pin_dir, m.name));
    return pins;
}

bool exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
}

constexpr const char* kDefaultBpffs = "/sys/fs/bpf";

std::string parent_dir(const std::string& path) {
    auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

Status check_fs(const std::string& dir, long magic, const std::string& what,
                const std::string& hint) {
    struct statfs fs;
    if (::statfs(dir.c_str(), &fs) != 0) return errno_error("cannot stat " + dir, hint);
    if (fs.f_type != magic) return plain_error(dir + " is not on " + what, hint);
    return ok_status();
}

// Mounts the BPF filesystem at its usual place when the host has not (as
// systemd does at boot): standalone agent-run must work on a bare host.
void mount_default_bpffs(const std::string& dir) {
    struct statfs fs;
    if (dir != kDefaultBpffs || (::statfs(dir.c_str(), &fs) == 0 && fs.f_type == BPF_FS_MAGIC))
        return;
    if (::mount("bpf", dir.c_str(), "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") == 0)
        logger()->info("mounted the BPF filesystem at {}", dir);
}

Status make_dir(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return errno_error("cannot create " + dir, privilege_hint(errno));
    return ok_status();
}

// Serializes loaders and detach on one pin directory (flock on bpffs).
Result<UniqueFd> lock_dir(const std::string& dir) {
    UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return errno_error("cannot open " + dir);
    if (::flock(fd.get(), LOCK_EX) != 0) return errno_error("cannot lock " + dir);
    return fd;
}

// Pinned links serve only the cgroup they are attached to: pins that a
// loader attached to another root (a standalone agent-run's "cordon" while
// cordond's sessions live elsewhere) would leave this root unfiltered.
Status check_attached_to(const std::string& cgroup_dir, const std::string& pin_dir) {
    auto expected = cgroup::cgroup_id(cgroup_dir);
    if (!expected) return expected.error();
    for (const auto& p : kPrograms) {
        std::string path = link_pin(pin_dir, p.name);
        UniqueFd link(bpf_obj_get(path.c_str()));
        bpf_link_info info{};
        uint32_t len = sizeof info;
        if (!link.valid() || bpf_obj_get_info_by_fd(link.get(), &info, &len) != 0)
            return errno_error("cannot read the BPF link " + path, privilege_hint(errno));
        if (info.cgroup.cgroup_id != *expected)
            return plain_error(
                "the BPF programs pinned in " + pin_dir + " are attached to cgroup id " +
                    std::to_string(info.cgroup.cgroup_id) + ", not to " + cgroup_dir +
                    ": its sessions would not be filtered",
                "give this cgroup root a pin directory of its own (--bpf-pin-dir, bpfPinDir), "
                "or detach the old pins (rm -r " +
                    pin_dir + ") while none of their sessions runs");
    }
    return ok_status();
}

// Maps are pinned before links, so links beside a missing map are no
// loader that died half-way: they are an older build's, whose programs
// still enforce its sessions' policy. Unpinning them would leave those
// sessions unfiltered until the new programs are attached.
Status check_not_older_build(const std::string& pin_dir) {
    bool linked = std::any_of(std::begin(kPrograms), std::end(kPrograms), [&](const ProgramPin& p) {
        return exists(link_pin(pin_dir, p.name));
    });
    for (const auto& m : kMaps) {
        if (linked && !exists(map_pin(pin_dir, m.name)))
            return plain_error(
                "the BPF programs pinned in " + pin_dir +
                    " come from an older build of Cordon (no " + m.name + " map)",
                "end their sessions, then detach them (rm -r " + pin_dir + ") and start again");
    }
    return ok_status();
}

// Forces each pinned link off its cgroup (other holders of the link keep
// a detached link), then removes every pin. Missing pins are not errors.
Status unpin_all(const std::string& pin_dir) {
    for (const auto& p : kPrograms) {
        std::string path = link_pin(pin_dir, p.name);
        UniqueFd link(bpf_obj_get(path.c_str()));
        if (link.valid() && bpf_link_detach(link.get()) != 0 && errno != ENOLINK)
            return errno_error("cannot detach " + path, privilege_hint(errno));
    }
    for (const auto& path : all_pins(pin_dir)) {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            return errno_error("cannot unpin " + path);
    }
    for (const char* sub : {"/links", "/maps"}) {
        std::string dir = pin_dir + sub;
        if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
            return errno_error("cannot remove " + dir);
    }
    return ok_status();
}

// ---------------------------------------------------------------- load

Status check_config(const NetfilterConfig& config) {
    for (const auto& m : kMaps) {
        if (config.*m.size == 0)
            return plain_error(std::string("the ") + m.name + " map cannot have 0 entries",
                               std::string("give ") + m.option + " at least 1");
    }
    return ok_status();
}

// Sizes the maps of an opened, not yet loaded, skeleton.
Status size_maps(netfilter_bpf* skel, const NetfilterConfig& config) {
    for (const auto& m : kMaps) {
        if (int err = bpf_map__set_max_entries(skel->maps.*m.map, config.*m.size); err != 0)
            return neg_errno_error(err, std::string("cannot size the ") + m.name + " map");
    }
    return ok_status();
}

// Opens and loads the embedded object, attaches every program to cgroup_dir
// and pins links and maps. The skeleton's own descriptors close on return;
// the pins keep programs attached and maps alive.
Status load_attach_pin(const std::string& cgroup_dir, const std::string& pin_dir,
                       const NetfilterConfig& config) {
    UniqueFd cgroup(::open(cgroup_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cgroup.valid())
        return errno_error("cannot open cgroup " + cgroup_dir, "create it on the cgroup2 mount");
    if (auto st = check_fs(cgroup_dir, CGROUP2_SUPER_MAGIC, "a cgroup2 filesystem",
                           "use a directory under the cgroup2 mount");
        !st)
        return st;

    Skeleton skel(netfilter_bpf__open());
    if (!skel) return errno_error("cannot open the netfilter BPF object");
    skel->rodata->report_denials = true;
    if (auto st = size_maps(skel.get(), config); !st) return st;
    for (const auto& name : select_programs(skel.get()))
        logger()->warn(
            "this kernel has no {} hook (it needs Linux 6.7): Unix sockets are not "
            "filtered",
            name);

    if (int err = netfilter_bpf__load(skel.get()); err != 0)
        return neg_errno_error(err, "cannot load the netfilter BPF programs", privilege_hint(-err));

    std::vector<Link> links;
    std::vector<const char*> names;
    for (const auto& p : kPrograms) {
        bpf_program* prog = skel->progs.*p.program;
        if (!bpf_program__autoload(prog)) continue;
        Link link(bpf_program__attach_cgroup(prog, cgroup.get()));
        if (!link)
            return errno_error(std::string("cannot attach ") + p.name + " to " + cgroup_dir,
                               privilege_hint(errno));
        links.push_back(std::move(link));
        names.push_back(p.name);
    }

    if (auto st = make_dir(pin_dir + "/maps"); !st) return st;
    if (auto st = make_dir(pin_dir + "/links"); !st) return st;
    for (const auto& m : kMaps) {
        std::string path = map_pin(pin_dir, m.name);
        if (int err = bpf_map__pin(skel->maps.*m.map, path.c_str()); err != 0)
            return neg_errno_error(err, "cannot pin " + path);
    }
    // Links last: once the first is pinned, enforcement outlives us.
    for (size_t i = 0; i < links.size(); i++) {
        std::string path = link_pin(pin_dir, names[i]);
        if (int err = bpf_link__pin(links[i].get(), path.c_str()); err != 0)
            return neg_errno_error(err, "cannot pin " + path);
    }
    logger()->debug("attached {} programs to {}, pinned under {}", links.size(), cgroup_dir,
                    pin_dir);
    return ok_status();
}

struct PinnedMap {
    UniqueFd fd;
    uint32_t max_entries = 0;
};

Result<PinnedMap> open_map_pin(const std::string& pin_dir, const MapPin& want) {
    std::string path = map_pin(pin_dir, want.name);
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid()) return errno_error("cannot open pinned map " + path, privilege_hint(errno));
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
        return errno_error("cannot inspect pinned map " + path);
    if (info.type != want.type || info.key_size != want.key_size ||
        info.value_size != want.value_size)
        return plain_error("pinned map " + path + " does not match this build",
                           "detach the old programs (rm -r " + pin_dir + ") and start again");
    return PinnedMap{std::move(fd), info.max_entries};
}

// ---------------------------------------------------------------- events

const char* hook_name(uint32_t hook) {
    switch (hook) {
        case CORDON_HOOK_CONNECT4:
            return "connect4";
        case CORDON_HOOK_CONNECT6:
            return "connect6";
        case CORDON_HOOK_SENDMSG4:
            return "sendmsg4";
        case CORDON_HOOK_SENDMSG6:
            return "sendmsg6";
        case CORDON_HOOK_SOCK_CREATE:
            return "sock_create";
        case CORDON_HOOK_EGRESS:
            return "egress";
        case CORDON_HOOK_SETSOCKOPT:
            return "setsockopt";
        case CORDON_HOOK_UNIX_CONNECT:
            return "connect_unix";
        case CORDON_HOOK_UNIX_SENDMSG:
            return "sendmsg_unix";
        default:
            return "unknown";
    }
}

const char* reason_name(uint32_t reason) {
    switch (reason) {
        case CORDON_DENY_NO_RULE:
            return "no-rule";
        case CORDON_DENY_NO_SESSION:
            return "no-session";
        case CORDON_DENY_RAW_SOCKET:
            return "raw-socket";
        case CORDON_DENY_SOCKET_TYPE:
            return "socket-type";
        case CORDON_DENY_IP_OPTIONS:
            return "ip-options";
        case CORDON_DENY_PROTOCOL:
            return "protocol";
        case CORDON_DENY_DIRECT_DNS:
            return "direct-dns";
        case CORDON_DENY_BUDGET:
            return "budget";
        case CORDON_DENY_UNIX_SOCKET:
            return "unix-socket";
        case CORDON_DENY_APPROVAL:
            return "approval-required";
        case CORDON_GATE_USE:
            return "gate-use";
        default:
            return "unknown";
    }
}

const char* protocol_name(uint8_t protocol) {
    switch (protocol) {
        case CORDON_PROTO_TCP:
            return "tcp";
        case CORDON_PROTO_UDP:
            return "udp";
        default:
            return "";
    }
}

Denial to_denial(const net_event& e) {
    Denial d;
    d.cgroup_id = e.cgroup_id;
    d.pid = e.pid;
    d.comm.assign(e.comm, strnlen(e.comm, sizeof(e.comm)));
    d.hook = hook_name(e.hook);
    d.reason = reason_name(e.reason);
    d.protocol = protocol_name(e.protocol);
    std::memcpy(d.address.data(), e.addr, d.address.size());
    d.port = e.port;
    d.drops = e.drops;
    d.gate = e.gate;
    if (e.reason == CORDON_GATE_USE && e.uses_left != CORDON_GATE_UNLIMITED)
        d.uses_left = e.uses_left;
    if (e.reason == CORDON_GATE_USE) d.used = e.used;
    return d;
}

class RingBufferStream final : public DenialStream {
  public:
    static Result<std::unique_ptr<DenialStream>> open(UniqueFd ringbuf, UniqueFd counters,
                                                      uint64_t cgroup_id) {
        auto stream = std::unique_ptr<RingBufferStream>(new RingBufferStream);
        stream->ringbuf_ = std::move(ringbuf);
        stream->counters_ = std::move(counters);
        stream->cgroup_id_ = cgroup_id;
        stream->rb_.reset(
            ring_buffer__new(stream->ringbuf_.get(), on_sample, stream.get(), nullptr));
        if (!stream->rb_) return errno_error("cannot map the session's ring buffer");
        return std::unique_ptr<DenialStream>(std::move(stream));
    }

    int fd() const override { return ring_buffer__epoll_fd(rb_.get()); }

    Result<int> drain(const std::function<void(const Denial&)>& on_denial) override {
        on_denial_ = &on_denial;
        taken_ = 0;
        int n = ring_buffer__consume(rb_.get());
        on_denial_ = nullptr;
        if (n == kEnough) return taken_;
        if (n < 0) return neg_errno_error(n, "cannot read the session's ring buffer");
        return n;
    }

    uint64_t lost() const override {
        session_counters count{};
        if (bpf_map_lookup_elem(counters_.get(), &cgroup_id_, &count) != 0) return 0;
        return count.events_lost;
    }

  private:
    RingBufferStream() = default;

    static int on_sample(void* ctx, void* data, size_t size) {
        auto* self = static_cast<RingBufferStream*>(ctx);
        if (size < sizeof(net_event) || !self->on_denial_) return 0;
        net_event e;
        std::memcpy(&e, data, sizeof(e));
        // Left by an earlier holder of the slot (see the events map).
        if (e.cgroup_id != self->cgroup_id_) return 0;
        (*self->on_denial_)(to_denial(e));
        // A negative return stops libbpf after this sample, which it has
        // already consumed (ringbuf_process_ring advances first).
        return ++self->taken_ == kMaxDenialsPerDrain ? kEnough : 0;
    }

    static constexpr int kEnough = -EAGAIN;  // on_sample's "stop here"

    UniqueFd counters_;
    uint64_t cgroup_id_ = 0;
    UniqueFd ringbuf_;  // declared before rb_: closed after rb_, which uses it
    RingBuffer rb_;
    const std::function<void(const Denial&)>* on_denial_ = nullptr;
    int taken_ = 0;  // samples handed to on_denial_ in this drain
};

// ---------------------------------------------------------------- maps

// What this process installed for one session, so that a change or a
// removal touches only its entries instead of walking the whole trie.
struct Installed {
    session_policy policy{};
    FoldedRules rules;
};

using MapFds = std::array<UniqueFd, kMapCount>;

std::string session_name(uint64_t cgroup_id) {
    return "session " + std::to_string(cgroup_id);
}

std::string prefix_text(const Prefix& prefix) {
    return format_prefix(prefix.first, prefix.second);
}

Result<session_policy> make_policy(const std::optional<Resolver>& resolver, uint64_t egress_budget,
                                   bool approval_socket) {
    session_policy policy{};
    policy.egress_budget = egress_budget;
    if (approval_socket) policy.flags |= CORDON_SESSION_APPROVAL_SOCKET;
    if (resolver) {
        if (resolver->port == 0)
            return plain_error("invalid resolver " + profile::format_ip(resolver->address) + ":0",
                               "give the port the session's resolver listens on, 53");
        policy.flags |= CORDON_SESSION_RESOLVER;
        std::memcpy(policy.resolver_addr, resolver->address.data(), sizeof(policy.resolver_addr));
        policy.resolver_port = resolver->port;
    }
    return policy;
}

class PinnedNetfilter final : public Netfilter {
  public:
    PinnedNetfilter(std::string pin_dir, MapFds maps, NetfilterConfig sizes)
        : pin_dir_(std::move(pin_dir)), maps_(std::move(maps)), sizes_(sizes) {}

    Status add_session(uint64_t cgroup_id, const std::vector<Rule>& rules,
                       const std::optional<Resolver>& resolver, uint64_t egress_budget,
                       bool approval_socket) override {
        auto policy = make_policy(resolver, egress_budget, approval_socket);
        if (!policy) return policy.error();
        auto folded = detail::fold_rules(rules);
        if (!folded) return folded.error();
        Installed session{policy.value(), std::move(folded.value())};
        session.policy.rule_count = session.rules.size();

        // Outside the lock: a slot's first ring buffer waits for an RCU
        // grace period (the kernel's rule for maps of maps), and changes to
        // other sessions need not wait for it.
        if (auto st = insert_session(cgroup_id, session); !st) return st;
        logger()->debug("session {}: {} rules, {} trie entries, budget {}", cgroup_id, rules.size(),
                        session.rules.size(), egress_budget);
        std::lock_guard lock(mu_);
        installed_[cgroup_id] = std::move(session);
        return ok_status();
    }

    Status replace_rules(uint64_t cgroup_id, const std::vector<Rule>& rules) override {
        auto folded = detail::fold_rules(rules);
        if (!folded) return folded.error();

        std::lock_guard lock(mu_);
        auto it = installed_.find(cgroup_id);
        if (it == installed_.end())
            return plain_error("cannot replace the rules of " + session_name(cgroup_id) +
                                   ": this supervisor did not add it",
                               "only the supervisor that added a session changes its rules");
        Installed& session = it->second;
        if (auto st = upsert_rules(cgroup_id, session.rules, folded.value()); !st) return st;
        // Old and new entries both hold now; the stale ones can go.
        Status st = delete_stale(cgroup_id, session.rules, folded.value());
        session.rules = std::move(folded.value());
        session.policy.rule_count = session.rules.size();
        if (bpf_map_update_elem(fd(kSessions), &cgroup_id, &session.policy, BPF_EXIST) != 0 && st)
            st = map_error(kSessions, "cannot update the rule count of " + session_name(cgroup_id));
        logger()->debug("session {}: {} rules, {} trie entries after a change", cgroup_id,
                        rules.size(), session.rules.size());
        return st;
    }

    // The entries are deleted outside the lock, as add_session adds them.
    Status remove_session(uint64_t cgroup_id) override {
        std::optional<Installed> mine;
        {
            std::lock_guard lock(mu_);
            if (auto it = installed_.find(cgroup_id); it != installed_.end()) {
                mine = std::move(it->second);
                installed_.erase(it);
            }
        }
        if (!mine) return delete_entries(cgroup_id, walk_rule_keys(cgroup_id));
        return delete_entries(cgroup_id, keys_of(cgroup_id, mine->rules));
    }

    Status open_gate(uint64_t cgroup_id, uint16_t gate, std::optional<uint32_t> uses,
                     std::optional<std::chrono::steady_clock::time_point> closes_at) override {
        std::string what = gate_name(cgroup_id, gate);
        if (auto st = check_gate(cgroup_id, gate, "cannot open " + what); !st) return st;
        if (uses && *uses == CORDON_GATE_UNLIMITED)
            return plain_error("cannot open " + what + " for " + std::to_string(*uses) + " uses",
                               "give fewer, or no count for unlimited uses");
        gate_key key = make_gate_key(cgroup_id, gate);
        gate_value value{};
        value.uses = uses.value_or(CORDON_GATE_UNLIMITED);
        // steady_clock is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
        if (closes_at)
            value.closes_at = static_cast<uint64_t>(std::max<int64_t>(
                1,
                std::chrono::duration_cast<std::chrono::nanoseconds>(closes_at->time_since_epoch())
                    .count()));
        value.generation = generation_for(key);
        // BPF_F_LOCK: the uses are replaced under the lock the programs take them with.
        if (bpf_map_update_elem(fd(kGates), &key, &value, BPF_F_LOCK) != 0)
            return map_error(kGates, "cannot open " + what + " in the gates map");
        // remove_session may have run since the check: a gate it did not see
        // would outlive the session, so look again and take it back.
        if (auto st = check_gate(cgroup_id, gate, "cannot open " + what); !st) {
            (void)bpf_map_delete_elem(fd(kGates), &key);
            return st;
        }
        logger()->debug("{} open, {} uses", what, uses ? std::to_string(*uses) : "unlimited");
        return ok_status();
    }

    Status close_gate(uint64_t cgroup_id, uint16_t gate) override {
        std::string what = gate_name(cgroup_id, gate);
        if (gate == 0) return plain_error("cannot close " + what, "gates are numbered from 1");
        gate_key key = make_gate_key(cgroup_id, gate);
        if (auto st = delete_key(kGates, &key, "cannot close " + what); !st) return st;
        logger()->debug("{} closed", what);
        return ok_status();
    }

    Result<GateState> gate_state(uint64_t cgroup_id, uint16_t gate) const override {
        std::string what = gate_name(cgroup_id, gate);
        if (auto st = check_gate(cgroup_id, gate, "cannot read " + what); !st) return st.error();
        gate_key key = make_gate_key(cgroup_id, gate);
        gate_value value{};
        if (bpf_map_lookup_elem_flags(fd(kGates), &key, &value, BPF_F_LOCK) != 0) {
            if (errno == ENOENT) return GateState{};
            return errno_error("cannot read " + what, privilege_hint(errno));
        }
        auto now = std::chrono::steady_clock::now().time_since_epoch();
        GateState state;
        state.used = value.used;
        // A window that ended leaves the entry, and its count, for close_gate.
        if (value.closes_at &&
            static_cast<uint64_t>(std::chrono::nanoseconds(now).count()) >= value.closes_at)
            return state;
        state.open = true;
        if (value.uses != CORDON_GATE_UNLIMITED) state.uses_left = value.uses;
        return state;
    }

    std::vector<uint64_t> session_ids() const override {
        std::vector<uint64_t> ids;
        uint64_t key = 0;
        const void* prev = nullptr;
        while (bpf_map_get_next_key(fd(kSessions), prev, &key) == 0) {
            ids.push_back(key);
            prev = &key;
        }
        return ids;
    }

    size_t rule_count(uint64_t cgroup_id) const override {
        return walk_rule_keys(cgroup_id).size();
    }

    Result<SessionCounters> counters(uint64_t cgroup_id) const override {
        session_counters c{};
        if (bpf_map_lookup_elem(fd(kCounters), &cgroup_id, &c) != 0) {
            int err = errno;
            return errno_error("cannot read the counters of " + session_name(cgroup_id),
                               err == ENOENT ? "add the session first" : privilege_hint(err));
        }
        return SessionCounters{.egress_dropped = c.egress_dropped,
                               .events_lost = c.events_lost,
                               .budget_dropped = c.budget_dropped,
                               .bytes_sent = c.bytes_sent,
                               .packets_sent = c.packets_sent,
                               .unattributed_bytes = c.unattributed_bytes,
                               .unattributed_packets = c.unattributed_packets,
                               .unix_denied = c.unix_denied};
    }

    Result<std::vector<DestinationCounters>> destinations(uint64_t cgroup_id) const override {
        if (auto c = counters(cgroup_id); !c) return c.error();
        std::vector<DestinationCounters> out;
        for (const auto& key : destination_keys(cgroup_id)) {
            destination_counters value{};
            if (bpf_map_lookup_elem(fd(kDestinations), &key, &value) != 0) continue;
            DestinationCounters d;
            std::memcpy(d.address.data(), key.addr, d.address.size());
            d.port = key.port;
            d.protocol = protocol_name(key.protocol);
            d.bytes = value.bytes;
            d.packets = value.packets;
            out.push_back(std::move(d));
        }
        std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
            return a.bytes != b.bytes ? a.bytes > b.bytes : a.packets > b.packets;
        });
        return out;
    }

    NetfilterConfig sizes() const override { return sizes_; }

    Result<std::unique_ptr<DenialStream>> watch(uint64_t cgroup_id) override {
        session_policy policy{};
        if (bpf_map_lookup_elem(fd(kSessions), &cgroup_id, &policy) != 0)
            return errno_error("no policy for " + session_name(cgroup_id), "add the session first");
        uint32_t map_id = 0;
        if (bpf_map_lookup_elem(fd(kEvents), &policy.events_slot, &map_id) != 0)
            return errno_error("no ring buffer for " + session_name(cgroup_id),
                               "add the session first");
        UniqueFd ringbuf(bpf_map_get_fd_by_id(map_id));
        if (!ringbuf.valid())
            return errno_error("cannot open the ring buffer of " + session_name(cgroup_id),
                               privilege_hint(errno));
        UniqueFd counters(::fcntl(fd(kCounters), F_DUPFD_CLOEXEC, 0));
        if (!counters.valid()) return errno_error("cannot duplicate the counters map descriptor");
        return RingBufferStream::open(std::move(ringbuf), std::move(counters), cgroup_id);
    }

  private:
    int fd(MapIndex map) const { return maps_[map].get(); }

    static std::string gate_name(uint64_t cgroup_id, uint16_t gate) {
        return "gate " + std::to_string(gate) + " of " + session_name(cgroup_id);
    }

    static gate_key make_gate_key(uint64_t cgroup_id, uint16_t gate) {
        gate_key key{};
        key.cgroup_id = cgroup_id;
        key.gate = gate;
        return key;
    }

    // The generation of an opening: an open gate keeps its own, so that its
    // connections go on; a closed or timed-out one gets a new one, which cuts
    // the sockets of its earlier windows at egress.
    uint32_t generation_for(const gate_key& key) const {
        gate_value open{};
        uint64_t now =
            static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::steady_clock::now().time_since_epoch())
                                      .count());
        if (bpf_map_lookup_elem_flags(fd(kGates), &key, &open, BPF_F_LOCK) == 0 &&
            (!open.closes_at || now < open.closes_at))
            return open.generation;
        // Microseconds of the monotonic clock: never the same twice for one gate.
        return static_cast<uint32_t>(now / 1000) | 1;
    }

    // A gate is a number from 1 of a session that has its policy entry.
    Status check_gate(uint64_t cgroup_id, uint16_t gate, const std::string& what) const {
        if (gate == 0) return plain_error(what, "gates are numbered from 1; 0 is no gate");
        session_policy policy{};
        if (bpf_map_lookup_elem(fd(kSessions), &cgroup_id, &policy) == 0) return ok_status();
        if (errno == ENOENT)
            return plain_error(what + ": no such session", "add the session first");
        return errno_error(what, privilege_hint(errno));
    }

    // An error of an update of map, from errno: a full map is named, with
    // the option that sizes it.
    Error map_error(MapIndex map, const std::string& what) const {
        int err = errno;
        const MapPin& m = kMaps[map];
        std::string hint;
        if (err == EEXIST)
            hint = "the session is already installed";
        else if (err == E2BIG || err == ENOSPC)
            hint = std::string("the ") + m.name + " map is full (size " +
                   std::to_string(sizes_.*m.size) + "); end sessions or raise " + m.option +
                   " (pinned maps keep their size: remove " + pin_dir_ +
                   " while no session runs, to load them anew)";
        else
            hint = privilege_hint(err);
        return Error{err, what, hint};
    }

    Status delete_key(MapIndex map, const void* key, const std::string& what) const {
        if (bpf_map_delete_elem(fd(map), key) != 0 && errno != ENOENT)
            return errno_error(what, privilege_hint(errno));
        return ok_status();
    }

    // The events slot first: when none is free, nothing was written. Then
    // counters, rules and, last, the policy entry that makes the session
    // visible to the programs.
    Status insert_session(uint64_t cgroup_id, Installed& session) {
        auto slot = claim_events_slot(cgroup_id);
        if (!slot) return slot.error();
        session.policy.events_slot = *slot;
        Status st = ensure_ringbuf(*slot, cgroup_id);
        if (st) st = insert_entries(cgroup_id, session);
        if (!st) (void)delete_entries(cgroup_id, keys_of(cgroup_id, session.rules));
        return st;
    }

    // The lowest free slot, so that ring buffers are reused rather than
    // added. BPF_NOEXIST makes the claim atomic between supervisors.
    Result<uint32_t> claim_events_slot(uint64_t cgroup_id) {
        for (uint32_t slot = 0; slot < sizes_.max_sessions; slot++) {
            if (bpf_map_update_elem(fd(kEventSlots), &slot, &cgroup_id, BPF_NOEXIST) == 0)
                return slot;
            if (errno != EEXIST) break;
        }
        if (errno == EEXIST) errno = ENOSPC;
        return map_error(kEventSlots, "cannot claim an events slot for " + session_name(cgroup_id));
    }

    // The slot keeps the ring buffer an earlier session left there.
    Status ensure_ringbuf(uint32_t slot, uint64_t cgroup_id) {
        uint32_t map_id = 0;
        if (bpf_map_lookup_elem(fd(kEvents), &slot, &map_id) == 0) return ok_status();
        UniqueFd ringbuf(bpf_map_create(BPF_MAP_TYPE_RINGBUF, "cordon_events", 0, 0,
                                        CORDON_EVENTS_RINGBUF_SIZE, nullptr));
        if (!ringbuf.valid())
            return errno_error("cannot create the ring buffer of " + session_name(cgroup_id),
                               privilege_hint(errno));
        uint32_t inner = ringbuf.get();
        if (bpf_map_update_elem(fd(kEvents), &slot, &inner, BPF_ANY) != 0)
            return map_error(kEvents, "cannot add the ring buffer of " + session_name(cgroup_id) +
                                          " to the events map");
        return ok_status();
    }

    // The slots cgroup_id holds: found by a walk, since a supervisor that
    // died between its claim and its policy entry left no other trace.
    std::vector<uint32_t> events_slots_of(uint64_t cgroup_id) const {
        std::vector<uint32_t> slots;
        uint32_t slot = 0;
        const void* prev = nullptr;
        while (bpf_map_get_next_key(fd(kEventSlots), prev, &slot) == 0) {
            uint64_t owner = 0;
            if (bpf_map_lookup_elem(fd(kEventSlots), &slot, &owner) == 0 && owner == cgroup_id)
                slots.push_back(slot);
            prev = &slot;
        }
        return slots;
    }

    Status insert_entries(uint64_t cgroup_id, const Installed& session) {
        std::string name = session_name(cgroup_id);
        session_counters zero{};
        if (bpf_map_update_elem(fd(kCounters), &cgroup_id, &zero, BPF_NOEXIST) != 0)
            return map_error(kCounters, "cannot add the counters of " + name);
        for (const auto& [prefix, value] : session.rules) {
            rule_key key = detail::trie_key(cgroup_id, prefix);
            if (bpf_map_update_elem(fd(kRules), &key, &value, BPF_NOEXIST) != 0)
                return map_error(kRules, "cannot add rule " + prefix_text(prefix) + " of " + name +
                                             " to the rules map");
        }
        if (bpf_map_update_elem(fd(kSessions), &cgroup_id, &session.policy, BPF_NOEXIST) != 0)
            return map_error(kSessions, "cannot add " + name + " to the sessions map");
        return ok_status();
    }

    // Writes the entries of fresh that old lacks or holds with other ports.
    // On failure, puts back what it changed: the session keeps its old rules.
    Status upsert_rules(uint64_t cgroup_id, const FoldedRules& old, const FoldedRules& fresh) {
        std::vector<Prefix> written;
        for (const auto& [prefix, value] : fresh) {
            auto was = old.find(prefix);
            if (was != old.end() && detail::same_value(was->second, value)) continue;
            rule_key key = detail::trie_key(cgroup_id, prefix);
            if (bpf_map_update_elem(fd(kRules), &key, &value, BPF_ANY) != 0) {
                Error e = map_error(kRules, "cannot add rule " + prefix_text(prefix) + " of " +
                                                session_name(cgroup_id) + " to the rules map");
                restore_rules(cgroup_id, old, written);
                return e;
            }
            written.push_back(prefix);
        }
        return ok_status();
    }

    void restore_rules(uint64_t cgroup_id, const FoldedRules& old,
                       const std::vector<Prefix>& written) {
        for (const auto& prefix : written) {
            rule_key key = detail::trie_key(cgroup_id, prefix);
            auto was = old.find(prefix);
            if (was != old.end())
                (void)bpf_map_update_elem(fd(kRules), &key, &was->second, BPF_ANY);
            else
                (void)bpf_map_delete_elem(fd(kRules), &key);
        }
    }

    // Deletes the entries of old that fresh has not. One that cannot be
    // deleted stays in fresh, so that it is still known and removed later.
    Status delete_stale(uint64_t cgroup_id, const FoldedRules& old, FoldedRules& fresh) {
        Status first = ok_status();
        for (const auto& [prefix, value] : old) {
            if (fresh.count(prefix)) continue;
            rule_key key = detail::trie_key(cgroup_id, prefix);
            Status st = delete_key(
                kRules, &key,
                "cannot remove rule " + prefix_text(prefix) + " of " + session_name(cgroup_id));
            if (st) continue;
            fresh.emplace(prefix, value);
            if (first) first = st;
        }
        return first;
    }

    // The policy entry first: from then on the cgroup is denied everything.
    // Every other entry is tried even when one fails; the first error is returned.
    Status delete_entries(uint64_t cgroup_id, const std::vector<rule_key>& rules) {
        std::string name = session_name(cgroup_id);
        Status first = ok_status();
        auto keep = [&first](Status st) {
            if (!st && first) first = std::move(st);
        };
        keep(delete_key(kSessions, &cgroup_id, "cannot remove " + name));
        for (const auto& key : rules)
            keep(delete_key(kRules, &key, "cannot remove a rule of " + name));
        keep(delete_key(kCounters, &cgroup_id, "cannot remove the counters of " + name));
        for (const auto& key : destination_keys(cgroup_id))
            keep(delete_key(kDestinations, &key, "cannot remove a destination of " + name));
        for (const auto& key : gate_keys(cgroup_id))
            keep(delete_key(kGates, &key, "cannot remove a gate of " + name));
        for (uint32_t slot : events_slots_of(cgroup_id))
            keep(delete_key(kEventSlots, &slot, "cannot free the events slot of " + name));
        return first;
    }

    static std::vector<rule_key> keys_of(uint64_t cgroup_id, const FoldedRules& rules) {
        std::vector<rule_key> keys;
        keys.reserve(rules.size());
        for (const auto& entry : rules) keys.push_back(detail::trie_key(cgroup_id, entry.first));
        return keys;
    }

    // The session's trie entries as the kernel has them: a walk of the whole
    // trie, for sessions another process added (and for tests).
    std::vector<rule_key> walk_rule_keys(uint64_t cgroup_id) const {
        std::vector<rule_key> keys;
        rule_key key{};
        const void* prev = nullptr;
        while (bpf_map_get_next_key(fd(kRules), prev, &key) == 0) {
            if (key.cgroup_id == cgroup_id) keys.push_back(key);
            prev = &key;
        }
        return keys;
    }

    // The session's open gates: a walk, since the broker may open them from
    // another process than the one that added the session.
    std::vector<gate_key> gate_keys(uint64_t cgroup_id) const {
        std::vector<gate_key> keys;
        gate_key key{};
        const void* prev = nullptr;
        while (bpf_map_get_next_key(fd(kGates), prev, &key) == 0) {
            if (key.cgroup_id == cgroup_id) keys.push_back(key);
            prev = &key;
        }
        return keys;
    }

    // Egress creates these entries, so only a walk finds them.
    std::vector<destination_key> destination_keys(uint64_t cgroup_id) const {
        std::vector<destination_key> keys;
        destination_key key{};
        const void* prev = nullptr;
        while (bpf_map_get_next_key(fd(kDestinations), prev, &key) == 0) {
            if (key.cgroup_id == cgroup_id) keys.push_back(key);
            prev = &key;
        }
        return keys;
    }

    std::string pin_dir_;
    MapFds maps_;
    NetfilterConfig sizes_;
    std::mutex mu_;  // guards installed_; held through replace_rules
    std::map<uint64_t, Installed> installed_;
};

Result<std::unique_ptr<Netfilter>> open_pinned(const std::string& pin_dir,
                                               const NetfilterConfig& wanted) {
    MapFds fds;
    NetfilterConfig sizes{0, 0, 0, 0};
    for (size_t i = 0; i < kMapCount; i++) {
        const MapPin& m = kMaps[i];
        auto map = open_map_pin(pin_dir, m);
        if (!map) return map.error();
        if (map->max_entries != wanted.*m.size)
            logger()->debug(
                "{}: the pinned {} map has room for {}, not {}; using the pinned "
                "size (remove the pins while no session runs to resize)",
                pin_dir, m.name, map->max_entries, wanted.*m.size);
        uint32_t& size = sizes.*m.size;
        size = size == 0 ? map->max_entries : std::min(size, map->max_entries);
        fds[i] = std::move(map->fd);
    }
    return std::unique_ptr<Netfilter>(new PinnedNetfilter(pin_dir, std::move(fds), sizes));
}

}  // namespace

Result<std::unique_ptr<Netfilter>> Netfilter::open_or_attach(const std::string& cgroup_dir,
                                                             const std::string& pin_dir,
                                                             const NetfilterConfig& config) {
    route_libbpf_logs();
    if (auto st = check_config(config); !st) return st.error();

    mount_default_bpffs(parent_dir(pin_dir));
    if (auto st = check_fs(parent_dir(pin_dir), BPF_FS_MAGIC, "a BPF filesystem",
                           "mount one: mount -t bpf bpf /sys/fs/bpf");
        !st)
        return st.error();
    if (auto st = make_dir(pin_dir); !st) return st.error();
    auto lock = lock_dir(pin_dir);
    if (!lock) return lock.error();

    auto pins = all_pins(pin_dir);
    size_t present = std::count_if(pins.begin(), pins.end(), exists);
    if (present != pins.size()) {
        if (auto st = check_not_older_build(pin_dir); !st) return st.error();
        // A loader died half-way: its pins are not a program set to trust.
        if (present != 0) logger()->debug("{}: incomplete pins, attaching again", pin_dir);
        if (auto st = unpin_all(pin_dir); !st) return st.error();
        if (auto st = load_attach_pin(cgroup_dir, pin_dir, config); !st) {
            (void)unpin_all(pin_dir);
            (void)::rmdir(pin_dir.c_str());
            return st.error();
        }
    }
    if (auto st = check_attached_to(cgroup_dir, pin_dir); !st) return st.error();
    return open_pinned(pin_dir, config);
}

Status Netfilter::detach(const std::string& pin_dir) {
    if (!exists(pin_dir)) return ok_status();
    {
        auto lock = lock_dir(pin_dir);
        if (!lock) return lock.error();
        if (auto st = unpin_all(pin_dir); !st) return st;
    }
    if (::rmdir(pin_dir.c_str()) != 0 && errno != ENOENT)
        return errno_error("cannot remove " + pin_dir);
    return ok_status();
}

}  // namespace cordon::netfilter