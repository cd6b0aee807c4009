// SPDX-License-Identifier: Apache-2.0
// The deferred credentials of approval-gated tools, as far as they need no
// server and no session: which deliveries the lease keeps back, when the
// credentials directory is planned, and what a grant refuses before it
// asks for anything. The grants themselves run against a real
// authorization server in tests/integration/grant_creds_test.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "creds/directory.h"
#include "creds/lease.h"
#include "profile_doc.h"

namespace cordon::creds {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// lookup_order is open from the start with orders; issue_refund and
// cancel_order wait for a grant, sharing refund; cancel_order also needs
// cancel_key, a static file.
profile::Profile gated_profile() {
    json doc = test_support::minimal_profile();
    doc["allowedTools"] = {"lookup_order"};
    doc["approvalRequired"] = {"issue_refund", "cancel_order"};
    doc["tools"] = {
        {"lookup_order", {{"credentials", {"orders"}}}},
        {"issue_refund", {{"credentials", {"refund"}}}},
        {"cancel_order", {{"credentials", {"refund", "cancel_key"}}}},
    };
    doc["credentials"] = {
        {"orders", {{"source", {{"file", "/run/orders"}}}, {"deliver", {{"env", "ORDERS"}}}}},
        {"refund", {{"source", {{"file", "/run/refund"}}}}},
        {"cancel_key", {{"source", {{"file", "/run/cancel"}}}, {"deliver", {{"file", "cancel"}}}}},
    };
    return profile::parse_profile(doc, test_support::kProfileNow);
}

Delivery delivery(const profile::Profile& p, const std::string& name, const std::string& value) {
    const auto& cred = p.credentials.at(name);
    return Delivery{name, cred.deliver_env, cred.deliver_file, Secret(value)};
}

class LeaseTest : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("cordon-lease-test-" + std::to_string(::getpid()));
        fs::create_directories(dir_);
        fs::permissions(dir_, fs::perms::owner_all);
        auto log = audit::AuditLog::open((dir_ / "audit.jsonl").string());
        ASSERT_TRUE(log) << log.error().message();
        audit_ = std::move(*log);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::unique_ptr<TokenLease> lease(const std::set<std::string>& deferred) {
        auto lease =
            TokenLease::issue(profile_, *audit_, subject_, secrets_, subject_token_, deferred);
        EXPECT_TRUE(lease) << lease.error().message();
        return lease ? std::move(*lease) : nullptr;
    }

    std::string audit_text() {
        (void)audit_->flush(std::chrono::milliseconds(100));
        std::ifstream in(dir_ / "audit.jsonl");
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }

    profile::Profile profile_ = gated_profile();
    audit::Subject subject_{"a", "t", "1", "00000000-0000-4000-8000-000000000000"};
    std::map<std::string, Secret> secrets_;  // no oauth source here
    Secret subject_token_;
    fs::path dir_;
    std::unique_ptr<audit::AuditLog> audit_;
};

TEST_F(LeaseTest, DeferStaticKeepsBackTheDeferredCredentialsOnly) {
    auto l = lease(profile::grant_only_credentials(profile_));
    std::vector<Delivery> deliveries;
    deliveries.push_back(delivery(profile_, "orders", "o-value"));
    deliveries.push_back(delivery(profile_, "cancel_key", "c-value"));
    deliveries.push_back(delivery(profile_, "refund", "r-value"));
    l->defer_static(deliveries);
    ASSERT_EQ(deliveries.size(), 1u);
    EXPECT_EQ(deliveries[0].credential, "orders");
    EXPECT_EQ(deliveries[0].value.reveal(), "o-value");
    EXPECT_TRUE(l->deliveries().empty());
}

TEST_F(LeaseTest, DirectoryIsNeededLaterOnlyForADeferredFile) {
    EXPECT_TRUE(lease({"refund"})->delivers_later());
    EXPECT_FALSE(lease({})->delivers_later());
    // Parsing refuses a deferred credential delivered by env; the lease
    // would have nowhere to put it.
    EXPECT_FALSE(lease({"orders"})->delivers_later());
}

TEST_F(LeaseTest, UndefinedDeferredCredentialIsAnError) {
    auto l = TokenLease::issue(profile_, *audit_, subject_, secrets_, subject_token_, {"nope"});
    ASSERT_FALSE(l);
    EXPECT_EQ(l.error().message(), "deferred credential nope is not defined in the profile");
}

TEST_F(LeaseTest, GrantOfAnUndefinedToolIsRefused) {
    auto st = lease({"refund"})->open_tool("wire_money");
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message(), "cannot grant wire_money: no such tool in the profile");
}

TEST_F(LeaseTest, GrantBeforeWatchIsRefusedAndIssuesNothing) {
    auto l = lease({"refund", "cancel_key"});
    auto st = l->open_tool("issue_refund");
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message(),
              "cannot grant issue_refund: credentials.refund: the session's credentials "
              "directory is not open (grant once the agent runs and TokenLease::watch has "
              "opened it)");
    l->close_tool("issue_refund");  // not open: nothing to do
    EXPECT_EQ(audit_text().find("credential.issue"), std::string::npos) << audit_text();
}

TEST_F(LeaseTest, GrantOfAToolNotInApprovalRequiredIsRefused) {
    auto st = lease({"refund"})->open_tool("lookup_order");
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message(), "cannot grant lookup_order: it is not in approvalRequired");
}

// Deny wins: refund, shared with issue_refund, does not come out by
// cancel_order's grant.
TEST_F(LeaseTest, GrantOfADeniedToolIsRefused) {
    profile_.denied_tools.push_back("cancel_order");
    auto st = lease({"refund", "cancel_key"})->open_tool("cancel_order");
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message(),
              "cannot grant cancel_order: it is in deniedTools, and deny wins");
    EXPECT_EQ(audit_text(), "");
}

TEST_F(LeaseTest, GrantOfAToolWithNothingDeferredNeedsNoDirectory) {
    auto l = lease({});
    EXPECT_TRUE(l->open_tool("issue_refund"));
    l->close_tool("issue_refund");
    EXPECT_EQ(audit_text(), "");
}

TEST(PlanDirectory, PlannedEmptyWhenNeededLater) {
    std::vector<Delivery> env_only;
    env_only.push_back(Delivery{"orders", "ORDERS", "", Secret("v")});
    EXPECT_FALSE(plan_directory(env_only, 1000, 1000).has_value());
    auto dir = plan_directory(env_only, 1000, 1000, true);
    ASSERT_TRUE(dir.has_value());
    EXPECT_TRUE(dir->files.empty());
    EXPECT_EQ(dir->uid, 1000u);
    EXPECT_EQ(dir->mount_options.rfind("mode=0500,uid=1000,gid=1000,size=1m,nr_inodes=256", 0), 0u)
        << dir->mount_options;
}

}  // namespace
}  // namespace cordon::creds
