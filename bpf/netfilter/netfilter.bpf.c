// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Cordon's network allowlist, attached once to Cordon's root cgroup with
 * BPF_F_ALLOW_MULTI links and applied to every session cgroup below it.
 *
 *   cgroup/connect4     TCP connect() and UDP connect() on AF_INET sockets
 *   cgroup/connect6     the same on AF_INET6 sockets, v4-mapped included
 *   cgroup/sendmsg4     UDP sendto()/sendmsg() with an address, AF_INET
 *                       (and v4-mapped on AF_INET6: udpv6_sendmsg hands
 *                       those to udp_sendmsg before its own hook)
 *   cgroup/sendmsg6     the same on AF_INET6 sockets
 *   cgroup/sock_create  allows TCP and UDP sockets only: raw, ping (ICMP
 *                       datagrams), UDP-Lite, SCTP and MPTCP are refused,
 *                       and every inet socket of a cgroup that has no
 *                       session. It runs only for AF_INET and AF_INET6:
 *                       AF_PACKET, AF_NETLINK and the other families are
 *                       the seccomp filter's job.
 *   cgroup/setsockopt   refuses the options that put a source route or
 *                       other extension headers on every packet of a
 *                       socket (IP_OPTIONS, IPV6_RTHDR, ...), so that the
 *                       usual way to try it fails at once with EPERM
 *   cgroup/connect_unix and cgroup/sendmsg_unix (kernel 6.7 and later;
 *                       the loader switches them off where the kernel
 *                       lacks them) refuse every AF_UNIX connect() and
 *                       addressed send: host services on Unix sockets
 *                       (D-Bus, systemd-resolved, container engines) are a
 *                       way out that no inet rule sees, and one that passes
 *                       descriptors can hand the agent an inet socket made
 *                       outside the subtree, which nothing here filters.
 *                       socketpair() and inherited pipes are unaffected.
 *                       One exception: a session whose policy says so may
 *                       connect() to the approval broker's socket, at
 *                       CORDON_APPROVAL_SOCKET in its mount namespace.
 *   cgroup_skb/egress   the backstop: every IP packet a session socket
 *                       sends must be plain TCP or UDP to an address and
 *                       port the rules allow, or it is dropped. It covers
 *                       what the hooks above cannot see: the real next
 *                       hop of a source-routed packet (a routing header
 *                       by cmsg), replies of connections accepted from
 *                       peers no rule allows, and connections opened
 *                       before a policy change. It also counts what
 *                       each session sends, per session and per
 *                       destination, and enforces its byte budget.
 *
 * A decision is two lookups keyed by a cgroup id: the session, then the
 * longest prefix covering the destination (egress adds the session's
 * counters and its destination's). Addresses are IPv6 with IPv4
 * v4-mapped, so ::ffff:a.b.c.d meets the IPv4 rules. Returning 0 denies:
 * the caller's system call fails with EPERM, or the packet is dropped.
 * Each denial is reported to the session's own ring buffer.
 *
 * Approval gates: a rule may name a gate of its session; its ranges then
 * pass only while that gate is open (an entry in the gates map). A
 * destination a gated range covers is the gate's, whatever ungated ranges
 * also cover it (an address an allowed tool's DNS answer shares with a
 * gated tool stays behind the gate). There connect and sendmsg take one
 * use of the first covering gate that is open with uses left, and report
 * the use; egress lets the packets
 * of a gated range pass while its gate is open, whatever its uses left, so
 * that the connection that took the last use keeps working until the gate
 * is closed. A destination only closed gates cover is denied with reason
 * approval. Gated ranges never open port 53 or 853 (see below).
 *
 * DNS is the supervisor's: in every hook, a destination port 53 or 853
 * (TCP or UDP) is allowed only to the session's own resolver address and
 * port, before the rules are consulted, so no rule (not even ::/0 on every
 * port) opens a channel to another resolver. The resolver needs no rule.
 *
 * The kernel runs these programs for the cgroup a socket was created in
 * (sk_cgrp_data). The socket hooks decide for the cgroup of the caller,
 * egress for the cgroup of the socket (it also runs in softirq, where the
 * current task is anyone). So a socket created in a session and carried
 * elsewhere in the subtree obeys the carrier's policy at connect and its
 * creator's at egress, but an inet socket created outside Cordon's subtree
 * and passed in (inherited, SCM_RIGHTS) is not filtered here: the launcher
 * must not leak one into a session.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/un.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "netfilter.h"

/* Not in uapi headers that BPF C can include without libc. */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define SOL_IP 0
#define SOL_IPV6 41
#define IP_OFFSET 0x1fff /* fragment offset bits of iphdr.frag_off */
#define EEXIST 17

/*
 * The smallest page size: a setsockopt program sees at most one page of
 * optval, and must set optlen to 0 to pass a longer one through
 * untouched (Documentation/bpf/prog_cgroup_sockopt.rst, "Large optval").
 */
#define SOCKOPT_PAGE 4096

#define VERDICT_DENY 0
#define VERDICT_ALLOW 1

/*
 * Set by the loader before load. When false, denials still deny but are
 * not reported (a host that audits elsewhere).
 */
const volatile bool report_denials = true;

/*
 * Session policy by cgroup id. No entry: the cgroup gets no network. Full:
 * add_session fails. Not preallocated, so that an entry user space
 * replaces stays intact for a program still reading it (RCU).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_SESSIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct session_policy);
} sessions SEC(".maps");

/*
 * Each session's counters by cgroup id, created before its policy entry
 * and removed after it; sized like sessions. Missing while the policy
 * entry exists (never, unless someone else edits the maps): egress drops.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_SESSIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct session_counters);
} counters SEC(".maps");

/*
 * Bytes and packets per session and destination, created by egress on a
 * destination's first allowed packet. Full: the packet is decided as
 * usual and counted as unattributed in the session's counters.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_DESTINATIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct destination_key);
	__type(value, struct destination_counters);
} destinations SEC(".maps");

/*
 * Allowed prefixes and their ports, every session in one trie. Full:
 * add_session or replace_rules fails (replace_rules needs room for the old
 * and the new entries at once, since it adds before it deletes).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, CORDON_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rule_key);
	__type(value, struct rule_value);
} rules SEC(".maps");

/*
 * Open gates by session and gate number, with the uses each has left. No
 * entry: the gate is closed. Full: open_gate fails, and the gate stays
 * closed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_GATES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct gate_key);
	__type(value, struct gate_value);
} gates SEC(".maps");

/* The gate each socket went through, if any (struct socket_gate). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct socket_gate);
} socket_gates SEC(".maps");

/*
 * Ring buffers of denials, one per events slot; a session's policy names
 * its slot, so that a supervisor reads only its sessions' events. User
 * space creates the inner ring buffers; this one is the template they must
 * match. A slot's ring buffer outlives the session that claimed it and
 * serves the next one: every update of a map of maps waits for an RCU
 * grace period (tens of milliseconds), which a session start and end
 * would otherwise pay twice. Readers skip events of other cgroups, left
 * by an earlier holder. A ring buffer full: the event is lost and counted
 * in session_counters.events_lost; the denial stands.
 */
struct events_ringbuf {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CORDON_EVENTS_RINGBUF_SIZE);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, CORDON_MAX_SESSIONS);
	__type(key, __u32);
	__array(values, struct events_ringbuf);
} events SEC(".maps");

