/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Structs shared by netfilter.bpf.c and the C++ loader
 * (supervisor/netfilter/). C++ checks their sizes and offsets with
 * static_assert, so a change here that is not mirrored fails the build.
 */
#ifndef CORDON_BPF_NETFILTER_H
#define CORDON_BPF_NETFILTER_H

#ifndef __u8
#include <linux/types.h>
#endif
#include <linux/bpf.h> /* struct bpf_spin_lock */

/* Port ranges one rules trie entry holds after folding. */
#define CORDON_MAX_PORT_RANGES 8

/*
 * Default map sizes; the loader may set others before load (NetfilterConfig).
 * A full sessions or rules map denies: add_session or replace_rules fails.
 * A full gates map keeps gates closed: open_gate fails.
 * A full destinations map only loses attribution: the packet is decided as
 * usual and counted in session_counters.unattributed_*.
 */
#define CORDON_MAX_SESSIONS 4096
#define CORDON_MAX_RULES (1 << 20)
#define CORDON_MAX_DESTINATIONS 65536
#define CORDON_MAX_GATES 65536

/* gate_value.uses of a gate opened without a count, and net_event.uses_left then. */
#define CORDON_GATE_UNLIMITED 0xffffffffu

/*
 * Destination ports that carry DNS (53) and DNS over TLS (853). A session
 * reaches them only at its own resolver, whatever its rules say.
 */
#define CORDON_DNS_PORT 53
#define CORDON_DOT_PORT 853

/*
 * Bytes of each session's ring buffer (a power of two, a multiple of the
 * page size). Every inner ring buffer must have exactly this size: the
 * kernel checks an inner map against the outer map's template.
 */
#define CORDON_EVENTS_RINGBUF_SIZE (64 * 1024)

/* Bits of rule_value.protocols and net_event.protocol. */
#define CORDON_PROTO_TCP 1
#define CORDON_PROTO_UDP 2

/* Which hook decided, in net_event.hook. */
enum cordon_hook {
	CORDON_HOOK_CONNECT4 = 1,
	CORDON_HOOK_CONNECT6 = 2,
	CORDON_HOOK_SENDMSG4 = 3,
	CORDON_HOOK_SENDMSG6 = 4,
	CORDON_HOOK_SOCK_CREATE = 5,
	CORDON_HOOK_EGRESS = 6,	      /* a packet leaving a session socket */
	CORDON_HOOK_SETSOCKOPT = 7,   /* a socket option refused */
	CORDON_HOOK_UNIX_CONNECT = 8, /* connect() of an AF_UNIX socket */
	CORDON_HOOK_UNIX_SENDMSG = 9, /* sendto()/sendmsg() with an AF_UNIX address */
};

/* Why, in net_event.reason. */
enum cordon_reason {
	CORDON_DENY_NO_RULE = 1,     /* no rule covers address and port */
	CORDON_DENY_NO_SESSION = 2,  /* the cgroup has no session policy */
	CORDON_DENY_RAW_SOCKET = 3,  /* SOCK_RAW refused at creation */
	CORDON_DENY_SOCKET_TYPE = 4, /* neither TCP nor UDP: ping, UDP-Lite, SCTP, MPTCP */
	CORDON_DENY_IP_OPTIONS = 5,  /* IPv4 options or IPv6 extension headers (source routes) */
	CORDON_DENY_PROTOCOL = 6,    /* a packet whose TCP or UDP header cannot be read */
	CORDON_DENY_DIRECT_DNS = 7,  /* port 53 or 853 anywhere but the session's resolver */
	CORDON_DENY_BUDGET = 8,	     /* egress: the session's byte budget is spent */
	CORDON_DENY_UNIX_SOCKET = 9, /* a Unix socket address: a way out no inet rule sees */
	/*
	 * Only gated ranges cover the destination, and none of their gates is
	 * open with a use left (connect, sendmsg) or open at all (egress).
	 */
	CORDON_DENY_APPROVAL = 10,
	/* Not a denial: a connect() or addressed send took a use of an open gate. */
	CORDON_GATE_USE = 11,
};

/* Bits of session_policy.flags. */
#define CORDON_SESSION_RESOLVER 1 /* resolver_addr and resolver_port are set */
/* connect() of an AF_UNIX socket to CORDON_APPROVAL_SOCKET is allowed */
#define CORDON_SESSION_APPROVAL_SOCKET 2

/*
 * Where the approval broker's socket appears in the agent's mount namespace:
 * the one Unix socket a session with CORDON_SESSION_APPROVAL_SOCKET reaches.
 */
#define CORDON_APPROVAL_SOCKET "/run/cordon-approval/socket"

/*
 * Value of the sessions map, keyed by cgroup id (__u64): what user space
 * decides for the session. User space rewrites it (replace_rules updates
 * rule_count), so nothing the programs count lives here.
 */
struct session_policy {
	__u32 flags;		/* CORDON_SESSION_* bits */
	__u32 rule_count;	/* rules trie entries of the session */
	__u64 egress_budget;	/* bytes the session may send; 0: no budget */
	__u8 resolver_addr[16]; /* IPv6 or v4-mapped, network order */
	__u16 resolver_port;	/* host order */
	__u16 reserved;
	__u32 events_slot; /* index of the session's ring buffer in the events map */
};

