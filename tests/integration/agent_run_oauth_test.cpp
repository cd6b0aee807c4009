// SPDX-License-Identifier: Apache-2.0
// OAuth 2.1 client credentials end to end (issue 5), against oidc-provider
// on loopback: the session's token has exactly the profile's scope and
// resource, is active while the session runs and revoked when it ends, and
// a refusing or unreachable server stops the launch.
#include <sys/stat.h>

#include "agent_run_fixture.h"
#include "creds/oauth.h"
#include "launch/session.h"
#include "oauth_server.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

constexpr const char* kResource = "https://orders.test/";

class OAuthTest : public AgentRunTest {
  protected:
    void SetUp() override {
        AgentRunTest::SetUp();
        if (IsSkipped()) return;
        if (auto why = OAuthServer::missing(); !why.empty()) GTEST_SKIP() << why;
        server_ = std::make_unique<OAuthServer>();
        ASSERT_TRUE(server_->running()) << "oidc-provider did not start (tests/oauth/server.js)";
    }

    fs::path profile_with_oauth(const std::string& secret, const std::string& token_url,
                                const std::string& max_duration = "5m") {
        auto secret_file = dir_ / "client-secret";
        write_text(secret_file, secret + "\n");
        EXPECT_EQ(::chmod(secret_file.c_str(), 0600), 0);
        json oauth = {{"tokenUrl", token_url},
                      {"revocationUrl", server_->url("/token/revocation")},
                      {"clientId", OAuthServer::kClientId},
                      {"clientSecretFile", secret_file.string()},
                      {"scope", "orders:read"},
                      {"resource", kResource}};
        json extra = {{"tools", {{"allowed_tool", {{"credentials", {"orders"}}}}}},
                      {"credentials", {{"orders", {{"source", {{"oauth", oauth}}}}}}}};
        return write_profile({}, {}, max_duration, extra);
    }

    // The server's introspection (RFC 7662) of `token`, with curl(1).
    json introspect(const std::string& token) {
        std::string cmd = std::string("curl -s -u ") + OAuthServer::kClientId + ":" +
                          OAuthServer::kClientSecret + " -d token=" + token + " " +
                          server_->url("/token/introspection");
        FILE* p = ::popen(cmd.c_str(), "r");
        if (!p) return nullptr;
        std::string out;
        char buf[512];
        while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
        ::pclose(p);
        json reply = json::parse(out, nullptr, false);
        if (reply.is_discarded()) ADD_FAILURE() << "introspection answered: " << out;
        return reply.is_discarded() ? json::object() : reply;
    }

    std::unique_ptr<OAuthServer> server_;
};

TEST_F(OAuthTest, TokenHasTheProfilesScopeAndResourceAndIsRevokedAtExit) {
    auto seen = dir_ / "seen", done = dir_ / "done";
    auto profile = profile_with_oauth(OAuthServer::kClientSecret, server_->url("/token"));
    pid_t pid = start({"--profile", profile, "--", "sh", "-c",
                       "cat \"$CREDENTIALS_DIRECTORY/orders\" > " + seen.string() +
                           " && while [ ! -e " + done.string() + " ]; do sleep 0.05; done"});
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

TEST_F(OAuthTest, WrongClientSecretStopsTheLaunchWithTheServersError) {
    auto r = run(
        {"--profile", profile_with_oauth("not-the-secret", server_->url("/token")), "--", "true"});
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
    auto r = run({"--profile", profile_with_oauth(OAuthServer::kClientSecret, url), "--", "true"});
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("credentials.orders: cannot reach " + url), std::string::npos) << r.err;
    EXPECT_EQ(leftover_cgroups(), 0u);
}

}  // namespace
}  // namespace cordon::testing