/*
 * Which session holds each events slot: cgroup id by slot, claimed by user
 * space with BPF_NOEXIST, so that of two supervisors only one gets a slot.
 * The programs do not read it. Full: add_session fails.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_SESSIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u64);
} event_slots SEC(".maps");

/* ---------------------------------------------------------------- verdicts */

/*
 * The rules' bit for a socket's type and protocol, 0 for anything but
 * TCP and UDP. The kernel has already turned protocol 0 into the type's
 * default by the time these programs run (inet_create); 0 is accepted
 * anyway.
 */
static __always_inline __u8 proto_bit(__u32 type, __u32 protocol)
{
	if (type == SOCK_STREAM && (protocol == IPPROTO_TCP || protocol == 0))
		return CORDON_PROTO_TCP;
	if (type == SOCK_DGRAM && (protocol == IPPROTO_UDP || protocol == 0))
		return CORDON_PROTO_UDP;
	return 0; /* raw, ping, UDP-Lite, SCTP, MPTCP, ...: no rule names them */
}

/* How a hook treats the gated ranges that cover a destination. */
enum gate_mode {
	GATE_TAKE, /* connect, sendmsg: an open gate passes by giving up a use */
	GATE_OPEN, /* egress: an open gate passes, whatever its uses left */
	GATE_ANY,  /* the quiet probe's question: does any range cover it at all? */
};

/* What check_destination decided. */
struct verdict {
	__u32 reason;	  /* 0: allowed, else CORDON_DENY_* */
	__u16 gate;	  /* the gate that let it pass, or the first that covered a denial */
	__u32 uses_left;  /* GATE_TAKE through a gate: what the gate has left after this use */
	__u32 generation; /* through a gate: its generation */
	__u64 used;	  /* GATE_TAKE through a gate: the gate's used count after this use */
};

