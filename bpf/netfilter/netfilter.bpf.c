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
 *   cgroup/sock_create  refuses SOCK_RAW, and every inet socket of a cgroup
 *                       that has no session. It runs only for AF_INET and
 *                       AF_INET6: AF_PACKET, AF_NETLINK and the other
 *                       families are the seccomp filter's job.
 *
 * A decision is two lookups keyed by the caller's cgroup id: the session,
 * then the longest prefix covering the destination. Addresses are IPv6
 * with IPv4 v4-mapped, so ::ffff:a.b.c.d meets the IPv4 rules. Returning
 * 0 denies: the caller's system call fails with EPERM. Each denial is
 * reported to the session's own ring buffer.
 *
 * The kernel runs these programs for the cgroup a socket was created in
 * (sk_cgrp_data), while the decision is made for the cgroup of the caller.
 * So a socket created in a session and carried elsewhere in the subtree
 * obeys the carrier's policy, but an inet socket created outside Cordon's
 * subtree and passed in (inherited, SCM_RIGHTS) is not filtered here: the
 * launcher must not leak one into a session.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "netfilter.h"

/* Not in uapi headers that BPF C can include without libc. */
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3

#define VERDICT_DENY 0
#define VERDICT_ALLOW 1

/*
 * Set by the loader before load. When false, denials still deny but are
 * not reported (a host that audits elsewhere).
 */
const volatile bool report_denials = true;

/* Session policy by cgroup id. No entry: the cgroup gets no network. Full: add_session fails. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORDON_MAX_SESSIONS);
	__type(key, __u64);
	__type(value, struct session_policy);
} sessions SEC(".maps");

/* Allowed prefixes and their ports, every session in one trie. Full: add_session fails. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, CORDON_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rule_key);
	__type(value, struct rule_value);
} rules SEC(".maps");

/*
 * Each session's own ring buffer of denials, by cgroup id, so that a
 * supervisor reads only its session's events. User space creates the
 * inner ring buffers; this one is the template they must match. Outer
 * map full: add_session fails. A ring buffer full: the event is lost and
 * counted in session_policy.events_lost; the denial stands.
 */
struct events_ringbuf {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CORDON_EVENTS_RINGBUF_SIZE);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, CORDON_MAX_SESSIONS);
	__type(key, __u64);
	__array(values, struct events_ringbuf);
} events SEC(".maps");

static __always_inline __u8 proto_bit(__u32 type, __u32 protocol)
{
	if (type == SOCK_STREAM && protocol == IPPROTO_TCP)
		return CORDON_PROTO_TCP;
	if (type == SOCK_DGRAM && protocol == IPPROTO_UDP)
		return CORDON_PROTO_UDP;
	return 0; /* SCTP, MPTCP, ICMP datagrams, ...: no rule names them */
}

static __always_inline void report(__u64 cgroup_id, struct session_policy *session, __u32 hook,
				   __u32 reason, __u32 family, const __u8 *addr, __u16 port,
				   __u8 protocol)
{
	struct net_event *e;
	void *ringbuf;

	if (!report_denials)
		return;
	ringbuf = bpf_map_lookup_elem(&events, &cgroup_id);
	if (!ringbuf)
		return; /* no session: nobody to tell */
	e = bpf_ringbuf_reserve(ringbuf, sizeof(*e), 0);
	if (!e) {
		if (session)
			__sync_fetch_and_add(&session->events_lost, 1);
		return;
	}
	e->cgroup_id = cgroup_id;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->hook = hook;
	e->reason = reason;
	e->port = port;
	e->protocol = protocol;
	e->family = family;
	__builtin_memcpy(e->addr, addr, sizeof(e->addr));
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
}

static __always_inline bool ports_allow(const struct rule_value *rule, __u16 port, __u8 protocol)
{
	__u32 count = rule->count;

#pragma unroll
	for (int i = 0; i < CORDON_MAX_PORT_RANGES; i++) {
		if (i >= count)
			break;
		if ((rule->protocols[i] & protocol) && port >= rule->port_first[i] &&
		    port <= rule->port_last[i])
			return true;
	}
	return false;
}

/* The verdict on one destination; key.addr is already filled in. */
static __always_inline int decide(struct bpf_sock_addr *ctx, struct rule_key *key, __u32 hook)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 protocol = proto_bit(ctx->type, ctx->protocol);
	struct session_policy *session;
	struct rule_value *rule;
	__u32 reason;

	session = bpf_map_lookup_elem(&sessions, &cgroup_id);
	if (!session) {
		reason = CORDON_DENY_NO_SESSION;
		goto deny;
	}
	key->prefixlen = 64 + 128;
	key->cgroup_id = cgroup_id;
	rule = bpf_map_lookup_elem(&rules, key);
	if (rule && protocol && ports_allow(rule, port, protocol))
		return VERDICT_ALLOW;
	reason = CORDON_DENY_NO_RULE;
deny:
	report(cgroup_id, session, hook, reason, ctx->family, key->addr, port, protocol);
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

SEC("cgroup/sock_create")
int cordon_sock_create(struct bpf_sock *ctx)
{
	static const __u8 no_addr[16];
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct session_policy *session;
	__u32 reason;

	session = bpf_map_lookup_elem(&sessions, &cgroup_id);
	if (!session)
		reason = CORDON_DENY_NO_SESSION;
	else if (ctx->type == SOCK_RAW)
		reason = CORDON_DENY_RAW_SOCKET;
	else
		return VERDICT_ALLOW;
	report(cgroup_id, session, CORDON_HOOK_SOCK_CREATE, reason, ctx->family, no_addr, 0,
	       proto_bit(ctx->type, ctx->protocol));
	return VERDICT_DENY;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
