// SPDX-License-Identifier: Apache-2.0
// OAuth 2.1 client credentials end to end (issue 5), against oidc-provider
// on loopback: the session's token has exactly the profile's scope and
// resource, is active while the session runs and revoked when it ends, and
// a refusing or unreachable server stops the launch.
#include <sys/stat.h>

#include <sstream>

#include "agent_run_fixture.h"
#include "creds/oauth.h"
#include "launch/session.h"
#include "oauth_server.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

constexpr const char* kResource = "https://orders.test/";
constexpr const char* kShortLived = "https://short-lived.test/";

class OAuthTest : public AgentRunTest {
  protected:
    void SetUp() override {
        AgentRunTest::SetUp();
        if (IsSkipped()) return;
        if (auto why = OAuthServer::missing(); !why.empty()) GTEST_SKIP() << why;
        server_ = std::make_unique<OAuthServer>();
        ASSERT_TRUE(server_->running()) << "oidc-provider did not start (tests/oauth/server.js)";
    }

    // Restarts the server with server.js's options ("--ttl", "--tls").
    void restart_server(std::vector<std::string> options) {
        server_.reset();
        server_ = std::make_unique<OAuthServer>(std::move(options));
        ASSERT_TRUE(server_->running()) << "oidc-provider did not start (tests/oauth/server.js)";
    }

    // The oauth source of credential "orders", with the client's secret in a
    // protected file; `changes` are merged into it (null removes a key).
    json oauth_source(const std::string& secret, const json& changes = json::object()) {
        auto secret_file = dir_ / "client-secret";
        write_text(secret_file, secret + "\n");
        EXPECT_EQ(::chmod(secret_file.c_str(), 0600), 0);
        json oauth = {{"tokenUrl", server_->url("/token")},
                      {"revocationUrl", server_->url("/token/revocation")},
                      {"clientId", OAuthServer::kClientId},
                      {"clientSecretFile", secret_file.string()},
                      {"scope", "orders:read"},
                      {"resource", kResource}};
        oauth.merge_patch(changes);
        return oauth;
    }

    // A profile whose allowed tool needs credential "orders" from `oauth`;
    // `credential` is merged into the credential's object.
    fs::path profile_with(const json& oauth, const std::string& max_duration = "5m",
                          const json& credential = json::object()) {
        json cred = {{"source", {{"oauth", oauth}}}};
        cred.merge_patch(credential);
        json extra = {{"tools", {{"allowed_tool", {{"credentials", {"orders"}}}}}},
                      {"credentials", {{"orders", cred}}}};
        return write_profile({}, {}, max_duration, extra);
    }

    fs::path profile_with_oauth(const std::string& secret, const std::string& token_url,
                                const std::string& max_duration = "5m") {
        return profile_with(oauth_source(secret, {{"tokenUrl", token_url}}), max_duration);
    }

    // A profile asking for a token of kShortLived, which the restarted
    // server gives 6 seconds of life.
    fs::path short_lived_profile() {
        restart_server({"--ttl", std::string(kShortLived) + "=6"});
        return profile_with(oauth_source(OAuthServer::kClientSecret, {{"resource", kShortLived}}));
    }

    // The agent's shell loop that waits until the test creates `file`.
    static std::string wait_for(const fs::path& file) {
        return "while [ ! -e " + file.string() + " ]; do sleep 0.05; done";
    }