static __always_inline bool range_covers(const struct rule_value *rule, int i, __u16 port,
					 __u8 protocol)
{
	return (rule->protocols[i] & protocol) && port >= rule->port_first[i] &&
	       port <= rule->port_last[i];
}

/*
 * This loop and the next are bounded loops (Linux 5.3): clang 14 will not
 * unroll a loop that reads gate[] as well.
 */
static __always_inline bool ungated_covers(const struct rule_value *rule, __u16 port, __u8 protocol)
{
	__u32 count = rule->count;

	for (int i = 0; i < CORDON_MAX_PORT_RANGES; i++) {
		if (i >= count)
			break;
		if (!rule->gate[i] && range_covers(rule, i, port, protocol))
			return true;
	}
	return false;
}

/*
 * Takes one use of an open gate under its lock, so that of connects racing
 * for the last use exactly one gets it. A fetching atomic would need no
 * lock but BPF_FETCH (Linux 5.12, clang -mcpu=v3), above this object's
 * minimum kernel; bpf_spin_lock works there.
 */
static __always_inline bool take_use(struct gate_value *g, struct verdict *v)
{
	__u64 used = 0;
	__u32 uses;

	bpf_spin_lock(&g->lock);
	uses = g->uses;
	if (uses != 0 && uses != CORDON_GATE_UNLIMITED)
		g->uses = uses - 1;
	if (uses != 0)
		used = ++g->used;
	bpf_spin_unlock(&g->lock);
	if (uses == 0)
		return false;
	v->uses_left = uses == CORDON_GATE_UNLIMITED ? uses : uses - 1;
	v->used = used;
	return true;
}

static __always_inline bool gate_passes(__u64 cgroup_id, __u16 gate, enum gate_mode mode,
					struct verdict *v)
{
	struct gate_key key = {.cgroup_id = cgroup_id, .gate = gate};
	struct gate_value *g;

	if (mode == GATE_ANY)
		return true;
	g = bpf_map_lookup_elem(&gates, &key);
	if (!g)
		return false; /* closed */
	if (g->closes_at && bpf_ktime_get_ns() >= g->closes_at)
		return false; /* its window ended, whatever became of the supervisor */
	v->generation = g->generation;
	return mode == GATE_OPEN || take_use(g, v);
}

/*
 * The session's longest prefix covering key->addr, on port over protocol:
 * the covering gated ranges are tried in order, and when any covers, the
 * gates decide alone; else an ungated range allows.
 */
static __always_inline struct verdict rules_decide(__u64 cgroup_id, struct rule_key *key,
						   __u16 port, __u8 protocol, enum gate_mode mode)
{
	struct verdict v = {.reason = CORDON_DENY_NO_RULE};
	struct rule_value *rule;
	__u32 count;

	key->prefixlen = 64 + 128;
	key->cgroup_id = cgroup_id;
	rule = bpf_map_lookup_elem(&rules, key);
	if (!rule)
		return v;
	count = rule->count;

	for (int i = 0; i < CORDON_MAX_PORT_RANGES; i++) {
		__u16 gate = rule->gate[i];

		if (i >= count)
			break;
		if (!gate || !range_covers(rule, i, port, protocol))
			continue;
		if (gate_passes(cgroup_id, gate, mode, &v)) {
			v.reason = 0;
			v.gate = gate;
			return v;
		}
		if (!v.gate) {
			v.reason = CORDON_DENY_APPROVAL;
			v.gate = gate;
		}
	}
	if (!v.gate && ungated_covers(rule, port, protocol))
		v.reason = 0;
	return v;
}

static __always_inline bool is_resolver(const struct session_policy *session, const __u8 *addr,
					__u16 port)
{
	__u64 want[2], got[2];

	if (!(session->flags & CORDON_SESSION_RESOLVER) || port != session->resolver_port)
		return false;
	__builtin_memcpy(want, session->resolver_addr, sizeof(want));
	__builtin_memcpy(got, addr, sizeof(got));
	return want[0] == got[0] && want[1] == got[1];
}

/*
 * The one match every hook makes, on a destination whose key->addr is
 * filled in. The session's resolver first, then the DNS ports nobody else
 * may serve (whatever a rule or a gate says), then the rules.
 */