/*
 * Value of the counters map, keyed by cgroup id: what the programs count
 * for a session, with atomic adds. Written by user space only once, zeroed,
 * before the session's policy entry exists.
 */
struct session_counters {
	__u64 events_lost;	    /* denials not reported: the ring buffer was full */
	__u64 egress_dropped;	    /* packets the egress program dropped, budget ones included */
	__u64 budget_dropped;	    /* of those, dropped because the budget was spent */
	__u64 bytes_sent;	    /* IP bytes of the packets egress allowed */
	__u64 packets_sent;	    /* packets egress allowed (GSO segments counted one by one) */
	__u64 unattributed_bytes;   /* of bytes_sent, those the destinations map had no room for */
	__u64 unattributed_packets; /* of packets_sent, the same */
	__u64 unix_denied;	    /* AF_UNIX connects and addressed sends refused */
};

/* Key of the destinations map: one session's traffic to one address and port. */
struct destination_key {
	__u64 cgroup_id;
	__u8 addr[16]; /* IPv6 or v4-mapped, network order */
	__u16 port;    /* host order */
	__u8 protocol; /* CORDON_PROTO_TCP or CORDON_PROTO_UDP */
	__u8 reserved[5];
};

/* Value of the destinations map. */
struct destination_counters {
	__u64 bytes;
	__u64 packets;
};

/*
 * Key of the rules LPM trie. prefixlen counts the bits after itself:
 * always 64 for cgroup_id plus 0..128 of addr, so that one trie holds
 * every session and a lookup never crosses sessions. addr is IPv6 or
 * v4-mapped IPv4, network order.
 */
struct rule_key {
	__u32 prefixlen;
	__u64 cgroup_id;
	__u8 addr[16];
} __attribute__((packed));

/*
 * Value of the rules trie: the ports allowed to the prefix. User space
 * folds the ports of every shorter covering prefix into each entry, since
 * an LPM lookup returns only the longest match. Ranges of different gates
 * are never merged; ungated ranges come first, then gated ones by gate.
 */
struct rule_value {
	__u16 port_first[CORDON_MAX_PORT_RANGES];
	__u16 port_last[CORDON_MAX_PORT_RANGES];
	__u8 protocols[CORDON_MAX_PORT_RANGES]; /* CORDON_PROTO_* bits */
	__u32 count;
	/* 0: the range is open; else it passes only while this gate is open */
	__u16 gate[CORDON_MAX_PORT_RANGES];
};

/* Key of the gates map: one gate of one session. */
struct gate_key {
	__u64 cgroup_id;
	__u16 gate; /* never 0 */
	__u8 reserved[6];
};

/*
 * Value of the gates map: an entry is an open gate. The programs take a
 * use under the lock, so that of concurrent connects exactly `uses` pass;
 * user space writes it with BPF_F_LOCK. From closes_at on the gate is
 * closed for every hook, egress included, whether or not the supervisor
 * is still there to delete the entry: the window a human granted holds
 * even when the process that enforces it was killed.
 */
struct gate_value {
	struct bpf_spin_lock lock;
	__u32 uses; /* new connections it still lets through; CORDON_GATE_UNLIMITED: no count */
	__u64 closes_at; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) it closes at; 0: never */
	/*
	 * Which opening of the gate this is: a new window gets a new one, so
	 * that sockets of an earlier window stay cut (struct socket_gate).
	 */
	__u32 generation;
	__u32 reserved;
	/*
	 * Connections and addressed sends this opening let through, counted
	 * under the lock with the use they took: the true count of a grant,
	 * whatever the ring buffer lost. Opening the gate again starts it at 0.
	 */
	__u64 used;
};

/*
 * Socket storage of a socket that connected (or sent) through a gate: its
 * packets pass egress only while that gate is open in the same generation.
 */
struct socket_gate {
	__u16 gate;
	__u16 reserved;
	__u32 generation;
};

/*
 * One denial, or one use of a gate (reason CORDON_GATE_USE), sent to the
 * session's ring buffer. Egress runs for packets a task did not
 * necessarily send (retransmissions, ACKs from softirq): its events carry
 * no pid or comm, and only some are sent (see drops).
 */
struct net_event {
	__u64 cgroup_id;
	__u32 pid;  /* thread group id */
	__u32 hook; /* enum cordon_hook */
	__u32 reason;
	__u16 port;    /* host order */
	__u8 protocol; /* CORDON_PROTO_*, 0 if neither */
	__u8 family;   /* AF_INET or AF_INET6 of the socket (egress: of the packet) */
	__u8 addr[16]; /* IPv6 or v4-mapped */
	char comm[16];
	/*
	 * egress: the session's drops so far, this one included (for reason
	 * budget: its budget drops so far); else 0
	 */
	__u64 drops;
	/* reasons approval and gate-use: the gate of the covering range; else 0 */
	__u16 gate;
	__u16 reserved;
	/* gate-use: the uses the gate has left after this one (or CORDON_GATE_UNLIMITED); else 0 */
	__u32 uses_left;
	/* gate-use: gate_value.used after this one; else 0 */
	__u64 used;
};

#endif /* CORDON_BPF_NETFILTER_H */