    // Waits until the agent has written `file`, and returns what it wrote.
    static std::string await_file(const fs::path& file) {
        for (int i = 0; i < 1000 && read_text(file).empty(); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return read_text(file);
    }

    // The server's introspection (RFC 7662) of `token`, with curl(1).
    json introspect(const std::string& token) {
        std::string out = server_->introspection(token, curl_options_);
        json reply = json::parse(out, nullptr, false);
        if (reply.is_discarded()) ADD_FAILURE() << "introspection answered: " << out;
        return reply.is_discarded() ? json::object() : reply;
    }

    void expect_discovery_works(const std::vector<std::string>& options);
    void expect_issued_then_revoked(const fs::path& profile);
    std::string user_token(const std::string& sub);
    json jwt_source(const fs::path& key);
    void expect_private_key_jwt_works(const std::string& algorithm_args);
    fs::path exchange_profile(const std::string& scope, const fs::path& user_file,
                              const std::string& user);

    std::unique_ptr<OAuthServer> server_;
    std::string curl_options_;  // for introspect(): "--cacert FILE" under TLS
};

TEST_F(OAuthTest, TokenHasTheProfilesScopeAndResourceAndIsRevokedAtExit) {
    auto seen = dir_ / "seen", done = dir_ / "done";
    auto profile = profile_with_oauth(OAuthServer::kClientSecret, server_->url("/token"));
    pid_t pid = start(
        {"--profile", profile, "--", "sh", "-c",
         "cat \"$CREDENTIALS_DIRECTORY/orders\" > " + seen.string() + " && " + wait_for(done)});
    for (int i = 0; i < 500 && read_text(seen).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::string token = read_text(seen);
    json during = introspect(token);
    write_text(done, "");
    auto r = wait(pid);
    json after = introspect(token);

    ASSERT_FALSE(token.empty()) << "the agent never read its token: " << r.err;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(during.value("active", false), true) << during.dump();
    EXPECT_EQ(during.value("scope", ""), "orders:read") << during.dump();
    EXPECT_EQ(during.value("aud", ""), kResource) << during.dump();
    EXPECT_EQ(during.value("client_id", ""), OAuthServer::kClientId) << during.dump();
    EXPECT_EQ(after.value("active", true), false) << after.dump();

    std::string audit = read_text(audit_log_);
    EXPECT_EQ(audit.find(token), std::string::npos) << "the token is in the audit log";
    EXPECT_EQ(r.err.find(token), std::string::npos) << "the token is in agent-run's output";
    EXPECT_EQ(audit.find(OAuthServer::kClientSecret), std::string::npos);
    auto events = audit_events();
    auto issued = events_named(events, "credential.issue");
    auto revoked = events_named(events, "credential.revoke");
    ASSERT_EQ(issued.size(), 1u) << audit;
    ASSERT_EQ(revoked.size(), 1u) << audit;
    EXPECT_EQ(issued[0]["credential"], "orders");
    EXPECT_EQ(issued[0]["fingerprint"], creds::fingerprint(token));
    EXPECT_EQ(issued[0]["scope"], "orders:read");
    EXPECT_EQ(revoked[0]["fingerprint"], creds::fingerprint(token));
    EXPECT_EQ(revoked[0]["revoked"], true) << revoked[0].dump();
}

TEST_F(OAuthTest, TokenIsRevokedWhenTheDeadlineKillsTheSession) {
    auto seen = dir_ / "seen";
    auto profile = profile_with_oauth(OAuthServer::kClientSecret, server_->url("/token"), "2s");
    auto r = run({"--profile", profile, "--", "sh", "-c",
                  "cat \"$CREDENTIALS_DIRECTORY/orders\" > " + seen.string() + "; sleep 30"});
    std::string token = read_text(seen);
    ASSERT_FALSE(token.empty()) << "the agent never read its token: " << r.err;
    EXPECT_EQ(r.exit_code, launch::kExitDeadline) << r.err;
    EXPECT_EQ(introspect(token).value("active", true), false);
    auto revoked = events_named(audit_events(), "credential.revoke");
    ASSERT_EQ(revoked.size(), 1u);
    EXPECT_EQ(revoked[0]["revoked"], true) << revoked[0].dump();
}

// How many times agent-run's debug log says it tried `url` again.
size_t retries_of(const std::string& log, const std::string& url) {
    size_t n = 0;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);)
        n += line.find(url + ": ") != std::string::npos &&
             line.find(", trying again") != std::string::npos;
    return n;
}