static __always_inline struct verdict check_destination(__u64 cgroup_id,
							const struct session_policy *session,
							struct rule_key *key, __u16 port,
							__u8 protocol, enum gate_mode mode)
{
	struct verdict v = {};

	if (!protocol)
		v.reason = CORDON_DENY_NO_RULE;
	else if (is_resolver(session, key->addr, port))
		v.reason = 0;
	else if (port == CORDON_DNS_PORT || port == CORDON_DOT_PORT)
		v.reason = CORDON_DENY_DIRECT_DNS;
	else
		v = rules_decide(cgroup_id, key, port, protocol, mode);
	return v;
}

/* ---------------------------------------------------------------- events */

/*
 * An event in the session's ring buffer with its common fields set, or
 * NULL: reporting off, no session (nobody to tell), no ring buffer in its
 * slot, or the ring buffer full (counted in events_lost).
 */
static __always_inline struct net_event *new_event(__u64 cgroup_id, struct session_counters *count,
						   __u32 hook, __u32 reason, __u32 family,
						   const __u8 *addr, __u16 port, __u8 protocol)
{
	struct session_policy *policy;
	struct net_event *e;
	void *ringbuf;
	__u32 slot;

	if (!report_denials)
		return NULL;
	policy = bpf_map_lookup_elem(&sessions, &cgroup_id);
	if (!policy)
		return NULL;
	slot = policy->events_slot;
	ringbuf = bpf_map_lookup_elem(&events, &slot);
	if (!ringbuf)
		return NULL;
	e = bpf_ringbuf_reserve(ringbuf, sizeof(*e), 0);
	if (!e) {
		if (count)
			__sync_fetch_and_add(&count->events_lost, 1);
		return NULL;
	}
	e->cgroup_id = cgroup_id;
	e->hook = hook;
	e->reason = reason;
	e->port = port;
	e->protocol = protocol;
	e->family = family;
	__builtin_memcpy(e->addr, addr, sizeof(e->addr));
	e->drops = 0;
	e->gate = 0;
	e->reserved = 0;
	e->uses_left = 0;
	e->used = 0;
	return e;
}

/*
 * Reports what the current task's system call met: v->reason, or, when
 * reason is CORDON_GATE_USE, the use it took of gate v->gate.
 */
static __always_inline void report(__u64 cgroup_id, __u32 hook, __u32 reason,
				   const struct verdict *v, __u32 family, const __u8 *addr,
				   __u16 port, __u8 protocol)
{
	struct session_counters *count;
	struct net_event *e;

	count = bpf_map_lookup_elem(&counters, &cgroup_id);
	e = new_event(cgroup_id, count, hook, reason, family, addr, port, protocol);
	if (!e)
		return;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->gate = v->gate;
	if (reason == CORDON_GATE_USE) {
		e->uses_left = v->uses_left;
		e->used = v->used;
	}
	bpf_ringbuf_submit(e, 0);
}

/* ---------------------------------------------------------------- connect, sendmsg */

/*
 * glibc's getaddrinfo connect()s a UDP socket to each address it found, to
 * sort them (RFC 6724), and sends nothing. For an address and port the
 * rules allow over TCP only (through a gate or not, open or closed), that
 * connect is refused without an event and takes no use of a gate:
 * otherwise every lookup of a TCP tool's name would read as an attack, or
 * spend the approval a human gave. A gated rule over UDP cannot tell the
 * probe from a real connect: there the probe takes a use like any connect,
 * and, its gate closed, is reported (reason, the UDP verdict, is then
 * approval, not no-rule), so that the broker hears of the request.
 */
static __always_inline bool quiet_probe(__u64 cgroup_id, struct session_policy *session,
					struct rule_key *key, __u16 port, __u8 protocol, __u32 hook,
					__u32 reason)
{
	if (!session || protocol != CORDON_PROTO_UDP || reason != CORDON_DENY_NO_RULE)
		return false;
	if (hook != CORDON_HOOK_CONNECT4 && hook != CORDON_HOOK_CONNECT6)
		return false;
	return check_destination(cgroup_id, session, key, port, CORDON_PROTO_TCP, GATE_ANY)
		       .reason == 0;
}

/*
 * Notes the gate and generation a socket took a use of. Without room for
 * the note its packets do not pass egress: the connect fails closed there.
 */
static __always_inline void mark_socket(struct bpf_sock_addr *ctx, const struct verdict *v)
{
	struct socket_gate *sg;

	sg = bpf_sk_storage_get(&socket_gates, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!sg)
		return;
	sg->gate = v->gate;
	sg->generation = v->generation;
}

