// SPDX-License-Identifier: Apache-2.0
// The NHI profile: who the agent is, which tools it may use, until when.
// Parsing validates everything; every error names the JSON path and the
// reason. The format is documented in README.md and profiles/profile.schema.json.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace cordon::profile {

using Clock = std::chrono::system_clock;
using TimePoint = std::chrono::time_point<Clock, std::chrono::seconds>;

enum class Protocol : uint8_t { tcp = 1, udp = 2 };

// 16 bytes, network order. IPv4 is stored v4-mapped (::ffff:a.b.c.d).
using Ip6 = std::array<uint8_t, 16>;

struct PortRange {
    uint16_t first = 0;
    uint16_t last = 0;
};

// One endpoint as written in a tool: "[tcp://|udp://]HOST:PORT[-PORT]".
// HOST is an IPv4 or IPv6 address ("[::1]" in brackets), a CIDR
// ("10.0.0.0/8", "[fd00::/8]") or a DNS name.
struct Endpoint {
    std::string spec;  // as written, for messages
    Protocol protocol = Protocol::tcp;
    // Set for a DNS name, lowercase: "api.example.com", or "*.example.com" for every
    // name below example.com; address and prefix are unused then.
    std::string hostname;
    Ip6 address{};             // for a literal or CIDR
    uint8_t prefix_len = 128;  // over the 128-bit form: IPv4 /N is 96+N
    PortRange ports;
};

struct Tool {
    std::string name;
    std::vector<Endpoint> endpoints;
    std::vector<std::string> credentials;  // names of entries in Profile::credentials
    std::string risk = "low";              // "low", "medium", "high"
    std::string description;               // for people; optional
};

// An OAuth 2.1 client credentials grant (RFC 6749 section 4.4) for the
// tool's API: the token endpoint given directly, or found from the issuer's
// metadata (RFC 8414). Exactly one of token_url and issuer is set.
struct OAuthSource {
    std::string token_url;
    std::string issuer;          // RFC 8414 discovery at session start
    std::string revocation_url;  // RFC 7009; empty: the issuer's, or none
    std::string ca_bundle;       // PEM file of the CAs to trust; empty: the system's
    std::string client_id;
    std::string client_secret_file;            // a secret at rest, as a file source
    std::string private_key_file;              // for private_key_jwt, instead of the secret
    std::string key_id;                        // private_key_jwt: the JWT header's kid
    std::string scope;                         // space-separated; empty: the server's default
    std::string resource;                      // RFC 8707 resource indicator; may be empty
    std::string auth = "client_secret_basic";  // or "client_secret_post", "private_key_jwt"
};

// Where a credential's secret comes from: static (a file, a variable of the
// supervisor's environment) or a token issued for the session, by the
// client credentials grant (oauth) or by exchanging the launching user's
// token for a narrower one naming the agent as actor (token_exchange, RFC
// 8693), both with an OAuthSource.
struct CredentialSource {
    enum class Kind { file, env, oauth, token_exchange };
    Kind kind = Kind::file;
    std::string ref;    // the file path or the supervisor's variable name
    OAuthSource oauth;  // when kind is oauth or token_exchange
    bool issued() const { return kind == Kind::oauth || kind == Kind::token_exchange; }
};

struct Credential {
    std::string name;
    CredentialSource source;
    // Exactly one is set: the environment variable the agent receives it in,
    // or the file's name in its credentials directory (the default: the
    // credential's own name).
    std::string deliver_env;
    std::string deliver_file;
    // An optional credential that cannot be issued is left out of the
    // session (and audited) instead of stopping the launch.
    bool optional = false;
};

struct Identity {
    std::string agent_id;
    std::string agent_type;
    std::string version;
    TimePoint expires_at;
};

struct SyscallPolicy {
    std::string baseline = "agent-default";
    std::vector<std::string> allow;  // syscalls or @groups added to the baseline
    std::vector<std::string> deny;   // syscalls or @groups refused with EPERM
};

// dns: how long an address learned from a DNS answer stays allowed. The
// record's TTL, raised to min_ttl and cut to max_ttl.
struct DnsPolicy {
    std::chrono::seconds min_ttl{5};
    std::chrono::seconds max_ttl{3600};
};

// filesystem: the paths the agent may read, write (read too) and execute
// (read too), enforced by Landlock. Absolute paths, as written.
struct FilesystemPolicy {
    std::vector<std::string> read;
    std::vector<std::string> write;
    std::vector<std::string> execute;
};

// limits: what the session may use. Unset: no limit.
struct Limits {
    std::optional<uint64_t> pids;    // tasks (processes and threads)
    std::optional<uint64_t> memory;  // bytes
    // A share of one CPU in percent: 50 is half a CPU, 200 two CPUs.
    std::optional<uint64_t> cpu_percent;
    bool any() const { return pids || memory || cpu_percent; }
};

// The longest session.maxDuration: a session is a task's lifetime, not
// the identity's (expiresAt bounds that).
inline constexpr std::chrono::seconds kMaxSessionDuration{366 * 24 * 3600};

// The largest uid or gid an agent may run as: (uid_t)-1 means "unchanged"
// to setresuid(2) and setresgid(2).
inline constexpr uint64_t kMaxUid = 4294967294;