TEST_F(OAuthTest, WrongClientSecretStopsTheLaunchWithTheServersError) {
    auto r = run({"--log-level", "debug", "--profile",
                  profile_with_oauth("not-the-secret", server_->url("/token")), "--", "true"});
    EXPECT_EQ(retries_of(r.err, server_->url("/token")), 0u) << "a refusal is not tried again";
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("credentials.orders: the token endpoint " + server_->url("/token") +
                         " refused: HTTP 401: invalid_client"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find("not-the-secret"), std::string::npos) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(OAuthTest, ClientSecretReadableByOthersIsRefusedByCheckToo) {
    auto profile = profile_with_oauth(OAuthServer::kClientSecret, server_->url("/token"));
    auto secret_file = dir_ / "client-secret";
    ASSERT_EQ(::chmod(secret_file.c_str(), 0644), 0);
    for (const auto& args : {std::vector<std::string>{"--check", "--profile", profile},
                             std::vector<std::string>{"--profile", profile, "--", "true"}}) {
        auto r = run(args);
        EXPECT_EQ(r.exit_code, 125) << r.err;
        EXPECT_NE(r.err.find("credentials.orders.source.oauth.clientSecretFile: " +
                             secret_file.string() + " has mode 0644"),
                  std::string::npos)
            << r.err;
        EXPECT_EQ(r.err.find(OAuthServer::kClientSecret), std::string::npos) << r.err;
    }
}

TEST_F(OAuthTest, UnreachableServerStopsTheLaunch) {
    uint16_t port = Listener::on("127.0.0.1").port;  // closed again: connections are refused
    std::string url = "http://127.0.0.1:" + std::to_string(port) + "/token";
    auto r = run({"--log-level", "debug", "--profile",
                  profile_with_oauth(OAuthServer::kClientSecret, url), "--", "true"});
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("credentials.orders: cannot reach " + url), std::string::npos) << r.err;
    EXPECT_EQ(retries_of(r.err, url), 2u) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(OAuthTest, TokenRequestIsTriedAgainAfterServerErrors) {
    restart_server({"--fail-token", "2"});
    auto r = run({"--log-level", "debug", "--profile",
                  profile_with(oauth_source(OAuthServer::kClientSecret)), "--", "sh", "-c",
                  "test -s \"$CREDENTIALS_DIRECTORY/orders\""});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(retries_of(r.err, server_->url("/token")), 2u) << r.err;
    EXPECT_NE(r.err.find(server_->url("/token") + ": HTTP 503, trying again"), std::string::npos)
        << r.err;
    EXPECT_EQ(events_named(audit_events(), "credential.issue").size(), 1u);
}

TEST_F(OAuthTest, RefreshThatFailsIsAuditedAndTheTokenKept) {
    auto seen = dir_ / "seen", done = dir_ / "done", after = dir_ / "after";
    auto profile = short_lived_profile();
    std::string file = "\"$CREDENTIALS_DIRECTORY/orders\"";
    pid_t pid = start({"--profile", profile, "--", "sh", "-c",
                       "cat " + file + " > " + seen.string() + "; " + wait_for(done) + "; cat " +
                           file + " > " + after.string()});
    std::string token = await_file(seen);
    server_.reset();  // the refresh at 4 s finds nobody
    for (int i = 0; i < 500; ++i) {
        if (!events_named(audit_events(), "credential.refresh.error").empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    write_text(done, "");
    auto r = wait(pid);

    ASSERT_FALSE(token.empty()) << r.err;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(read_text(after), token) << "the file still holds the token it had";
    auto events = audit_events();
    auto failed = events_named(events, "credential.refresh.error");
    ASSERT_GE(failed.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(failed[0]["credential"], "orders");
    EXPECT_EQ(failed[0]["fingerprint"], creds::fingerprint(token));
    EXPECT_TRUE(failed[0]["expiresAt"].is_string());
    EXPECT_EQ(failed[0]["retry"], false) << "the next try would come less than 2 s before expiry";
    EXPECT_NE(failed[0]["error"].get<std::string>().find("cannot reach"), std::string::npos)
        << failed[0].dump();
    auto unrevoked = events_named(events, "credential.revoke.error");
    ASSERT_EQ(unrevoked.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(unrevoked[0]["fingerprint"], creds::fingerprint(token));
    EXPECT_EQ(unrevoked[0]["expiresAt"], failed[0]["expiresAt"]);
}

TEST_F(OAuthTest, ShortLivedTokenIsRefreshedAndItsFileReplaced) {
    auto first = dir_ / "first", second = dir_ / "second", done = dir_ / "done";
    auto profile = short_lived_profile();
    // Refreshed at 4 s, two thirds of its 6 s: read before and after.
    std::string file = "\"$CREDENTIALS_DIRECTORY/orders\"";
    pid_t pid = start({"--profile", profile, "--", "sh", "-c",
                       "cat " + file + " > " + first.string() + "; sleep 5; cat " + file + " > " +
                           second.string() + "; " + wait_for(done)});
    std::string old_token = await_file(first), new_token = await_file(second);
    json old_now = introspect(old_token), new_now = introspect(new_token);
    write_text(done, "");
    auto r = wait(pid);

    ASSERT_FALSE(old_token.empty()) << r.err;
    ASSERT_FALSE(new_token.empty()) << r.err;
    EXPECT_NE(old_token, new_token);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(old_now.value("active", true), false) << old_now.dump();
    EXPECT_EQ(new_now.value("active", false), true) << new_now.dump();
    EXPECT_EQ(new_now.value("aud", ""), kShortLived) << new_now.dump();
    EXPECT_EQ(new_now.value("scope", ""), "orders:read") << new_now.dump();
    auto events = audit_events();
    auto refreshed = events_named(events, "credential.refresh");
    ASSERT_GE(refreshed.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(refreshed[0]["credential"], "orders");
    EXPECT_EQ(refreshed[0]["previous"], creds::fingerprint(old_token));
    EXPECT_EQ(refreshed[0]["fingerprint"], creds::fingerprint(new_token));
    EXPECT_EQ(refreshed[0]["expiresIn"], 6);
    auto revoked = events_named(events, "credential.revoke");
    ASSERT_GE(revoked.size(), 2u) << read_text(audit_log_);
    EXPECT_EQ(revoked[0]["fingerprint"], creds::fingerprint(old_token));
    EXPECT_EQ(revoked[0]["revoked"], true);
    std::string audit = read_text(audit_log_);
    EXPECT_EQ(audit.find(old_token), std::string::npos);
    EXPECT_EQ(audit.find(new_token), std::string::npos);
}

// An agent that exits at once may take the session's init with it before
// agent-run opens the credentials directory for refreshes: the session
// then simply ends, with the agent's status (it used to be a 125).
TEST_F(OAuthTest, QuickAgentWithARefreshedFileTokenExitsWithItsOwnStatus) {
    auto profile = short_lived_profile();
    for (int i = 0; i < 8; i++) {
        auto r = run({"--profile", profile, "--", "true"});
        EXPECT_EQ(r.exit_code, 0) << "run " << i << ": " << r.err;
    }
    auto events = audit_events();
    EXPECT_EQ(events_named(events, "session.end").size(), 8u) << read_text(audit_log_);
    EXPECT_TRUE(events_named(events, "session.error").empty()) << read_text(audit_log_);
}

TEST_F(OAuthTest, CheckSaysWhichDeliveriesRotate) {
    json extra = {{"credentials",
                   {{"in_env",
                     {{"source", {{"oauth", oauth_source(OAuthServer::kClientSecret)}}},
                      {"deliver", {{"env", "IN_ENV"}}}}}}},
                  {"tools", {{"allowed_tool", {{"credentials", {"orders", "in_env"}}}}}}};
    auto profile = profile_with(oauth_source(OAuthServer::kClientSecret));
    json doc = json::parse(read_text(profile));
    doc.merge_patch(extra);
    write_text(profile, doc.dump());
    auto r = run({"--check", "--profile", profile});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, json> by_name;
    json check = json::parse(r.out);
    for (const auto& c : check["credentials"]) by_name[c["name"]] = c;
    ASSERT_EQ(by_name.size(), 2u) << r.out;
    EXPECT_EQ(by_name["in_env"]["rotation"].get<std::string>().rfind("cannot rotate: delivered in "
                                                                     "the environment",
                                                                     0),
              0u)
        << r.out;
    EXPECT_EQ(
        by_name["orders"]["rotation"].get<std::string>().rfind("refreshed ahead of expiry", 0), 0u)
        << r.out;
    EXPECT_EQ(by_name["orders"]["optional"], false);
}

TEST_F(OAuthTest, OptionalCredentialThatCannotBeIssuedIsLeftOut) {
    auto profile = profile_with(oauth_source("not-the-secret"), "5m", {{"optional", true}});
    auto r = run({"--profile", profile, "--", "sh", "-c", "test -z \"$CREDENTIALS_DIRECTORY\""});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto events = audit_events();
    auto skipped = events_named(events, "credential.skip");
    ASSERT_EQ(skipped.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(skipped[0]["credential"], "orders");
    EXPECT_EQ(skipped[0]["optional"], true);
    EXPECT_NE(
        skipped[0]["error"].get<std::string>().find("the token endpoint " + server_->url("/token") +
                                                    " refused: HTTP 401: invalid_client"),
        std::string::npos)
        << skipped[0].dump();
    EXPECT_TRUE(events_named(events, "credential.issue").empty());
    EXPECT_EQ(events_named(events, "session.end").size(), 1u);
}

TEST_F(OAuthTest, FailedRevocationIsRetriedThenAuditedWithFingerprintAndExpiry) {
    uint16_t port = Listener::on("127.0.0.1").port;  // closed again: connections are refused
    std::string revocation = "http://127.0.0.1:" + std::to_string(port) + "/revoke";
    auto seen = dir_ / "seen";
    auto profile =
        profile_with(oauth_source(OAuthServer::kClientSecret, {{"revocationUrl", revocation}}));
    auto r = run({"--log-level", "debug", "--profile", profile, "--", "sh", "-c",
                  "cat \"$CREDENTIALS_DIRECTORY/orders\" > " + seen.string()});
    std::string token = read_text(seen);
    ASSERT_FALSE(token.empty()) << r.err;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    // Three tries: two of them logged as tried again.
    EXPECT_EQ(retries_of(r.err, revocation), 2u) << r.err;
    auto failed = events_named(audit_events(), "credential.revoke.error");
    ASSERT_EQ(failed.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(failed[0]["credential"], "orders");
    EXPECT_EQ(failed[0]["fingerprint"], creds::fingerprint(token));
    EXPECT_TRUE(failed[0]["expiresAt"].is_string()) << failed[0].dump();
    EXPECT_NE(failed[0]["error"].get<std::string>().find("cannot reach " + revocation),
              std::string::npos)
        << failed[0].dump();
    EXPECT_EQ(introspect(token).value("active", false), true) << "the token was not revoked";
    EXPECT_EQ(r.err.find(token), std::string::npos);
}

// An agent under `profile` reads the token of its credential "orders",
// which is revoked when the session ends.
void OAuthTest::expect_issued_then_revoked(const fs::path& profile) {
    auto seen = dir_ / "seen";
    auto r = run({"--profile", profile, "--", "sh", "-c",
                  "cat \"$CREDENTIALS_DIRECTORY/orders\" > " + seen.string()});
    std::string token = read_text(seen);
    ASSERT_FALSE(token.empty()) << r.err;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto revoked = events_named(audit_events(), "credential.revoke");
    ASSERT_EQ(revoked.size(), 1u) << read_text(audit_log_);
    EXPECT_EQ(revoked[0]["fingerprint"], creds::fingerprint(token));
    EXPECT_EQ(revoked[0]["revoked"], true) << revoked[0].dump();
    json after = introspect(token);
    EXPECT_EQ(after.value("active", true), false) << after.dump();
}

// Discovery from the issuer alone; `options` for server.js.
void OAuthTest::expect_discovery_works(const std::vector<std::string>& options) {
    restart_server(options);
    json oauth = oauth_source(
        OAuthServer::kClientSecret,
        {{"tokenUrl", nullptr}, {"revocationUrl", nullptr}, {"issuer", server_->url("")}});
    // Revoked: the revocation endpoint was found too.
    expect_issued_then_revoked(profile_with(oauth));
}

TEST_F(OAuthTest, IssuerMetadataNamesTheTokenAndRevocationEndpoints) {
    expect_discovery_works({});
}

TEST_F(OAuthTest, IssuerMetadataFallsBackToOpenIdConnectDiscovery) {
    expect_discovery_works({"--oidc-metadata-only"});
}

TEST_F(OAuthTest, IssuerThatDiffersFromTheMetadatasIsRefused) {
    restart_server({"--oidc-metadata-only"});
    std::string issuer = server_->url("/");  // the server calls itself without the slash
    json oauth =
        oauth_source(OAuthServer::kClientSecret, {{"tokenUrl", nullptr}, {"issuer", issuer}});
    auto r = run({"--profile", profile_with(oauth), "--", "true"});
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("credentials.orders: the metadata at " + server_->url("") +
                         "/.well-known/openid-configuration is for issuer \"" + server_->url("") +
                         "\", not \"" + issuer + "\""),
              std::string::npos)
        << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

// A server certificate for 127.0.0.1 signed by nobody the system trusts.
void make_self_signed(const fs::path& cert, const fs::path& key) {
    std::string cmd =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
        "-addext subjectAltName=IP:127.0.0.1 -keyout " +
        key.string() + " -out " + cert.string() + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST_F(OAuthTest, TlsIsVerifiedAndCaBundleTrustsAPrivateCa) {
    auto cert = dir_ / "cert.pem", key = dir_ / "key.pem";
    make_self_signed(cert, key);
    restart_server({"--tls", cert.string(), key.string()});
    curl_options_ = "--cacert " + cert.string();

    auto refused =
        run({"--profile", profile_with(oauth_source(OAuthServer::kClientSecret)), "--", "true"});
    EXPECT_EQ(refused.exit_code, 125) << refused.err;
    EXPECT_NE(refused.err.find("credentials.orders: TLS with " + server_->url("/token") +
                               " failed, a certificate problem: SSL certificate problem: "
                               "self-signed certificate"),
              std::string::npos)
        << refused.err;
    EXPECT_NE(refused.err.find("name its PEM file in the source's caBundle"), std::string::npos)
        << refused.err;

    expect_issued_then_revoked(
        profile_with(oauth_source(OAuthServer::kClientSecret, {{"caBundle", cert.string()}})));
}

TEST_F(OAuthTest, CaBundleOthersCanWriteIsRefused) {
    auto cert = dir_ / "cert.pem", key = dir_ / "key.pem";
    make_self_signed(cert, key);
    ASSERT_EQ(::chmod(cert.c_str(), 0666), 0);
    auto profile =
        profile_with(oauth_source(OAuthServer::kClientSecret, {{"caBundle", cert.string()}}));
    auto r = run({"--check", "--profile", profile});
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("credentials.orders.source.oauth.caBundle: " + cert.string() +
                         " can be changed by another account than root"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("chmod go-w " + cert.string()), std::string::npos) << r.err;
}

// Reads /proc/PID/FILE whole (NUL-separated for cmdline and environ).
std::string proc_file(pid_t pid, const char* file) {
    return read_text(fs::path("/proc") / std::to_string(pid) / file);
}

TEST_F(OAuthTest, TokenNeverReachesProcessesOutsideTheSessionNorLogs) {
    auto seen = dir_ / "seen", done = dir_ / "done";
    auto profile = profile_with(oauth_source(OAuthServer::kClientSecret), "5m",
                                {{"deliver", {{"env", "ORDERS_TOKEN"}}}});
    pid_t pid = start({"--log-level", "trace", "--profile", profile, "--", "sh", "-c",
                       "printf %s \"$ORDERS_TOKEN\" > " + seen.string() + " && " + wait_for(done)});
    std::string token = await_file(seen);
    std::string cmdline = proc_file(pid, "cmdline"), environ_text = proc_file(pid, "environ");
    write_text(done, "");
    auto r = wait(pid);

    ASSERT_FALSE(token.empty()) << r.err;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(cmdline.empty());
    EXPECT_FALSE(environ_text.empty());
    EXPECT_EQ(cmdline.find(token), std::string::npos) << "the token is in agent-run's argv";
    EXPECT_EQ(environ_text.find(token), std::string::npos) << "the token is in agent-run's environ";
    EXPECT_EQ(read_text(audit_log_).find(token), std::string::npos) << "the token is audited";
    EXPECT_EQ(r.err.find(token), std::string::npos) << "the token is in agent-run's log";
    EXPECT_EQ(r.err.find(OAuthServer::kClientSecret), std::string::npos);
}

// A token of the user `sub` for the orders API with orders:read and
// orders:write, as an app the user logged in to would hold.
std::string OAuthTest::user_token(const std::string& sub) {
    std::string cmd = "curl -s -d sub=" + sub + " " + server_->url("/test/user-token");
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    ::pclose(p);
    json reply = json::parse(out, nullptr, false);
    return reply.is_object() ? reply.value("access_token", "") : "";
}

// The profile of an agent whose credential "orders" is the user's token
// exchanged with `scope`, and the user's token in a protected file.
fs::path OAuthTest::exchange_profile(const std::string& scope, const fs::path& user_file,
                                     const std::string& user) {
    write_text(user_file, user);
    EXPECT_EQ(::chmod(user_file.c_str(), 0600), 0);
    json source =
        oauth_source(OAuthServer::kClientSecret, {{"clientId", "test-agent"}, {"scope", scope}});
    return profile_with(source, "5m",
                        {{"source", {{"oauth", nullptr}, {"tokenExchange", source}}}});
}

TEST_F(OAuthTest, TokenExchangeNamesTheAgentAsActorWithLessThanTheUsersScope) {
    std::string user = user_token("alice");
    ASSERT_FALSE(user.empty());
    auto user_file = dir_ / "user-token", seen = dir_ / "seen", done = dir_ / "done";
    auto profile = exchange_profile("orders:read", user_file, user);
    pid_t pid = start(
        {"--subject-token-file", user_file, "--profile", profile, "--", "sh", "-c",
         "cat \"$CREDENTIALS_DIRECTORY/orders\" > " + seen.string() + " && " + wait_for(done)});
    std::string token = await_file(seen);
    json during = introspect(token), users = introspect(user);
    write_text(done, "");
    auto r = wait(pid);

    ASSERT_FALSE(token.empty()) << r.err;
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(token, user);
    EXPECT_EQ(during.value("active", false), true) << during.dump();
    EXPECT_EQ(during.value("sub", ""), "alice") << during.dump();
    EXPECT_EQ(during["act"], json({{"sub", "test-agent"}})) << during.dump();
    EXPECT_EQ(during.value("scope", ""), "orders:read") << during.dump();
    EXPECT_EQ(during.value("aud", ""), kResource) << during.dump();
    EXPECT_EQ(users.value("scope", ""), "orders:read orders:write") << users.dump();
    EXPECT_EQ(introspect(token).value("active", true), false) << "not revoked at the end";
    EXPECT_EQ(introspect(user).value("active", false), true) << "the user's token was revoked";
    std::string audit = read_text(audit_log_);
    EXPECT_EQ(audit.find(user), std::string::npos);
    EXPECT_EQ(r.err.find(user), std::string::npos);
    auto issued = events_named(audit_events(), "credential.issue");
    ASSERT_EQ(issued.size(), 1u) << audit;
    EXPECT_EQ(issued[0]["fingerprint"], creds::fingerprint(token));
}

TEST_F(OAuthTest, TokenExchangeBeyondTheUsersScopeIsRefused) {
    auto user_file = dir_ / "user-token";
    auto profile = exchange_profile("orders:read orders:delete", user_file, user_token("alice"));
    auto r = run({"--subject-token-file", user_file, "--profile", profile, "--", "true"});
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("credentials.orders: the token endpoint " + server_->url("/token") +
                         " refused: HTTP 400: invalid_scope (the subject token does not hold "
                         "orders:delete)"),
              std::string::npos)
        << r.err;
}

TEST_F(OAuthTest, TokenExchangeNeedsAProtectedSubjectToken) {
    auto user_file = dir_ / "user-token";
    auto profile = exchange_profile("orders:read", user_file, "a-token-of-the-user");
    auto none = run({"--check", "--profile", profile});
    EXPECT_EQ(none.exit_code, 125) << none.err;
    EXPECT_NE(none.err.find("credentials.orders.source.tokenExchange: exchanges the launching "
                            "user's token, and none was given (pass it with "
                            "--subject-token-file FILE"),
              std::string::npos)
        << none.err;
    ASSERT_EQ(::chmod(user_file.c_str(), 0644), 0);
    auto open = run({"--check", "--subject-token-file", user_file, "--profile", profile});
    EXPECT_EQ(open.exit_code, 125) << open.err;
    EXPECT_NE(open.err.find("--subject-token-file: " + user_file.string() + " has mode 0644"),
              std::string::npos)
        << open.err;
    EXPECT_EQ(open.err.find("a-token-of-the-user"), std::string::npos);
}

// A private key as `openssl genpkey ALGORITHM_ARGS` makes it, mode 0600,
// and its public half beside it (FILE.pub).
void make_key(const fs::path& key, const std::string& algorithm_args) {
    std::string cmd = "openssl genpkey " + algorithm_args + " -out " + key.string() +
                      " 2>/dev/null && openssl pkey -in " + key.string() + " -pubout -out " +
                      key.string() + ".pub";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
}

constexpr const char* kRsaKey = "-algorithm RSA -pkeyopt rsa_keygen_bits:2048";
constexpr const char* kEcKey = "-algorithm EC -pkeyopt ec_paramgen_curve:P-256";

json OAuthTest::jwt_source(const fs::path& key) {
    return oauth_source(OAuthServer::kClientSecret,
                        {{"clientId", std::string(OAuthServer::kClientId) + "-jwt"},
                         {"clientSecretFile", nullptr},
                         {"auth", "private_key_jwt"},
                         {"privateKeyFile", key.string()},
                         {"keyId", "test-key"}});
}

// The client authenticates with a JWT signed by a key of `algorithm_args`.
void OAuthTest::expect_private_key_jwt_works(const std::string& algorithm_args) {
    auto key = dir_ / "client.key";
    make_key(key, algorithm_args);
    restart_server({"--jwt-key", key.string() + ".pub"});
    // Revoked: the revocation request is authenticated by a JWT too.
    expect_issued_then_revoked(profile_with(jwt_source(key)));
}

TEST_F(OAuthTest, PrivateKeyJwtWithAnRsaKey) {
    expect_private_key_jwt_works(kRsaKey);
}

TEST_F(OAuthTest, PrivateKeyJwtWithAnEcKey) {
    expect_private_key_jwt_works(kEcKey);
}

TEST_F(OAuthTest, PrivateKeyJwtWithAKeyTheServerDoesNotKnowIsRefused) {
    auto known = dir_ / "known.key", other = dir_ / "other.key";
    make_key(known, kEcKey);
    make_key(other, kEcKey);
    restart_server({"--jwt-key", known.string() + ".pub"});
    auto r = run({"--profile", profile_with(jwt_source(other)), "--", "true"});
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("credentials.orders: the token endpoint " + server_->url("/token") +
                         " refused: HTTP 401: invalid_client"),
              std::string::npos)
        << r.err;
}

TEST_F(OAuthTest, PrivateKeyFileWithoutAKeyToSignWithIsRefusedByCheck) {
    auto key = dir_ / "client.key";
    write_text(key, "not a key\n");
    ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
    auto profile = profile_with(jwt_source(key));
    auto garbage = run({"--check", "--profile", profile});
    EXPECT_EQ(garbage.exit_code, 125) << garbage.err;
    EXPECT_NE(garbage.err.find("credentials.orders.source.oauth.privateKeyFile: " + key.string() +
                               " holds no PEM private key"),
              std::string::npos)
        << garbage.err;

    fs::remove(key);
    make_key(key, "-algorithm ED25519");
    auto ed25519 = run({"--check", "--profile", profile});
    EXPECT_EQ(ed25519.exit_code, 125) << ed25519.err;
    EXPECT_NE(ed25519.err.find(key.string() + " holds a key of type ED25519; private_key_jwt "
                                              "signs with RSA (RS256) or EC P-256 (ES256)"),
              std::string::npos)
        << ed25519.err;

    ASSERT_EQ(::chmod(key.c_str(), 0640), 0);
    auto open = run({"--check", "--profile", profile});
    EXPECT_NE(open.err.find("privateKeyFile: " + key.string() + " has mode 0640"),
              std::string::npos)
        << open.err;
}

}  // namespace
}  // namespace cordon::testing