/* The verdict on one destination; key->addr is already filled in. */
static __always_inline int decide(struct bpf_sock_addr *ctx, struct rule_key *key, __u32 hook)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 protocol = proto_bit(ctx->type, ctx->protocol);
	struct verdict v = {.reason = CORDON_DENY_NO_SESSION};
	struct session_policy *session;

	session = bpf_map_lookup_elem(&sessions, &cgroup_id);
	if (session)
		v = check_destination(cgroup_id, session, key, port, protocol, GATE_TAKE);
	if (!v.reason) {
		/* Each use is reported: the supervisor audits and counts them. */
		if (v.gate) {
			mark_socket(ctx, &v);
			report(cgroup_id, hook, CORDON_GATE_USE, &v, ctx->family, key->addr, port,
			       protocol);
		}
		return VERDICT_ALLOW;
	}
	if (quiet_probe(cgroup_id, session, key, port, protocol, hook, v.reason))
		return VERDICT_DENY;
	report(cgroup_id, hook, v.reason, &v, ctx->family, key->addr, port, protocol);
	return VERDICT_DENY;
}

static __always_inline int decide4(struct bpf_sock_addr *ctx, __u32 hook)
{
	struct rule_key key = {};
	__u32 ip4 = ctx->user_ip4; /* network order */

	key.addr[10] = 0xff;
	key.addr[11] = 0xff;
	__builtin_memcpy(&key.addr[12], &ip4, sizeof(ip4));
	return decide(ctx, &key, hook);
}

static __always_inline int decide6(struct bpf_sock_addr *ctx, __u32 hook)
{
	struct rule_key key = {};
	__u32 ip6[4];

	/* The context allows only 4-byte loads of user_ip6. */
	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
	__builtin_memcpy(key.addr, ip6, sizeof(ip6));
	return decide(ctx, &key, hook);
}

