// SPDX-License-Identifier: Apache-2.0
// Validation of the NHI profile. Each JSON object of the format is one table
// of fields below; the checks that span objects (names that must be defined,
// expiry) run after the tables have read everything.
#include "profile/profile.h"

#include <algorithm>
#include <array>
#include <regex>
#include <set>

#include "profile/fields.h"

namespace cordon::profile {

using detail::Field;
using detail::index_path;
using detail::join_path;
using detail::json;
using detail::read_duration;
using detail::read_object;
using detail::read_string;
using detail::read_url;
using detail::wrong_type;

namespace {

constexpr const char* kApiVersion = "cordon/v1";

// Names that end up in paths, audit events and environment variables.
struct NameRule {
    std::regex pattern;
    const char* expected;
};

const NameRule& identity_name_rule() {
    static const NameRule rule{std::regex("[A-Za-z0-9][A-Za-z0-9._+-]{0,63}"),
                               "1-64 letters, digits, '.', '_', '+' or '-', starting with a "
                               "letter or digit"};
    return rule;
}

const NameRule& key_name_rule() {
    static const NameRule rule{std::regex("[A-Za-z_][A-Za-z0-9_-]{0,63}"),
                               "1-64 letters, digits, '_' or '-', starting with a letter or '_'"};
    return rule;
}

const NameRule& env_name_rule() {
    static const NameRule rule{std::regex("[A-Za-z_][A-Za-z0-9_]*"),
                               "an environment variable name: letters, digits and '_', not "
                               "starting with a digit"};
    return rule;
}

const NameRule& syscall_name_rule() {
    static const NameRule rule{std::regex("@?[a-z0-9_-]+"),
                               "a syscall name such as \"ptrace\" or a group such as \"@mount\""};
    return rule;
}

std::string read_name(const json& value, const std::string& path, const NameRule& rule) {
    const std::string& text = read_string(value, path, std::string("a string of ") + rule.expected);
    if (!std::regex_match(text, rule.pattern)) {
        throw ProfileError(path, "\"" + text + "\" is not valid (expected " + rule.expected + ")");
    }
    return text;
}

// An array of distinct strings, each checked by `rule`.
std::vector<std::string> read_name_list(const json& value, const std::string& path,
                                        const NameRule& rule) {
    if (!value.is_array()) wrong_type(value, path, "an array of strings");
    std::vector<std::string> names;
    for (size_t i = 0; i < value.size(); ++i) {
        std::string name = read_name(value[i], index_path(path, i), rule);
        auto seen = std::find(names.begin(), names.end(), name);
        if (seen != names.end()) {
            throw ProfileError(index_path(path, i), "\"" + name + "\" is listed twice (first at " +
                                                        index_path(path, seen - names.begin()) +
                                                        "; list it once)");
        }
        names.push_back(name);
    }
    return names;
}

// Identity -------------------------------------------------------------------

void read_expires_at(const json& value, const std::string& path, Identity& out) {
    const std::string& text = read_string(value, path, "an RFC 3339 time string");
    try {
        out.expires_at = parse_rfc3339(text);
    } catch (const std::invalid_argument& e) {
        throw ProfileError(path, e.what());
    }
}

constexpr std::array<Field<Identity>, 4> kIdentityFields{{
    {"agentId", true, "an agent id such as \"support-agent\"",
     [](const json& v, const std::string& p, Identity& out) {
         out.agent_id = read_name(v, p, identity_name_rule());
     }},
    {"agentType", true, "an agent type such as \"support\"",
     [](const json& v, const std::string& p, Identity& out) {
         out.agent_type = read_name(v, p, identity_name_rule());
     }},
    {"version", true, "a version such as \"1.4.2\"",
     [](const json& v, const std::string& p, Identity& out) {
         out.version = read_name(v, p, identity_name_rule());
     }},
    {"expiresAt", true, "an RFC 3339 time such as 2027-01-31T00:00:00Z", read_expires_at},
}};

// Session --------------------------------------------------------------------

void read_max_duration(const json& value, const std::string& path, Profile& out) {
    const std::string& text = read_string(value, path, "a duration string such as \"30m\"");
    std::chrono::seconds duration;
    try {
        duration = parse_duration(text);
    } catch (const std::invalid_argument& e) {
        throw ProfileError(path, e.what());
    }
    if (duration.count() <= 0) {
        throw ProfileError(path, "\"" + text + "\" is zero (expected a positive duration)");
    }
    if (duration > kMaxSessionDuration)
        throw ProfileError(path, "\"" + text + "\" is longer than a session may last (366d)");
    out.max_duration = duration;
}

void read_user(const json& value, const std::string& path, Profile& out) {
    const std::string& text = read_string(value, path, "a user name or numeric uid");
    // POSIX portable user names, as useradd accepts them, or a number.
    static const std::regex kUser("[a-z_][a-z0-9_-]{0,31}[$]?|[0-9]{1,10}");
    if (!std::regex_match(text, kUser))
        throw ProfileError(path, "\"" + text + "\" is not a user name or numeric uid");
    // 4294967295 is (uid_t)-1, which setresuid(2) reads as "leave unchanged".
    if (text.find_first_not_of("0123456789") == std::string::npos && std::stoull(text) > kMaxUid)
        throw ProfileError(
            path, "uid " + text + " is out of range (0 to " + std::to_string(kMaxUid) + ")");
    out.user = text;
}

void read_pass_environment(const json& value, const std::string& path, Profile& out) {
    out.pass_environment = read_name_list(value, path, env_name_rule());
}

void read_egress_budget(const json& value, const std::string& path, Profile& out) {
    out.egress_budget =
        detail::read_positive_size(value, path, "leave egressBudget out for no budget");
}

constexpr std::array<Field<Profile>, 4> kSessionFields{{
    {"maxDuration", false, "a duration such as \"30m\"", read_max_duration},
    {"user", false, "a user name such as \"cordon-agent\"", read_user},
    {"passEnvironment", false, "an array of variable names", read_pass_environment},
    {"egressBudget", false, "a size such as \"10M\"", read_egress_budget},
}};

// Tools ----------------------------------------------------------------------

void read_endpoints(const json& value, const std::string& path, Tool& out) {
    if (!value.is_array()) wrong_type(value, path, "an array of endpoint strings");
    for (size_t i = 0; i < value.size(); ++i) {
        std::string at = index_path(path, i);
        const std::string& spec =
            read_string(value[i], at, "an endpoint string such as \"10.0.0.1:443\"");
        try {
            out.endpoints.push_back(parse_endpoint(spec));
        } catch (const std::invalid_argument& e) {
            throw ProfileError(at, e.what());
        }
    }
}

void read_risk(const json& value, const std::string& path, Tool& out) {
    static const std::set<std::string> kRisks{"low", "medium", "high"};
    const std::string& risk = read_string(value, path, "one of \"low\", \"medium\", \"high\"");
    if (!kRisks.contains(risk)) {
        throw ProfileError(path, "\"" + risk + "\" is not a risk (expected low, medium or high)");
    }
    out.risk = risk;
}

constexpr std::array<Field<Tool>, 4> kToolFields{{
    {"endpoints", false, "an array of endpoints", read_endpoints},
    {"credentials", false, "an array of credential names",
     [](const json& v, const std::string& p, Tool& out) {
         out.credentials = read_name_list(v, p, key_name_rule());
     }},
    {"risk", false, "one of low, medium, high", read_risk},
    {"description", false, "a string",
     [](const json& v, const std::string& p, Tool& out) {
         out.description = read_string(v, p, "a string");
     }},
}};

// Credentials ----------------------------------------------------------------

// A delivery: an object with exactly one of "file" or "env".
struct FileOrEnv {
    std::optional<std::string> file;
    std::optional<std::string> env;
};

template <size_t N>
FileOrEnv read_file_or_env(const json& value, const std::string& path,
                           const std::array<Field<FileOrEnv>, N>& fields,
                           const std::string& expected) {
    FileOrEnv draft;
    read_object<FileOrEnv>(value, path, fields, draft);
    if (draft.file.has_value() == draft.env.has_value()) throw ProfileError(path, expected);
    return draft;
}

void read_nonempty(const json& value, const std::string& path, std::string& out) {
    out = read_string(value, path, "a string");
    if (out.empty()) throw ProfileError(path, "is empty");
}

constexpr const char* kClientAuths = "client_secret_basic, client_secret_post or private_key_jwt";

void read_client_auth(const json& value, const std::string& path, OAuthSource& out) {
    out.auth = read_string(value, path, kClientAuths);
    if (out.auth != "client_secret_basic" && out.auth != "client_secret_post" &&
        out.auth != "private_key_jwt")
        throw ProfileError(path,
                           "\"" + out.auth + "\" is not supported (expected " + kClientAuths + ")");
}

// private_key_jwt signs with a key, the others send a secret: the file of
// the one the client authenticates with is required, the other's refused.
void check_client_auth(const OAuthSource& src, const std::string& path) {
    bool jwt = src.auth == "private_key_jwt";
    const char* used = jwt ? "privateKeyFile" : "clientSecretFile";
    const char* unused = jwt ? "clientSecretFile" : "privateKeyFile";
    if ((jwt ? src.private_key_file : src.client_secret_file).empty())
        throw ProfileError(join_path(path, used), "missing (required with auth " + src.auth + ")");
    if (!(jwt ? src.client_secret_file : src.private_key_file).empty())
        throw ProfileError(join_path(path, unused),
                           "is not used with auth " + src.auth + " (remove it)");
    if (!jwt && !src.key_id.empty())
        throw ProfileError(join_path(path, "keyId"), "is used only with auth private_key_jwt");
}

constexpr std::array<Field<OAuthSource>, 11> kOAuthFields{{
    {"tokenUrl", false, "the token endpoint's URL",
     [](const json& v, const std::string& p, OAuthSource& out) { read_url(v, p, out.token_url); }},
    {"issuer", false, "the authorization server's issuer URL",
     [](const json& v, const std::string& p, OAuthSource& out) { read_url(v, p, out.issuer); }},
    {"caBundle", false, "a PEM file of certificate authorities",
     [](const json& v, const std::string& p, OAuthSource& out) {
         read_nonempty(v, p, out.ca_bundle);
     }},
    {"revocationUrl", false, "the revocation endpoint's URL",
     [](const json& v, const std::string& p, OAuthSource& out) {
         read_url(v, p, out.revocation_url);
     }},
    {"clientId", true, "the client's id",
     [](const json& v, const std::string& p, OAuthSource& out) {
         read_nonempty(v, p, out.client_id);
     }},
    {"clientSecretFile", false, "the file of the client's secret",
     [](const json& v, const std::string& p, OAuthSource& out) {
         read_nonempty(v, p, out.client_secret_file);
     }},
    {"privateKeyFile", false, "the PEM file of the client's private key",
     [](const json& v, const std::string& p, OAuthSource& out) {
         read_nonempty(v, p, out.private_key_file);
     }},
    {"keyId", false, "the key's id (kid) in the client's JWK set",
     [](const json& v, const std::string& p, OAuthSource& out) {
         read_nonempty(v, p, out.key_id);
     }},
    {"scope", false, "space-separated scopes",
     [](const json& v, const std::string& p, OAuthSource& out) {
         out.scope = read_string(v, p, "a string of space-separated scopes");
     }},
    {"resource", false, "the resource indicator, a URL",
     [](const json& v, const std::string& p, OAuthSource& out) { read_url(v, p, out.resource); }},
    {"auth", false, kClientAuths, read_client_auth},
}};

struct SourceDraft {
    std::optional<std::string> file;
    std::optional<std::string> env;
    std::optional<OAuthSource> oauth;
    bool exchange = false;  // oauth is a tokenExchange
};

template <bool Exchange>
void read_oauth(const json& value, const std::string& path, SourceDraft& out) {
    if (out.oauth) throw ProfileError(path, "is given with oauth (keep one of the two)");
    out.oauth.emplace();
    out.exchange = Exchange;
    read_object<OAuthSource>(value, path, kOAuthFields, *out.oauth);
    if (out.oauth->token_url.empty() == out.oauth->issuer.empty())
        throw ProfileError(path,
                           "expected exactly one of tokenUrl, issuer (the token "
                           "endpoint, or the issuer whose RFC 8414 metadata names it)");
    check_client_auth(*out.oauth, path);
}

constexpr std::array<Field<SourceDraft>, 4> kSourceFields{{
    {"file", false, "a file path",
     [](const json& v, const std::string& p, SourceDraft& out) {
         out.file = read_string(v, p, "a file path string");
         if (out.file->empty()) throw ProfileError(p, "is empty (expected a file path)");
     }},
    {"env", false, "a variable name",
     [](const json& v, const std::string& p, SourceDraft& out) {
         out.env = read_name(v, p, env_name_rule());
     }},
    {"oauth", false, "an OAuth client credentials object", read_oauth<false>},
    {"tokenExchange", false, "an OAuth token exchange object", read_oauth<true>},
}};

void read_source(const json& value, const std::string& path, Credential& out) {
    SourceDraft draft;
    read_object<SourceDraft>(value, path, kSourceFields, draft);
    if (draft.file.has_value() + draft.env.has_value() + draft.oauth.has_value() != 1) {
        throw ProfileError(path,
                           "expected exactly one of file, env, oauth, tokenExchange ({\"file\": "
                           "PATH}, {\"env\": VARIABLE}, {\"oauth\": {...}} or "
                           "{\"tokenExchange\": {...}})");
    }
    using Kind = CredentialSource::Kind;
    out.source.kind = draft.file       ? Kind::file
                      : draft.env      ? Kind::env
                      : draft.exchange ? Kind::token_exchange
                                       : Kind::oauth;
    out.source.ref = draft.file ? *draft.file : draft.env.value_or("");
    if (draft.oauth) out.source.oauth = std::move(*draft.oauth);
}

constexpr std::array<Field<FileOrEnv>, 2> kDeliverFields{{
    {"env", false, "the agent's environment variable name",
     [](const json& v, const std::string& p, FileOrEnv& out) {
         out.env = read_name(v, p, env_name_rule());
     }},
    {"file", false, "a file name in the agent's credentials directory",
     [](const json& v, const std::string& p, FileOrEnv& out) {
         out.file = read_name(v, p, key_name_rule());
     }},
}};

void read_deliver(const json& value, const std::string& path, Credential& out) {
    auto draft = read_file_or_env(value, path, kDeliverFields,
                                  "expected exactly one of env, file ({\"env\": VARIABLE} or "
                                  "{\"file\": NAME}; leave deliver out for a file named as the "
                                  "credential)");
    out.deliver_env = draft.env.value_or("");
    out.deliver_file = draft.file.value_or("");
}

constexpr std::array<Field<Credential>, 3> kCredentialFields{{
    {"source", true, "a source object such as {\"file\": PATH}", read_source},
    {"deliver", false, "a delivery object such as {\"file\": NAME}", read_deliver},
    {"optional", false, "true or false",
     [](const json& v, const std::string& p, Credential& out) {
         if (!v.is_boolean()) wrong_type(v, p, "true or false");
         out.optional = v.get<bool>();
     }},
}};

// An object of named entries ("tools", "credentials"), each read by `fields`.
template <typename T, size_t N>
void read_named_map(const json& value, const std::string& path,
                    const std::array<Field<T>, N>& fields, std::map<std::string, T>& out) {
    if (!value.is_object()) wrong_type(value, path, "an object of named entries");
    for (const auto& item : value.items()) {
        std::string at = join_path(path, item.key());
        if (!std::regex_match(item.key(), key_name_rule().pattern)) {
            throw ProfileError(
                at, "is not a valid name (expected " + std::string(key_name_rule().expected) + ")");
        }
        T entry;
        entry.name = item.key();
        read_object<T>(item.value(), at, fields, entry);
        out.emplace(item.key(), std::move(entry));
    }
}

// Syscalls -------------------------------------------------------------------

constexpr std::array<Field<SyscallPolicy>, 3> kSyscallFields{{
    {"baseline", false, "a baseline name such as \"agent-default\"",
     [](const json& v, const std::string& p, SyscallPolicy& out) {
         out.baseline = read_name(v, p, key_name_rule());
     }},
    {"allow", false, "an array of syscall names",
     [](const json& v, const std::string& p, SyscallPolicy& out) {
         out.allow = read_name_list(v, p, syscall_name_rule());
     }},
    {"deny", false, "an array of syscall names",
     [](const json& v, const std::string& p, SyscallPolicy& out) {
         out.deny = read_name_list(v, p, syscall_name_rule());
     }},
}};

// DNS ------------------------------------------------------------------------

constexpr std::array<Field<DnsPolicy>, 2> kDnsFields{{
    {"minTtl", false, "a duration such as \"5s\"",
     [](const json& v, const std::string& p, DnsPolicy& out) {
         out.min_ttl = read_duration(v, p);
     }},
    {"maxTtl", false, "a duration such as \"1h\"",
     [](const json& v, const std::string& p, DnsPolicy& out) {
         out.max_ttl = read_duration(v, p);
         if (out.max_ttl.count() <= 0)
             throw ProfileError(p, "is zero (expected a positive duration)");
     }},
}};

void read_dns(const json& value, const std::string& path, Profile& out) {
    read_object<DnsPolicy>(value, path, kDnsFields, out.dns);
    if (out.dns.min_ttl > out.dns.max_ttl) {
        throw ProfileError(join_path(path, "minTtl"),
                           "is longer than maxTtl (make minTtl at most maxTtl)");
    }
}

// Filesystem -----------------------------------------------------------------

// An array of distinct absolute paths. Relative ones are refused: a rule
// must name the same file whatever directory agent-run starts in.
std::vector<std::string> read_path_list(const json& value, const std::string& path) {
    if (!value.is_array()) wrong_type(value, path, "an array of absolute paths");
    std::vector<std::string> paths;
    for (size_t i = 0; i < value.size(); ++i) {
        std::string at = index_path(path, i);
        const std::string& text =
            read_string(value[i], at, "an absolute path such as \"/usr/bin\"");
        if (text.empty() || text[0] != '/')
            throw ProfileError(at, "\"" + text +
                                       "\" is not an absolute path (write it from /, "
                                       "such as \"/srv/workspace\")");
        if (std::find(paths.begin(), paths.end(), text) != paths.end())
            throw ProfileError(at, "\"" + text + "\" is listed twice (list it once)");
        paths.push_back(text);
    }
    return paths;
}

constexpr std::array<Field<FilesystemPolicy>, 3> kFilesystemFields{{
    {"read", false, "an array of paths",
     [](const json& v, const std::string& p, FilesystemPolicy& out) {
         out.read = read_path_list(v, p);
     }},
    {"write", false, "an array of paths",
     [](const json& v, const std::string& p, FilesystemPolicy& out) {
         out.write = read_path_list(v, p);
     }},
    {"execute", false, "an array of paths",
     [](const json& v, const std::string& p, FilesystemPolicy& out) {
         out.execute = read_path_list(v, p);
     }},
}};

// The document ---------------------------------------------------------------

void read_api_version(const json& value, const std::string& path, Profile& out) {
    const std::string& version = read_string(value, path, "the string \"cordon/v1\"");
    if (version != kApiVersion) {
        throw ProfileError(path, "\"" + version + "\" is not supported (expected \"" +
                                     std::string(kApiVersion) + "\")");
    }
    out.api_version = version;
}

constexpr std::array<Field<Profile>, 14> kProfileFields{{
    {"apiVersion", true, "\"cordon/v1\"", read_api_version},
    {"identity", true, "an identity object with agentId, agentType, version, expiresAt",
     [](const json& v, const std::string& p, Profile& out) {
         read_object<Identity>(v, p, kIdentityFields, out.identity);
     }},
    {"session", false, "a session object",
     [](const json& v, const std::string& p, Profile& out) {
         read_object<Profile>(v, p, kSessionFields, out);
     }},
    {"allowedTools", false, "an array of tool names",
     [](const json& v, const std::string& p, Profile& out) {
         out.allowed_tools = read_name_list(v, p, key_name_rule());
     }},
    {"deniedTools", false, "an array of tool names",
     [](const json& v, const std::string& p, Profile& out) {
         out.denied_tools = read_name_list(v, p, key_name_rule());
     }},
    {"approvalRequired", false, "an array of tool names",
     [](const json& v, const std::string& p, Profile& out) {
         out.approval_required = read_name_list(v, p, key_name_rule());
     }},
    {"tools", false, "an object of tool definitions",
     [](const json& v, const std::string& p, Profile& out) {
         read_named_map(v, p, kToolFields, out.tools);
     }},
    {"credentials", false, "an object of credential definitions",
     [](const json& v, const std::string& p, Profile& out) {
         read_named_map(v, p, kCredentialFields, out.credentials);
     }},
    {"syscalls", false, "a syscalls object",
     [](const json& v, const std::string& p, Profile& out) {
         read_object<SyscallPolicy>(v, p, kSyscallFields, out.syscalls);
     }},
    {"dns", false, "a dns object such as {\"minTtl\": \"5s\", \"maxTtl\": \"1h\"}", read_dns},
    {"filesystem", false, "a filesystem object such as {\"read\": [...], \"write\": [...]}",
     [](const json& v, const std::string& p, Profile& out) {
         read_object<FilesystemPolicy>(v, p, kFilesystemFields, out.filesystem.emplace());
     }},
    {"limits", false, "a limits object such as {\"pids\": 256, \"memory\": \"2G\"}",
     detail::read_limits},
    {"launchers", false, "a launchers object such as {\"users\": [\"alice\"], \"groups\": []}",
     detail::read_launchers},
    {"approval", false, "an approval object such as {\"approvers\": {\"users\": [\"bob\"]}}",
     detail::read_approval},
}};

}  // namespace

// A size string ("10M") or a plain number of bytes, either as a string or
// as a JSON integer.
uint64_t detail::read_positive_size(const json& value, const std::string& path,
                                    const std::string& unset_hint) {
    uint64_t bytes = 0;
    if (value.is_number_unsigned()) {
        bytes = value.get<uint64_t>();
    } else if (value.is_number_integer()) {
        if (value.get<int64_t>() < 0)
            throw ProfileError(path, "is negative (expected a positive size such as \"10M\")");
        bytes = value.get<uint64_t>();
    } else {
        if (!value.is_string()) wrong_type(value, path, "a size string such as \"10M\"");
        try {
            bytes = parse_size(value.get<std::string>());
        } catch (const std::invalid_argument& e) {
            throw ProfileError(path, e.what());
        }
    }
    if (bytes == 0)
        throw ProfileError(path, "is zero (expected a positive size; " + unset_hint + ")");
    return bytes;
}

namespace {

// Cross-object checks ----------------------------------------------------------

bool contains(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

void check_tools_defined(const Profile& p, const std::vector<std::string>& names,
                         const std::string& list) {
    for (size_t i = 0; i < names.size(); ++i) {
        if (!p.tools.contains(names[i])) {
            throw ProfileError(index_path(list, i), "tool \"" + names[i] +
                                                        "\" is not defined (define it under "
                                                        "tools or remove it from " +
                                                        list + ")");
        }
    }
}

void check_credentials_defined(const Profile& p) {
    for (const auto& [name, tool] : p.tools) {
        for (size_t i = 0; i < tool.credentials.size(); ++i) {
            if (p.credentials.contains(tool.credentials[i])) continue;
            throw ProfileError(index_path("tools." + name + ".credentials", i),
                               "credential \"" + tool.credentials[i] +
                                   "\" is not defined (define it under credentials or remove it)");
        }
    }
}

// A credential without deliver is a file named as the credential.
void default_deliveries(Profile& p) {
    for (auto& [name, cred] : p.credentials)
        if (cred.deliver_env.empty() && cred.deliver_file.empty()) cred.deliver_file = name;
}

// Only an issued token can fail for reasons outside the profile (a server
// down); a static source that cannot be read is a mistake to fix.
void check_optional_issued(const Profile& p) {
    for (const auto& [name, cred] : p.credentials)
        if (cred.optional && !cred.source.issued())
            throw ProfileError("credentials." + name + ".optional",
                               "applies to oauth and tokenExchange sources only (a file or "
                               "variable that cannot be read stops the launch; remove optional)");
}

// Two credentials delivered in one variable or one file would silently hide
// one another.
void check_deliveries_unique(const Profile& p) {
    std::map<std::string, std::string> owner;  // "env"/"file" and its name -> credential
    for (const auto& [name, cred] : p.credentials) {
        bool env = !cred.deliver_env.empty();
        const std::string& target = env ? cred.deliver_env : cred.deliver_file;
        auto [it, inserted] = owner.emplace((env ? "env " : "file ") + target, name);
        if (!inserted) {
            throw ProfileError("credentials." + name + (env ? ".deliver.env" : ".deliver.file"),
                               "\"" + target + "\" is already delivered by credential \"" +
                                   it->second + "\" (use another " +
                                   (env ? "variable" : "file name") + ")");
        }
    }
}

// The agent's environment is fixed when it starts; a credential issued by
// a later grant can only appear in its credentials directory.
void check_grant_deliveries(const Profile& p) {
    const auto tools = grantable_tools(p);
    for (const std::string& name : grant_only_credentials(p)) {
        const Credential& cred = p.credentials.at(name);
        if (cred.deliver_env.empty()) continue;
        const std::string& tool = *std::find_if(tools.begin(), tools.end(), [&](const auto& t) {
            return contains(p.tools.at(t).credentials, name);
        });
        const std::string hint =
            "deliver it as a file: {\"file\": \"" + name + "\"}, or leave deliver out";
        throw ProfileError("credentials." + name + ".deliver.env",
                           "\"" + cred.deliver_env + "\" cannot reach the agent: " + tool +
                               " is in approvalRequired, so its credential is issued only when "
                               "a human grants it, after the agent started, and the agent's "
                               "environment cannot change then (" +
                               hint + ")");
    }
}

void check_not_expired(const Identity& identity, TimePoint now) {
    if (identity.expires_at <= now) {
        throw ProfileError("identity.expiresAt",
                           "expired at " + format_rfc3339(identity.expires_at) +
                               " (issue the agent a profile with a later expiresAt)");
    }
}

}  // namespace

std::vector<std::string> grantable_tools(const Profile& profile) {
    std::vector<std::string> out;
    for (const std::string& t : profile.approval_required)
        if (!contains(profile.denied_tools, t)) out.push_back(t);
    return out;
}

std::set<std::string> grant_only_credentials(const Profile& profile) {
    std::set<std::string> at_start, granted;
    for (const auto& [name, tool] : profile.tools)
        if (contains(profile.allowed_tools, name) && !contains(profile.denied_tools, name) &&
            !contains(profile.approval_required, name))
            at_start.insert(tool.credentials.begin(), tool.credentials.end());
    for (const std::string& t : grantable_tools(profile))
        for (const std::string& c : profile.tools.at(t).credentials)
            if (!at_start.contains(c)) granted.insert(c);
    return granted;
}

ProfileError::ProfileError(std::string path, const std::string& reason)
    : std::runtime_error(path.empty() ? reason : path + ": " + reason),
      path_(std::move(path)),
      reason_(reason) {}

ProfileError::ProfileError(const std::string& file, std::string path, const std::string& reason)
    : std::runtime_error(file + ": " + (path.empty() ? reason : path + ": " + reason)),
      path_(std::move(path)),
      reason_(reason) {}

Profile parse_profile(const nlohmann::json& doc, TimePoint now) {
    Profile profile;
    read_object<Profile>(doc, "", kProfileFields, profile);

    check_tools_defined(profile, profile.allowed_tools, "allowedTools");
    check_tools_defined(profile, profile.denied_tools, "deniedTools");
    check_tools_defined(profile, profile.approval_required, "approvalRequired");
    check_credentials_defined(profile);
    default_deliveries(profile);
    check_deliveries_unique(profile);
    check_optional_issued(profile);
    check_grant_deliveries(profile);
    detail::check_approval(profile);
    check_not_expired(profile.identity, now);
    return profile;
}

}  // namespace cordon::profile
