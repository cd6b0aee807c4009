// SPDX-License-Identifier: Apache-2.0
// Loader and map owner of bpf/netfilter. The pin directory holds
//   links/<hook>   one BPF link per program, attached to Cordon's root cgroup
//   maps/<map>     sessions, rules and events
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
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "bpf/netfilter/netfilter.h"
#include "cordon/fd.h"
#include "netfilter.skel.h"

namespace cordon::netfilter {

// The structs shared with the BPF programs, as the C++ compiler sees them.
static_assert(sizeof(session_policy) == 24);
static_assert(offsetof(session_policy, rule_count) == 4);
static_assert(offsetof(session_policy, events_lost) == 8);
static_assert(offsetof(session_policy, egress_dropped) == 16);
static_assert(sizeof(rule_key) == 28);
static_assert(offsetof(rule_key, cgroup_id) == 4);
static_assert(offsetof(rule_key, addr) == 12);
static_assert(sizeof(rule_value) == 44);
static_assert(offsetof(rule_value, port_last) == 2 * CORDON_MAX_PORT_RANGES);
static_assert(offsetof(rule_value, protocols) == 4 * CORDON_MAX_PORT_RANGES);
static_assert(offsetof(rule_value, count) == 40);
static_assert(sizeof(net_event) == 64);
static_assert(offsetof(net_event, pid) == 8);
static_assert(offsetof(net_event, hook) == 12);
static_assert(offsetof(net_event, reason) == 16);
static_assert(offsetof(net_event, port) == 20);
static_assert(offsetof(net_event, protocol) == 22);
static_assert(offsetof(net_event, family) == 23);
static_assert(offsetof(net_event, addr) == 24);
static_assert(offsetof(net_event, comm) == 40);
static_assert(offsetof(net_event, drops) == 56);
static_assert(CORDON_PROTO_TCP == static_cast<int>(profile::Protocol::tcp));
static_assert(CORDON_PROTO_UDP == static_cast<int>(profile::Protocol::udp));
static_assert(sizeof(profile::Ip6) == sizeof(rule_key::addr));

namespace {

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

struct ProgramPin {
    const char* name;  // pin file name and the hook's name in messages
    bpf_program* Progs::*program;
};

constexpr ProgramPin kPrograms[] = {
    {"connect4", &Progs::cordon_connect4},       {"connect6", &Progs::cordon_connect6},
    {"sendmsg4", &Progs::cordon_sendmsg4},       {"sendmsg6", &Progs::cordon_sendmsg6},
    {"sock_create", &Progs::cordon_sock_create}, {"setsockopt", &Progs::cordon_sockopt},
    {"egress", &Progs::cordon_egress},
};

// Each pinned map and the shape it must have: pins left by an older,
// incompatible build are refused rather than misread.
struct MapPin {
    const char* name;
    bpf_map_type type;
    uint32_t key_size;
    uint32_t value_size;
};

constexpr MapPin kSessionsPin{"sessions", BPF_MAP_TYPE_HASH, sizeof(uint64_t),
                              sizeof(session_policy)};
constexpr MapPin kRulesPin{"rules", BPF_MAP_TYPE_LPM_TRIE, sizeof(rule_key), sizeof(rule_value)};
constexpr MapPin kEventsPin{"events", BPF_MAP_TYPE_HASH_OF_MAPS, sizeof(uint64_t),
                            sizeof(uint32_t)};
constexpr const MapPin* kMaps[] = {&kSessionsPin, &kRulesPin, &kEventsPin};

std::string link_pin(const std::string& pin_dir, const char* name) {
    return pin_dir + "/links/" + name;
}
std::string map_pin(const std::string& pin_dir, const char* name) {
    return pin_dir + "/maps/" + name;
}

std::vector<std::string> all_pins(const std::string& pin_dir) {
    std::vector<std::string> pins;
    for (const auto& p : kPrograms) pins.push_back(link_pin(pin_dir, p.name));
    for (const auto* m : kMaps) pins.push_back(map_pin(pin_dir, m->name));
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

// Opens and loads the embedded object, attaches every program to cgroup_dir
// and pins links and maps. The skeleton's own descriptors close on return;
// the pins keep programs attached and maps alive.
Status load_attach_pin(const std::string& cgroup_dir, const std::string& pin_dir) {
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

    if (int err = netfilter_bpf__load(skel.get()); err != 0)
        return neg_errno_error(err, "cannot load the netfilter BPF programs", privilege_hint(-err));

    std::vector<Link> links;
    for (const auto& p : kPrograms) {
        bpf_program* prog = skel->progs.*p.program;
        Link link(bpf_program__attach_cgroup(prog, cgroup.get()));
        if (!link)
            return errno_error(std::string("cannot attach ") + p.name + " to " + cgroup_dir,
                               privilege_hint(errno));
        links.push_back(std::move(link));
    }

    if (auto st = make_dir(pin_dir + "/maps"); !st) return st;
    if (auto st = make_dir(pin_dir + "/links"); !st) return st;
    bpf_map* maps[] = {skel->maps.sessions, skel->maps.rules, skel->maps.events};
    for (size_t i = 0; i < std::size(kMaps); i++) {
        std::string path = map_pin(pin_dir, kMaps[i]->name);
        if (int err = bpf_map__pin(maps[i], path.c_str()); err != 0)
            return neg_errno_error(err, "cannot pin " + path);
    }
    // Links last: once the first is pinned, enforcement outlives us.
    for (size_t i = 0; i < links.size(); i++) {
        std::string path = link_pin(pin_dir, kPrograms[i].name);
        if (int err = bpf_link__pin(links[i].get(), path.c_str()); err != 0)
            return neg_errno_error(err, "cannot pin " + path);
    }
    logger()->debug("attached {} programs to {}, pinned under {}", links.size(), cgroup_dir,
                    pin_dir);
    return ok_status();
}

Result<UniqueFd> open_map_pin(const std::string& pin_dir, const MapPin& want) {
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
    return fd;
}

// ---------------------------------------------------------------- rules

struct PortSpan {
    uint16_t first;
    uint16_t last;
    uint8_t protocols;
};

profile::Ip6 masked(const profile::Ip6& addr, unsigned prefix_len) {
    profile::Ip6 out{};
    for (unsigned i = 0; i < out.size(); i++) {
        unsigned bits = prefix_len > i * 8 ? std::min(8u, prefix_len - i * 8) : 0;
        out[i] = addr[i] & static_cast<uint8_t>(0xff00 >> bits);
    }
    return out;
}

std::string format_prefix(const profile::Ip6& addr, unsigned prefix_len) {
    static constexpr uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char text[INET6_ADDRSTRLEN] = "?";
    if (prefix_len >= 96 && std::memcmp(addr.data(), kV4Mapped, 12) == 0) {
        ::inet_ntop(AF_INET, addr.data() + 12, text, sizeof(text));
        return std::string(text) + "/" + std::to_string(prefix_len - 96);
    }
    ::inet_ntop(AF_INET6, addr.data(), text, sizeof(text));
    return std::string(text) + "/" + std::to_string(prefix_len);
}

// Merges overlapping and adjacent ranges per protocol, then joins the
// protocols of identical ranges, so that entries use as few slots as they can.
std::vector<PortSpan> merge_spans(const std::vector<PortSpan>& spans) {
    std::map<std::pair<uint16_t, uint16_t>, uint8_t> joined;
    for (uint8_t proto : {uint8_t{CORDON_PROTO_TCP}, uint8_t{CORDON_PROTO_UDP}}) {
        std::vector<std::pair<uint16_t, uint16_t>> ranges;
        for (const auto& s : spans)
            if (s.protocols & proto) ranges.emplace_back(s.first, s.last);
        std::sort(ranges.begin(), ranges.end());
        std::vector<std::pair<uint16_t, uint16_t>> merged;
        for (const auto& r : ranges) {
            if (!merged.empty() && r.first <= merged.back().second + 1)
                merged.back().second = std::max(merged.back().second, r.second);
            else
                merged.push_back(r);
        }
        for (const auto& r : merged) joined[r] |= proto;
    }
    std::vector<PortSpan> out;
    for (const auto& [range, protocols] : joined)
        out.push_back({range.first, range.second, protocols});
    return out;
}

struct TrieEntry {
    rule_key key;
    rule_value value;
};

// One trie entry per distinct prefix, holding its own ports and those of
// every shorter prefix that covers it: an LPM lookup returns only the
// longest match, so without folding a /32 would hide the ports of its /8.
Result<std::vector<TrieEntry>> fold_rules(uint64_t cgroup_id, const std::vector<Rule>& rules) {
    std::map<std::pair<profile::Ip6, unsigned>, std::vector<PortSpan>> prefixes;
    for (const auto& r : rules) {
        if (r.prefix_len > 128 || r.ports.first > r.ports.last ||
            (r.protocols & ~(CORDON_PROTO_TCP | CORDON_PROTO_UDP)) || r.protocols == 0)
            return plain_error("invalid rule for " + format_prefix(r.address, r.prefix_len),
                               "prefix length at most 128, first port <= last, tcp or udp");
        prefixes[{masked(r.address, r.prefix_len), r.prefix_len}].push_back(
            {r.ports.first, r.ports.last, r.protocols});
    }

    std::vector<TrieEntry> entries;
    for (const auto& [prefix, own] : prefixes) {
        std::vector<PortSpan> spans = own;
        for (const auto& [shorter, theirs] : prefixes) {
            if (shorter.second < prefix.second &&
                masked(prefix.first, shorter.second) == shorter.first)
                spans.insert(spans.end(), theirs.begin(), theirs.end());
        }
        spans = merge_spans(spans);
        if (spans.size() > CORDON_MAX_PORT_RANGES)
            return plain_error(
                "too many port ranges for " + format_prefix(prefix.first, prefix.second) + ": " +
                    std::to_string(spans.size()) + " with those of the prefixes covering it",
                "at most " + std::to_string(CORDON_MAX_PORT_RANGES) +
                    " per address; merge ranges or split the endpoints");
        TrieEntry e{};
        e.key.prefixlen = 64 + prefix.second;
        e.key.cgroup_id = cgroup_id;
        std::memcpy(e.key.addr, prefix.first.data(), sizeof(e.key.addr));
        e.value.count = spans.size();
        for (size_t i = 0; i < spans.size(); i++) {
            e.value.port_first[i] = spans[i].first;
            e.value.port_last[i] = spans[i].last;
            e.value.protocols[i] = spans[i].protocols;
        }
        entries.push_back(e);
    }
    return entries;
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
    return d;
}

class RingBufferStream final : public DenialStream {
  public:
    static Result<std::unique_ptr<DenialStream>> open(UniqueFd ringbuf, UniqueFd sessions,
                                                      uint64_t cgroup_id) {
        auto stream = std::unique_ptr<RingBufferStream>(new RingBufferStream);
        stream->ringbuf_ = std::move(ringbuf);
        stream->sessions_ = std::move(sessions);
        stream->cgroup_id_ = cgroup_id;
        stream->rb_.reset(
            ring_buffer__new(stream->ringbuf_.get(), on_sample, stream.get(), nullptr));
        if (!stream->rb_) return errno_error("cannot map the session's ring buffer");
        return std::unique_ptr<DenialStream>(std::move(stream));
    }

    int fd() const override { return ring_buffer__epoll_fd(rb_.get()); }

    Result<int> drain(const std::function<void(const Denial&)>& on_denial) override {
        on_denial_ = &on_denial;
        int n = ring_buffer__consume(rb_.get());
        on_denial_ = nullptr;
        if (n < 0) return neg_errno_error(n, "cannot read the session's ring buffer");
        return n;
    }

    uint64_t lost() const override {
        session_policy policy{};
        if (bpf_map_lookup_elem(sessions_.get(), &cgroup_id_, &policy) != 0) return 0;
        return policy.events_lost;
    }

  private:
    RingBufferStream() = default;

    static int on_sample(void* ctx, void* data, size_t size) {
        auto* self = static_cast<RingBufferStream*>(ctx);
        if (size < sizeof(net_event) || !self->on_denial_) return 0;
        net_event e;
        std::memcpy(&e, data, sizeof(e));
        (*self->on_denial_)(to_denial(e));
        return 0;
    }

    UniqueFd sessions_;
    uint64_t cgroup_id_ = 0;
    UniqueFd ringbuf_;  // declared before rb_: closed after rb_, which uses it
    RingBuffer rb_;
    const std::function<void(const Denial&)>* on_denial_ = nullptr;
};

// ---------------------------------------------------------------- maps

class PinnedNetfilter final : public Netfilter {
  public:
    PinnedNetfilter(UniqueFd sessions, UniqueFd rules, UniqueFd events)
        : sessions_(std::move(sessions)), rules_(std::move(rules)), events_(std::move(events)) {}

    Status add_session(uint64_t cgroup_id, const std::vector<Rule>& rules) override {
        auto entries = fold_rules(cgroup_id, rules);
        if (!entries) return entries.error();

        if (auto st = insert_session(cgroup_id, entries.value()); !st) {
            (void)remove_session(cgroup_id);
            return st;
        }
        logger()->debug("session {}: {} rules, {} trie entries", cgroup_id, rules.size(),
                        entries->size());
        return ok_status();
    }

    Status remove_session(uint64_t cgroup_id) override {
        // The policy entry first: from here on the cgroup is denied everything.
        if (bpf_map_delete_elem(sessions_.get(), &cgroup_id) != 0 && errno != ENOENT)
            return errno_error("cannot remove session " + std::to_string(cgroup_id));
        for (const auto& key : rule_keys(cgroup_id)) {
            if (bpf_map_delete_elem(rules_.get(), &key) != 0 && errno != ENOENT)
                return errno_error("cannot remove a rule of session " + std::to_string(cgroup_id));
        }
        if (bpf_map_delete_elem(events_.get(), &cgroup_id) != 0 && errno != ENOENT)
            return errno_error("cannot remove the ring buffer of session " +
                               std::to_string(cgroup_id));
        return ok_status();
    }

    std::vector<uint64_t> session_ids() const override {
        std::vector<uint64_t> ids;
        uint64_t key = 0;
        const void* prev = nullptr;
        while (bpf_map_get_next_key(sessions_.get(), prev, &key) == 0) {
            ids.push_back(key);
            prev = &key;
        }
        return ids;
    }

    size_t rule_count(uint64_t cgroup_id) const override { return rule_keys(cgroup_id).size(); }

    Result<SessionCounters> counters(uint64_t cgroup_id) const override {
        session_policy policy{};
        if (bpf_map_lookup_elem(sessions_.get(), &cgroup_id, &policy) != 0) {
            int err = errno;
            return errno_error("cannot read the counters of session " + std::to_string(cgroup_id),
                               err == ENOENT ? "add the session first" : privilege_hint(err));
        }
        return SessionCounters{policy.egress_dropped, policy.events_lost};
    }

    Result<std::unique_ptr<DenialStream>> watch(uint64_t cgroup_id) override {
        uint32_t map_id = 0;
        if (bpf_map_lookup_elem(events_.get(), &cgroup_id, &map_id) != 0)
            return errno_error("no ring buffer for session " + std::to_string(cgroup_id),
                               "add the session first");
        UniqueFd ringbuf(bpf_map_get_fd_by_id(map_id));
        if (!ringbuf.valid())
            return errno_error(
                "cannot open the ring buffer of session " + std::to_string(cgroup_id),
                privilege_hint(errno));
        UniqueFd sessions(::fcntl(sessions_.get(), F_DUPFD_CLOEXEC, 0));
        if (!sessions.valid()) return errno_error("cannot duplicate the sessions map descriptor");
        return RingBufferStream::open(std::move(ringbuf), std::move(sessions), cgroup_id);
    }

  private:
    // The ring buffer, then the rules, then the policy entry that makes the
    // session visible to the programs.
    Status insert_session(uint64_t cgroup_id, const std::vector<TrieEntry>& entries) {
        std::string session = "session " + std::to_string(cgroup_id);

        UniqueFd ringbuf(bpf_map_create(BPF_MAP_TYPE_RINGBUF, "cordon_events", 0, 0,
                                        CORDON_EVENTS_RINGBUF_SIZE, nullptr));
        if (!ringbuf.valid())
            return errno_error("cannot create the ring buffer of " + session,
                               privilege_hint(errno));
        uint32_t inner = ringbuf.get();
        if (bpf_map_update_elem(events_.get(), &cgroup_id, &inner, BPF_NOEXIST) != 0)
            return errno_error("cannot add the ring buffer of " + session, full_hint());

        for (const auto& e : entries) {
            if (bpf_map_update_elem(rules_.get(), &e.key, &e.value, BPF_NOEXIST) != 0)
                return errno_error("cannot add rule " + rule_text(e.key) + " of " + session,
                                   full_hint());
        }

        session_policy policy{};
        policy.rule_count = entries.size();
        if (bpf_map_update_elem(sessions_.get(), &cgroup_id, &policy, BPF_NOEXIST) != 0)
            return errno_error("cannot add " + session, full_hint());
        return ok_status();
    }

    static std::string full_hint() {
        if (errno == EEXIST) return "the session is already installed";
        if (errno == E2BIG || errno == ENOSPC || errno == ENOMEM)
            return "Cordon's maps hold " + std::to_string(CORDON_MAX_SESSIONS) + " sessions and " +
                   std::to_string(CORDON_MAX_RULES) + " rules; end sessions first";
        return privilege_hint(errno);
    }

    static std::string rule_text(const rule_key& key) {
        profile::Ip6 addr;
        std::memcpy(addr.data(), key.addr, addr.size());
        return format_prefix(addr, key.prefixlen - 64);
    }

    std::vector<rule_key> rule_keys(uint64_t cgroup_id) const {
        std::vector<rule_key> keys;
        rule_key key{};
        const void* prev = nullptr;
        while (bpf_map_get_next_key(rules_.get(), prev, &key) == 0) {
            if (key.cgroup_id == cgroup_id) keys.push_back(key);
            prev = &key;
        }
        return keys;
    }

    UniqueFd sessions_;
    UniqueFd rules_;
    UniqueFd events_;
};

Result<std::unique_ptr<Netfilter>> open_pinned(const std::string& pin_dir) {
    auto sessions = open_map_pin(pin_dir, kSessionsPin);
    if (!sessions) return sessions.error();
    auto rules = open_map_pin(pin_dir, kRulesPin);
    if (!rules) return rules.error();
    auto events = open_map_pin(pin_dir, kEventsPin);
    if (!events) return events.error();
    return std::unique_ptr<Netfilter>(new PinnedNetfilter(
        std::move(sessions.value()), std::move(rules.value()), std::move(events.value())));
}

}  // namespace

Result<std::unique_ptr<Netfilter>> Netfilter::open_or_attach(const std::string& cgroup_dir,
                                                             const std::string& pin_dir) {
    route_libbpf_logs();

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
        // A loader died half-way: its pins are not a program set to trust.
        if (present != 0) logger()->debug("{}: incomplete pins, attaching again", pin_dir);
        if (auto st = unpin_all(pin_dir); !st) return st.error();
        if (auto st = load_attach_pin(cgroup_dir, pin_dir); !st) {
            (void)unpin_all(pin_dir);
            (void)::rmdir(pin_dir.c_str());
            return st.error();
        }
    }
    return open_pinned(pin_dir);
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