SEC("cgroup/connect4")
int cordon_connect4(struct bpf_sock_addr *ctx)
{
	return decide4(ctx, CORDON_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int cordon_connect6(struct bpf_sock_addr *ctx)
{
	return decide6(ctx, CORDON_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int cordon_sendmsg4(struct bpf_sock_addr *ctx)
{
	return decide4(ctx, CORDON_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int cordon_sendmsg6(struct bpf_sock_addr *ctx)
{
	return decide6(ctx, CORDON_HOOK_SENDMSG6);
}

/*
 * libbpf before 1.3 knows no section name for the Unix hooks: both are
 * declared as connect4 programs, and the loader sets their real attach
 * types (BPF_CGROUP_UNIX_CONNECT, BPF_CGROUP_UNIX_SENDMSG) before load.
 * Neither reads a field of the context itself, so both verify under
 * either type; the address of a Unix connect is read through the kernel's
 * own context (bpf_cast_to_kern_ctx), as in the kernel's selftest
 * tools/testing/selftests/bpf/progs/connect_unix_prog.c.
 */
/*
 * glibc tries nscd's socket at every name and user lookup, so Unix denials
 * are common and mostly harmless: each is counted, and only the 1st, 2nd,
 * 4th, ... is reported, with the count so far in drops.
 */
static __always_inline int deny_unix(__u32 hook)
{
	static const __u8 none[16];
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct session_counters *count;
	struct net_event *e;
	__u64 denied;

	count = bpf_map_lookup_elem(&counters, &cgroup_id);
	if (!count)
		return VERDICT_DENY; /* no session: nobody to tell */
	__sync_fetch_and_add(&count->unix_denied, 1);
	denied = count->unix_denied;
	if (denied & (denied - 1))
		return VERDICT_DENY;
	e = new_event(cgroup_id, count, hook, CORDON_DENY_UNIX_SOCKET, 1 /* AF_UNIX */, none, 0, 0);
	if (!e)
		return VERDICT_DENY;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->drops = denied;
	bpf_ringbuf_submit(e, 0);
	return VERDICT_DENY;
}

/*
 * The kernel's context of a sock_addr program (include/linux/filter.h), as
 * far as read here; CO-RE finds the fields' offsets in the kernel's BTF.
 */
struct bpf_sock_addr_kern {
	struct sockaddr *uaddr;
	__u32 uaddrlen; /* Linux 6.7, with the Unix hooks */
} __attribute__((preserve_access_index));

/*
 * Weak, so that the object loads where they are missing; the Unix
 * programs, their only callers, are switched off there, as every kernel
 * with the Unix hooks (6.7) has both (6.2).
 */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

#define SUN_PATH_OFFSET 2 /* offsetof(struct sockaddr_un, sun_path) */
#define APPROVAL_PATH_LEN (sizeof(CORDON_APPROVAL_SOCKET) - 1)

/*
 * Whether a Unix connect() names exactly CORDON_APPROVAL_SOCKET, as the
 * kernel will read it: sun_path up to the address length or to the first
 * NUL, whichever comes first (unix_mkname_bsd). The kernel has copied the
 * address already (move_addr_to_kernel), so it cannot change under us.
 */
static __always_inline bool to_approval_socket(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_addr_kern *sa = bpf_cast_to_kern_ctx(ctx);
	struct sockaddr_un *un;
	__u32 len = sa->uaddrlen;

	if (len < SUN_PATH_OFFSET + APPROVAL_PATH_LEN)
		return false;
	un = bpf_rdonly_cast(sa->uaddr, bpf_core_type_id_kernel(struct sockaddr_un));
#pragma unroll
	for (int i = 0; i < APPROVAL_PATH_LEN; i++) {
		if (un->sun_path[i] != CORDON_APPROVAL_SOCKET[i])
			return false;
	}
	return len == SUN_PATH_OFFSET + APPROVAL_PATH_LEN || un->sun_path[APPROVAL_PATH_LEN] == 0;
}

/* Only a session with CORDON_SESSION_APPROVAL_SOCKET reaches the broker's socket. */
static __always_inline bool approval_socket_allowed(struct bpf_sock_addr *ctx)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct session_policy *session;

	session = bpf_map_lookup_elem(&sessions, &cgroup_id);
	return session && (session->flags & CORDON_SESSION_APPROVAL_SOCKET) &&
	       to_approval_socket(ctx);
}

SEC("cgroup/connect4")
int cordon_unix_conn(struct bpf_sock_addr *ctx)
{
	if (approval_socket_allowed(ctx))
		return VERDICT_ALLOW;
	return deny_unix(CORDON_HOOK_UNIX_CONNECT);
}

/* Addressed sends have no exception: the broker's socket is a stream one. */
SEC("cgroup/connect4")
int cordon_unix_send(struct bpf_sock_addr *ctx)
{
	return deny_unix(CORDON_HOOK_UNIX_SENDMSG);
}

/* ---------------------------------------------------------------- sock_create, setsockopt */

static const __u8 no_addr[16];
static const struct verdict no_gate;

SEC("cgroup/sock_create")
int cordon_sock_create(struct bpf_sock *ctx)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct session_policy *session;
	__u32 reason;

	session = bpf_map_lookup_elem(&sessions, &cgroup_id);
	if (!session)
		reason = CORDON_DENY_NO_SESSION;
	else if (ctx->type == SOCK_RAW)
		reason = CORDON_DENY_RAW_SOCKET;
	else if (!proto_bit(ctx->type, ctx->protocol))
		reason = CORDON_DENY_SOCKET_TYPE;
	else
		return VERDICT_ALLOW;
	report(cgroup_id, CORDON_HOOK_SOCK_CREATE, reason, &no_gate, ctx->family, no_addr, 0,
	       proto_bit(ctx->type, ctx->protocol));
	return VERDICT_DENY;
}

/*
 * Socket options that put extension headers on every packet of a socket.
 * IPV6_2292PKTOPTIONS sets them all at once, in cmsg form. IPV6_2292RTHDR
 * and its siblings are not here: as socket options they only ask to
 * receive those headers. The same headers sent per packet (IP_RETOPTS,
 * IPV6_RTHDR, ... as cmsg) are egress's to drop.
 */
static __always_inline bool adds_ip_options(__s32 level, __s32 optname)
{
	if (level == SOL_IP)
		return optname == IP_OPTIONS;
	if (level == SOL_IPV6)
		return optname == IPV6_RTHDR || optname == IPV6_HOPOPTS ||
		       optname == IPV6_DSTOPTS || optname == IPV6_RTHDRDSTOPTS ||
		       optname == IPV6_2292PKTOPTIONS;
	return false;
}

SEC("cgroup/setsockopt")
int cordon_sockopt(struct bpf_sockopt *ctx)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct bpf_sock *sk = ctx->sk;
	__u32 family;

	/* Anything else goes to the kernel as the caller passed it. */
	if (ctx->optlen > SOCKOPT_PAGE)
		ctx->optlen = 0;
	if (!sk)
		return VERDICT_ALLOW;
	family = sk->family;
	if ((family != AF_INET && family != AF_INET6) || !adds_ip_options(ctx->level, ctx->optname))
		return VERDICT_ALLOW;
	report(cgroup_id, CORDON_HOOK_SETSOCKOPT, CORDON_DENY_IP_OPTIONS, &no_gate, family, no_addr,
	       0, proto_bit(sk->type, sk->protocol));
	return VERDICT_DENY;
}

/* ---------------------------------------------------------------- egress */

/* Where a packet goes, as the rules see it. */
struct packet {
	struct rule_key key; /* addr: the IP header's destination, v4-mapped for IPv4 */
	__u16 port;
	__u8 protocol;
	__u8 family;
};

static __always_inline bool ipv6_extension(__u8 nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_ESP:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
	case IPPROTO_MH:
	case 139: /* HIP */
	case 140: /* Shim6 */
	case 253: /* experiments, RFC 3692 */
	case 254:
		return true;
	default:
		return false;
	}
}

/*
 * Reads the IP header and the L4 destination port; cgroup_skb data starts
 * at the network header. Returns 0, or the reason to drop: only plain TCP
 * and UDP are let through, without IPv4 options or IPv6 extension headers,
 * since both can send a packet to a hop other than its last destination.
 * The hook runs before fragmentation (ip_finish_output,
 * ip6_finish_output), so a fragment here is not one of ours.
 */
static __always_inline __u32 parse_packet(struct __sk_buff *skb, struct packet *pkt)
{
	__u32 l4_offset;
	__u8 l4_protocol;
	__u8 version;
	__be16 dport;

	if (bpf_skb_load_bytes(skb, 0, &version, sizeof(version)) != 0)
		return CORDON_DENY_PROTOCOL;
	version >>= 4;
	if (version == 4) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) != 0)
			return CORDON_DENY_PROTOCOL;
		pkt->family = AF_INET;
		pkt->key.addr[10] = 0xff;
		pkt->key.addr[11] = 0xff;
		__builtin_memcpy(&pkt->key.addr[12], &ip.daddr, sizeof(ip.daddr));
		if (ip.ihl != 5)
			return CORDON_DENY_IP_OPTIONS;
		if (ip.frag_off & bpf_htons(IP_OFFSET))
			return CORDON_DENY_PROTOCOL;
		l4_offset = sizeof(ip);
		l4_protocol = ip.protocol;
	} else if (version == 6) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) != 0)
			return CORDON_DENY_PROTOCOL;
		pkt->family = AF_INET6;
		__builtin_memcpy(pkt->key.addr, &ip6.daddr, sizeof(ip6.daddr));
		if (ipv6_extension(ip6.nexthdr))
			return CORDON_DENY_IP_OPTIONS;
		l4_offset = sizeof(ip6);
		l4_protocol = ip6.nexthdr;
	} else {
		return CORDON_DENY_PROTOCOL;
	}

	if (l4_protocol == IPPROTO_TCP)
		pkt->protocol = CORDON_PROTO_TCP;
	else if (l4_protocol == IPPROTO_UDP)
		pkt->protocol = CORDON_PROTO_UDP;
	else
		return CORDON_DENY_PROTOCOL;
	/* dest is at offset 2 in both struct tcphdr and struct udphdr. */
	if (bpf_skb_load_bytes(skb, l4_offset + 2, &dport, sizeof(dport)) != 0)
		return CORDON_DENY_PROTOCOL;
	pkt->port = bpf_ntohs(dport);
	return 0;
}