// launchers: who may start a session of this profile through cordond.
// User and group names, or numeric ids, as written. Both empty: only root.
struct Launchers {
    std::vector<std::string> users;
    std::vector<std::string> groups;
};

// approval.webhook: where new approval requests are announced, as a JSON
// body signed with HMAC-SHA256 under the key in secret_file.
struct ApprovalWebhook {
    // Exactly one of the two: the URL itself, or a protected file holding it
    // (a chat's incoming-webhook URL is itself a credential).
    std::string url;
    std::string url_file;     // absolute once loaded (relative: to the profile's directory)
    std::string secret_file;  // absolute once loaded (relative: to the profile's directory)
    std::string ca_bundle;    // "" for the system's CAs
};

// approval: how the tools of approvalRequired are opened, by whom and for how long.
struct ApprovalPolicy {
    // Who may grant or deny. Both empty: only root.
    Launchers approvers;
    // Whether the session's launcher and the agent's own account may decide
    // its requests; by default they may not, whatever approvers says.
    bool allow_self_approval = false;
    // A request nobody decides is denied after this long.
    std::chrono::seconds request_timeout{15 * 60};
    // The longest window one grant may open.
    std::chrono::seconds max_window{60 * 60};
    // After a denial, the tool's attempts and asks make no new request for
    // this long, so that an agent cannot wear its approvers down; 0: none.
    std::chrono::seconds deny_cooldown{60};
    std::optional<ApprovalWebhook> webhook;
};

struct Profile {
    std::string api_version;  // "cordon/v1"
    Identity identity;
    std::optional<std::chrono::seconds> max_duration;
    // session.user: the account the agent runs as (name or numeric uid, at
    // most kMaxUid).
    // Unset: the launching user if not root, else an unprivileged account.
    std::optional<std::string> user;
    // session.passEnvironment: variables of the launcher's environment the
    // agent may see, beyond the locale and terminal ones it always gets.
    std::vector<std::string> pass_environment;
    // session.egressBudget: bytes the session may send in all; unset: no cap.
    std::optional<uint64_t> egress_budget;
    std::vector<std::string> allowed_tools;
    std::vector<std::string> denied_tools;
    std::vector<std::string> approval_required;
    std::map<std::string, Tool> tools;
    std::map<std::string, Credential> credentials;
    SyscallPolicy syscalls;
    DnsPolicy dns;
    // Unset: no Landlock ruleset, the agent's account decides what it reaches.
    std::optional<FilesystemPolicy> filesystem;
    Limits limits;
    Launchers launchers;
    ApprovalPolicy approval;
};

// A profile that cannot be used. path is where in the document
// ("tools.lookup_order.endpoints[0]"); what() is "PATH: REASON".
// load_profile prefixes the file name: "FILE: PATH: REASON"; a JSON syntax
// error has an empty path and reads "FILE: parse error at line L, column C: ...".
class ProfileError : public std::runtime_error {
  public:
    ProfileError(std::string path, const std::string& reason);
    ProfileError(const std::string& file, std::string path, const std::string& reason);
    const std::string& path() const { return path_; }
    const std::string& reason() const { return reason_; }

  private:
    std::string path_;
    std::string reason_;
};

// Validates a parsed document. Throws ProfileError. `now` decides expiry:
// a profile whose expiresAt is not after `now` is refused.
Profile parse_profile(const nlohmann::json& doc, TimePoint now);

// The tools a human's grant opens: those in approvalRequired that
// deniedTools does not close for good (deny wins, as in policy/policy.h).
std::vector<std::string> grantable_tools(const Profile& profile);

// The credentials only a grant issues: those of grantable tools that no
// tool open from the start (allowed, neither denied nor approval-required)
// uses. Such a credential reaches the agent after it started, so only as a
// file: parse_profile refuses one delivered by env.
std::set<std::string> grant_only_credentials(const Profile& profile);

// Reads FILE, parses JSON (syntax errors name line and column) and validates.
// Throws ProfileError whose message starts with the file name.
Profile load_profile(const std::string& file, TimePoint now);

// "30m", "1h30m", "45s", "2h", "1d": a duration. Throws std::invalid_argument.
std::chrono::seconds parse_duration(const std::string& text);

// "65536", "512K", "10M", "1G", "2T": a size in bytes, units binary (K is
// 1024). Throws std::invalid_argument.
uint64_t parse_size(const std::string& text);

// RFC 3339 date-time ("2027-01-31T00:00:00Z", "...+02:00", fractional
// seconds allowed). Throws std::invalid_argument.
TimePoint parse_rfc3339(const std::string& text);
std::string format_rfc3339(TimePoint t);

// "[tcp://|udp://]HOST:PORT[-PORT]". Throws std::invalid_argument.
Endpoint parse_endpoint(const std::string& spec);

// A "*.example.com" endpoint: matched against DNS queries, never resolved ahead.
bool is_wildcard(const Endpoint& endpoint);

// The v4-mapped form (::ffff:a.b.c.d) of an IPv4 address, four bytes in
// network order: how IPv4 is kept everywhere in Cordon.
Ip6 v4_mapped(const void* ipv4);

// "::ffff:127.0.0.1" -> "127.0.0.1"; other IPv6 in RFC 5952 form.
std::string format_ip(const Ip6& addr);

}  // namespace cordon::profile
