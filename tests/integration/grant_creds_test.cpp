// SPDX-License-Identifier: Apache-2.0
// The credentials of approval-gated tools (issue 7), against oidc-provider
// on loopback and a real session init: a process in a mount namespace of
// its own with the credentials directory's tmpfs mounted as agent-run's
// init mounts it. A grant issues the tool's token into that directory, its
// end removes the file and revokes the token, and a credential two open
// tools share stays until both close.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <poll.h>

#include "agent_run_fixture.h"
#include "creds/directory.h"
#include "creds/lease.h"
#include "launch/mounts.h"
#include "launch/view.h"
#include "oauth_server.h"
#include "profile/profile.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

constexpr const char* kOrders = "https://orders.test/";
constexpr const char* kRefunds = "https://refunds.test/";
constexpr uid_t kAgentUid = 65534;  // the account the session's files belong to
constexpr gid_t kAgentGid = 65534;

// A session's init as far as credentials go: a child in a mount namespace
// of its own where the credentials directory is mounted, empty, as
// launch::apply mounts it for a session with deferred credentials, waiting
// to be killed. Not `planned`: as a session that plan_directory was not told
// needs the directory later, which mounts nothing there.
class SessionInit {
  public:
    explicit SessionInit(bool planned = true) {
        launch::MountPlan plan;
        launch::add_credentials_view(plan,
                                     creds::plan_directory({}, kAgentUid, kAgentGid, planned));
        int ready[2];
        if (::pipe2(ready, O_CLOEXEC) != 0) return;
        pid_ = ::fork();
        if (pid_ == 0) {
            // Nothing allocated from here: the test process may have threads.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            int failed_step;
            if (launch::apply(plan, &failed_step) != 0) ::_exit(1);
            char c = 1;
            (void)!::write(ready[1], &c, 1);
            for (;;) ::pause();
        }
        ::close(ready[1]);
        char c;
        ready_ = pid_ > 0 && ::read(ready[0], &c, 1) == 1;
        ::close(ready[0]);
    }
    ~SessionInit() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    SessionInit(const SessionInit&) = delete;
    SessionInit& operator=(const SessionInit&) = delete;

    bool ready() const { return ready_; }
    pid_t pid() const { return pid_; }
    // A file of the credentials directory, as the agent sees it.
    fs::path file(const std::string& name) const {
        return "/proc/" + std::to_string(pid_) + "/root" + creds::kCredentialsDir + "/" + name;
    }

  private:
    pid_t pid_ = -1;
    bool ready_ = false;
};

class GrantCredsTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root: mounts a tmpfs in a mount namespace";
        if (auto why = OAuthServer::missing(); !why.empty()) GTEST_SKIP() << why;
        dir_ = fs::path("/run") / ("cordon-test-grant-" + std::to_string(::getpid()) + "-" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        fs::permissions(dir_, fs::perms::owner_all);
        audit_log_ = dir_ / "audit.jsonl";
        ASSERT_TRUE(creds::ensure_mount_point());
        start_server({});
    }

    void TearDown() override {
        lease_.reset();
        init_.reset();
        server_.reset();
        if (!dir_.empty()) fs::remove_all(dir_);
    }

    void start_server(std::vector<std::string> options) {
        server_.reset();
        server_ = std::make_unique<OAuthServer>(std::move(options));
        ASSERT_TRUE(server_->running()) << "oidc-provider did not start (tests/oauth/server.js)";
    }

    // A protected file holding `value`, as agent-run reads secrets at rest.
    fs::path secret_file(const std::string& name, const std::string& value) {
        auto path = dir_ / name;
        write_text(path, value + "\n");
        EXPECT_EQ(::chmod(path.c_str(), 0600), 0);
        return path;
    }

    json oauth(const std::string& scope, const std::string& resource) {
        return {{"oauth",
                 {{"tokenUrl", server_->url("/token")},
                  {"revocationUrl", server_->url("/token/revocation")},
                  {"clientId", OAuthServer::kClientId},
                  {"clientSecretFile", secret_file("client-secret", OAuthServer::kClientSecret)},
                  {"scope", scope},
                  {"resource", resource}}}};
    }

    // lookup_order is open from the start with orders; issue_refund and
    // cancel_order wait for a grant and share refund; cancel_order also
    // needs cancel_key, a static file. `changes` are merged in.
    json profile_doc(const json& changes = json::object()) {
        json doc = {{"apiVersion", "cordon/v1"},
                    {"identity",
                     {{"agentId", "test-agent"},
                      {"agentType", "test"},
                      {"version", "0.0.1"},
                      {"expiresAt", "2099-01-01T00:00:00Z"}}},
                    {"allowedTools", {"lookup_order"}},
                    {"approvalRequired", {"issue_refund", "cancel_order"}},
                    {"tools",
                     {{"lookup_order", {{"credentials", {"orders"}}}},
                      {"issue_refund", {{"credentials", {"refund"}}}},
                      {"cancel_order", {{"credentials", {"cancel_key", "refund"}}}}}},
                    {"credentials",
                     {{"orders", {{"source", oauth("orders:read", kOrders)}}},
                      {"refund", {{"source", oauth("orders:write", kRefunds)}}},
                      {"cancel_key",
                       {{"source", {{"file", secret_file("cancel.secret", kCancelKey).string()}}},
                        {"deliver", {{"file", "cancel"}}}}}}}};
        doc.merge_patch(changes);
        return doc;
    }

    // What session.cpp does: reads the allowed and the gated tools'
    // credentials, issues the former, keeps the latter back, and once the
    // session's init runs, watches its credentials directory.
    void start_session(const json& doc) {
        issue_at_start(doc);
        if (HasFatalFailure()) return;
        init_ = std::make_unique<SessionInit>();
        ASSERT_TRUE(init_->ready()) << "the session's init could not mount its directory";
        auto st = lease_->watch(init_->pid(), kAgentUid, kAgentGid, deadline());
        ASSERT_TRUE(st) << st.error().message();
    }

    static std::chrono::system_clock::time_point deadline() {
        return std::chrono::system_clock::now() + std::chrono::minutes(5);
    }

    // The part of start_session before the agent runs.
    void issue_at_start(const json& doc) {
        profile_ = profile::parse_profile(
            doc, std::chrono::time_point_cast<std::chrono::seconds>(profile::Clock::now()));
        auto deferred = profile::grant_only_credentials(profile_);
        std::vector<std::string> needed{"orders"};
        needed.insert(needed.end(), deferred.begin(), deferred.end());
        auto loaded = creds::load_static(profile_, needed, "");
        ASSERT_TRUE(loaded) << loaded.error().message();
        loaded_ = std::move(*loaded);
        auto audit = audit::AuditLog::open(audit_log_.string());
        ASSERT_TRUE(audit) << audit.error().message();
        audit_ = std::move(*audit);
        auto lease = creds::TokenLease::issue(profile_, *audit_, subject_, loaded_.client_secrets,
                                              loaded_.subject_token, deferred);
        ASSERT_TRUE(lease) << lease.error().message();
        lease_ = std::move(*lease);
        lease_->defer_static(loaded_.deliveries);
        ASSERT_TRUE(loaded_.deliveries.empty()) << "cancel_key was not kept back";
        ASSERT_TRUE(lease_->delivers_later());
    }

    // The audience of each token the server issued, oldest first.
    std::vector<std::string> issued_audiences() {
        std::string out = server_->issued();
        json list = json::parse(out, nullptr, false);
        std::vector<std::string> audiences;
        if (!list.is_array()) ADD_FAILURE() << "/test/issued answered: " << out;
        for (const auto& t : list.is_array() ? list : json::array())
            audiences.push_back(t.value("aud", ""));
        return audiences;
    }

    json introspect(const std::string& token) {
        std::string out = server_->introspection(token);
        json reply = json::parse(out, nullptr, false);
        if (reply.is_discarded()) ADD_FAILURE() << "introspection answered: " << out;
        return reply.is_discarded() ? json::object() : reply;
    }

    bool active(const std::string& token) { return introspect(token).value("active", false); }

    std::vector<json> events(const std::string& name) {
        (void)audit_->flush(std::chrono::seconds(1));
        return events_named(read_events(audit_log_), name);
    }

    // Events `name` about `credential`.
    std::vector<json> events(const std::string& name, const std::string& credential) {
        std::vector<json> out;
        for (auto& e : events(name))
            if (e.value("credential", "") == credential) out.push_back(e);
        return out;
    }

    static bool gone(const fs::path& file) {
        struct stat st {};
        return ::lstat(file.c_str(), &st) != 0 && errno == ENOENT;
    }

    // The file's mode and owner are the agent's, 0400.
    static void expect_agents_file(const fs::path& file) {
        struct stat st {};
        ASSERT_EQ(::lstat(file.c_str(), &st), 0) << file;
        EXPECT_TRUE(S_ISREG(st.st_mode));
        EXPECT_EQ(st.st_mode & 07777, 0400u);
        EXPECT_EQ(st.st_uid, kAgentUid);
        EXPECT_EQ(st.st_gid, kAgentGid);
    }

    static constexpr const char* kCancelKey = "cancel-key-at-rest";

    std::unique_ptr<OAuthServer> server_;
    fs::path dir_;
    fs::path audit_log_;
    profile::Profile profile_;
    creds::Loaded loaded_;
    audit::Subject subject_{"test-agent", "test", "0.0.1", "00000000-0000-4000-8000-00000000cafe"};
    std::unique_ptr<audit::AuditLog> audit_;
    std::unique_ptr<creds::TokenLease> lease_;
    std::unique_ptr<SessionInit> init_;
};

