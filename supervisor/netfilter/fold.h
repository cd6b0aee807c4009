// SPDX-License-Identifier: Apache-2.0
// Internal to supervisor/netfilter: rules folded into rules trie entries.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bpf/netfilter/netfilter.h"
#include "cordon/result.h"
#include "netfilter/netfilter.h"

namespace cordon::netfilter::detail {

// An address masked to its prefix length (of the 128-bit form).
using Prefix = std::pair<profile::Ip6, unsigned>;

// One session's trie entries: each distinct prefix with the ports it allows,
// its own and those of every shorter prefix covering it.
using FoldedRules = std::map<Prefix, rule_value>;

// Folds rules into trie entries; fails on an invalid rule or on a prefix
// that would need more than CORDON_MAX_PORT_RANGES port ranges.
Result<FoldedRules> fold_rules(const std::vector<Rule>& rules);

// The trie key of a session's prefix.
rule_key trie_key(uint64_t cgroup_id, const Prefix& prefix);

// "10.0.0.0/8", "fd00::/8": IPv4 for v4-mapped prefixes of at least /96.
std::string format_prefix(const profile::Ip6& addr, unsigned prefix_len);

bool same_value(const rule_value& a, const rule_value& b);

}  // namespace cordon::netfilter::detail