/*
 * Counts a drop and reports it when the count is a power of two (1, 2,
 * 4, 8, ...): a stream the rules cut keeps retransmitting, and one event
 * per packet would fill the ring buffer with copies. Budget drops have a
 * count of their own, so that the first is always reported. The exact
 * counts are in session_counters and in each event's drops. The adds are
 * atomic; the read after them is not (a fetching add needs 5.12), so two
 * CPUs dropping at once may report one power twice or skip it.
 */
static __always_inline void count_drop(__u64 cgroup_id, struct session_counters *count,
				       const struct verdict *v, const struct packet *pkt)
{
	__u32 reason = v->reason;
	struct net_event *e;
	__u64 drops;

	__sync_fetch_and_add(&count->egress_dropped, 1);
	if (reason == CORDON_DENY_BUDGET) {
		__sync_fetch_and_add(&count->budget_dropped, 1);
		drops = count->budget_dropped;
	} else {
		drops = count->egress_dropped;
	}
	if (drops & (drops - 1))
		return;
	e = new_event(cgroup_id, count, CORDON_HOOK_EGRESS, reason, pkt->family, pkt->key.addr,
		      pkt->port, pkt->protocol);
	if (!e)
		return;
	e->pid = 0;
	__builtin_memset(e->comm, 0, sizeof(e->comm));
	e->drops = drops;
	e->gate = v->gate;
	bpf_ringbuf_submit(e, 0);
}