TEST_F(GrantCredsTest, GrantIssuesTheToolsTokenIntoTheDirectoryAndItsEndRevokesIt) {
    start_session(profile_doc());
    if (HasFatalFailure()) return;
    auto file = init_->file("refund");
    EXPECT_TRUE(gone(file)) << "issued before any grant";
    EXPECT_TRUE(events("credential.issue", "refund").empty());
    EXPECT_EQ(issued_audiences(), std::vector<std::string>{kOrders}) << "the server saw more";

    auto st = lease_->open_tool("issue_refund");
    ASSERT_TRUE(st) << st.error().message();
    expect_agents_file(file);
    EXPECT_TRUE(gone(fs::path(creds::kCredentialsDir) / "refund")) << "on the host's side too";
    std::string token = read_text(file);
    json during = introspect(token);
    EXPECT_EQ(during.value("active", false), true) << during.dump();
    EXPECT_EQ(during.value("scope", ""), "orders:write") << during.dump();
    EXPECT_EQ(during.value("aud", ""), kRefunds) << during.dump();
    auto issued = events("credential.issue", "refund");
    ASSERT_EQ(issued.size(), 1u);
    EXPECT_EQ(issued[0]["tool"], "issue_refund");
    EXPECT_EQ(issued[0]["grant"], true);
    EXPECT_EQ(issued[0]["fingerprint"], creds::fingerprint(token));
    EXPECT_EQ(issued[0]["scope"], "orders:write");
    EXPECT_EQ(issued_audiences(), (std::vector<std::string>{kOrders, kRefunds}));

    lease_->close_tool("issue_refund");
    EXPECT_TRUE(gone(file)) << "the file outlived the grant";
    EXPECT_EQ(introspect(token).value("active", true), false) << "not revoked at the grant's end";
    auto revoked = events("credential.revoke", "refund");
    ASSERT_EQ(revoked.size(), 1u);
    EXPECT_EQ(revoked[0]["fingerprint"], creds::fingerprint(token));
    EXPECT_EQ(revoked[0]["tool"], "issue_refund");
    EXPECT_EQ(revoked[0]["grant"], true);
    EXPECT_EQ(revoked[0]["revoked"], true);
    EXPECT_EQ(revoked[0]["removed"], true);
    EXPECT_EQ(read_text(audit_log_).find(token), std::string::npos) << "the token is audited";
}

TEST_F(GrantCredsTest, CredentialTwoOpenToolsShareStaysUntilBothClose) {
    start_session(profile_doc());
    if (HasFatalFailure()) return;
    ASSERT_TRUE(lease_->open_tool("issue_refund"));
    std::string token = read_text(init_->file("refund"));
    ASSERT_TRUE(lease_->open_tool("cancel_order"));
    EXPECT_EQ(read_text(init_->file("refund")), token) << "issued again for the second tool";
    EXPECT_EQ(events("credential.issue", "refund").size(), 1u);
    EXPECT_EQ(issued_audiences(), (std::vector<std::string>{kOrders, kRefunds}));
    EXPECT_TRUE(lease_->open_tool("cancel_order")) << "opening an open tool does nothing";

    lease_->close_tool("issue_refund");
    EXPECT_EQ(read_text(init_->file("refund")), token);
    EXPECT_TRUE(active(token)) << "revoked while cancel_order still needs it";
    EXPECT_TRUE(events("credential.revoke", "refund").empty());

    lease_->close_tool("cancel_order");
    EXPECT_TRUE(gone(init_->file("refund")));
    EXPECT_TRUE(gone(init_->file("cancel")));
    EXPECT_FALSE(active(token));
    auto revoked = events("credential.revoke", "refund");
    ASSERT_EQ(revoked.size(), 1u);
    EXPECT_EQ(revoked[0]["tool"], "cancel_order");
}

TEST_F(GrantCredsTest, StaticSourceIsWrittenForTheGrantAndRemovedAtItsEnd) {
    start_session(profile_doc());
    if (HasFatalFailure()) return;
    ASSERT_TRUE(lease_->open_tool("cancel_order"));
    auto file = init_->file("cancel");
    expect_agents_file(file);
    EXPECT_EQ(read_text(file), kCancelKey);
    auto issued = events("credential.issue", "cancel_key");
    ASSERT_EQ(issued.size(), 1u);
    EXPECT_EQ(issued[0]["static"], true);
    EXPECT_EQ(issued[0]["tool"], "cancel_order");
    EXPECT_FALSE(issued[0].contains("fingerprint")) << issued[0].dump();

    lease_->close_tool("cancel_order");
    EXPECT_TRUE(gone(file));
    auto withdrawn = events("credential.revoke", "cancel_key");
    ASSERT_EQ(withdrawn.size(), 1u);
    EXPECT_EQ(withdrawn[0]["revoked"], false);
    EXPECT_EQ(withdrawn[0]["removed"], true);
    EXPECT_EQ(read_text(audit_log_).find(kCancelKey), std::string::npos);
}

TEST_F(GrantCredsTest, UnreachableTokenEndpointFailsTheGrantAndLeavesNothing) {
    // Bound and never listening: every connection to it is refused.
    UniqueFd closed(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::bind(closed.get(), reinterpret_cast<sockaddr*>(&addr), len), 0);
    ASSERT_EQ(::getsockname(closed.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/token";
    start_session(profile_doc(
        {{"credentials", {{"refund", {{"source", {{"oauth", {{"tokenUrl", url}}}}}}}}}}));
    if (HasFatalFailure()) return;

    auto st = lease_->open_tool("cancel_order");
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message().rfind("cannot grant cancel_order: credentials.refund: cannot "
                                         "reach " +
                                             url,
                                         0),
              0u)
        << st.error().message();
    // cancel_key, written first, went with the failed grant.
    EXPECT_TRUE(gone(init_->file("cancel")));
    EXPECT_TRUE(gone(init_->file("refund")));
    auto undone = events("credential.revoke", "cancel_key");
    ASSERT_EQ(undone.size(), 1u);
    EXPECT_EQ(undone[0]["undone"], true);
    EXPECT_EQ(undone[0]["removed"], true);
    // The tool stayed closed: a later grant tries again from nothing.
    lease_->close_tool("cancel_order");
    EXPECT_EQ(events("credential.revoke").size(), 1u);
    EXPECT_TRUE(events("credential.issue", "refund").empty());
}

// A session whose directory was not planned for later has only the host's
// shared mount point there: a grant must not write the host's files.
TEST_F(GrantCredsTest, WatchRefusesASessionWithoutADirectoryOfItsOwn) {
    issue_at_start(profile_doc());
    if (HasFatalFailure()) return;
    init_ = std::make_unique<SessionInit>(false);
    ASSERT_TRUE(init_->ready());
    auto st = lease_->watch(init_->pid(), kAgentUid, kAgentGid, deadline());
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message().find("is not a mount of its own"), std::string::npos)
        << st.error().message();
    auto grant = lease_->open_tool("issue_refund");
    ASSERT_FALSE(grant);
    EXPECT_NE(grant.error().message().find("directory is not open"), std::string::npos)
        << grant.error().message();
    EXPECT_TRUE(gone(fs::path(creds::kCredentialsDir) / "refund"));
    EXPECT_EQ(issued_audiences(), std::vector<std::string>{kOrders});
}

TEST_F(GrantCredsTest, RevokeAllAtTheSessionsEndRevokesGrantedTokens) {
    start_session(profile_doc());
    if (HasFatalFailure()) return;
    ASSERT_TRUE(lease_->open_tool("issue_refund"));
    std::string token = read_text(init_->file("refund"));
    ASSERT_TRUE(active(token));
    lease_->revoke_all();
    EXPECT_FALSE(active(token)) << "a grant's token outlived the session";
    auto revoked = events("credential.revoke", "refund");
    ASSERT_EQ(revoked.size(), 1u);
    EXPECT_EQ(revoked[0]["tool"], "issue_refund");
    EXPECT_EQ(revoked[0]["revoked"], true);
    EXPECT_EQ(events("credential.revoke", "orders").size(), 1u) << "the start's token too";
}

TEST_F(GrantCredsTest, GrantedTokenIsRefreshedWhileTheToolIsOpen) {
    start_server({"--ttl", std::string(kRefunds) + "=6"});
    start_session(profile_doc());
    if (HasFatalFailure()) return;
    ASSERT_TRUE(lease_->open_tool("issue_refund"));
    std::string old_token = read_text(init_->file("refund"));
    ASSERT_GE(lease_->timer_fd(), 0);
    // Two thirds of 6 seconds.
    pollfd p{lease_->timer_fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the refresh timer never fired";
    lease_->on_timer();
    std::string new_token = read_text(init_->file("refund"));
    EXPECT_NE(new_token, old_token);
    expect_agents_file(init_->file("refund"));
    EXPECT_TRUE(active(new_token));
    EXPECT_FALSE(active(old_token)) << "the refreshed token was not revoked";
    auto refreshed = events("credential.refresh", "refund");
    ASSERT_EQ(refreshed.size(), 1u);
    EXPECT_EQ(refreshed[0]["tool"], "issue_refund");
    EXPECT_EQ(refreshed[0]["previous"], creds::fingerprint(old_token));

    lease_->close_tool("issue_refund");
    EXPECT_FALSE(active(new_token));
}

}  // namespace
}  // namespace cordon::testing