/*
 * Spent once the bytes sent reach the budget. Checked before the packet
 * is counted, without a lock: CPUs sending at once may each let one more
 * packet through, so the overshoot is at most a packet per CPU.
 */
static __always_inline bool budget_spent(const struct session_policy *session,
					 const struct session_counters *count)
{
	return session->egress_budget && count->bytes_sent >= session->egress_budget;
}

/*
 * Counts an allowed packet for its session and its destination. skb->len
 * is the IP packet (cgroup_skb data starts at the network header); a GSO
 * packet counts as its segments but its headers once. A destination the
 * map has no room for is counted as unattributed; the packet still goes.
 */
static __always_inline void count_sent(__u64 cgroup_id, struct session_counters *count,
				       const struct packet *pkt, struct __sk_buff *skb)
{
	struct destination_counters *dest, first;
	struct destination_key key = {};
	__u64 bytes = skb->len;
	__u64 packets = skb->gso_segs > 1 ? skb->gso_segs : 1;
	long err;

	__sync_fetch_and_add(&count->bytes_sent, bytes);
	__sync_fetch_and_add(&count->packets_sent, packets);

	key.cgroup_id = cgroup_id;
	__builtin_memcpy(key.addr, pkt->key.addr, sizeof(key.addr));
	key.port = pkt->port;
	key.protocol = pkt->protocol;
	dest = bpf_map_lookup_elem(&destinations, &key);
	if (!dest) {
		first.bytes = bytes;
		first.packets = packets;
		err = bpf_map_update_elem(&destinations, &key, &first, BPF_NOEXIST);
		if (!err)
			return;
		/* Another CPU created it first: add to theirs. */
		if (err == -EEXIST)
			dest = bpf_map_lookup_elem(&destinations, &key);
	}
	if (!dest) {
		__sync_fetch_and_add(&count->unattributed_bytes, bytes);
		__sync_fetch_and_add(&count->unattributed_packets, packets);
		return;
	}
	__sync_fetch_and_add(&dest->bytes, bytes);
	__sync_fetch_and_add(&dest->packets, packets);
}

/*
 * A gated destination's packet passes only from a socket that went through
 * a gate now open in the same generation: a connection kept through a
 * closed window stays cut in the next one, where it took no use.
 */
static __always_inline bool socket_in_window(struct __sk_buff *skb, __u64 cgroup_id)
{
	struct gate_key key = {.cgroup_id = cgroup_id};
	struct bpf_sock *sk = skb->sk;
	struct socket_gate *sg;
	struct gate_value *g;

	if (!sk)
		return false;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return false;
	sg = bpf_sk_storage_get(&socket_gates, sk, 0, 0);
	if (!sg)
		return false;
	key.gate = sg->gate;
	g = bpf_map_lookup_elem(&gates, &key);
	if (!g || g->generation != sg->generation)
		return false;
	return !g->closes_at || bpf_ktime_get_ns() < g->closes_at;
}

SEC("cgroup_skb/egress")
int cordon_egress(struct __sk_buff *skb)
{
	__u64 cgroup_id = bpf_skb_cgroup_id(skb);
	struct session_policy *session;
	struct session_counters *count;
	struct packet pkt = {};
	struct verdict v = {};

	session = bpf_map_lookup_elem(&sessions, &cgroup_id);
	if (!session)
		return VERDICT_DENY; /* no session, no ring buffer: nobody to tell */
	count = bpf_map_lookup_elem(&counters, &cgroup_id);
	if (!count)
		return VERDICT_DENY;
	v.reason = parse_packet(skb, &pkt);
	if (!v.reason)
		v = check_destination(cgroup_id, session, &pkt.key, pkt.port, pkt.protocol,
				      GATE_OPEN);
	if (!v.reason && v.gate && !socket_in_window(skb, cgroup_id))
		v.reason = CORDON_DENY_APPROVAL;
	if (!v.reason && budget_spent(session, count)) {
		v.reason = CORDON_DENY_BUDGET;
		v.gate = 0;
	}
	if (!v.reason) {
		count_sent(cgroup_id, count, &pkt, skb);
		return VERDICT_ALLOW;
	}
	count_drop(cgroup_id, count, &v, &pkt);
	return VERDICT_DENY;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
