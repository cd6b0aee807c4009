// SPDX-License-Identifier: Apache-2.0
// The approval webhook's pure parts: the body's signature against the
// published HMAC-SHA256 vectors, a delivery's audit fields, and the
// settings start() refuses before any request, on real files in a
// directory of the test's own.
#include "approval/webhook.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "audit/audit.h"

namespace cordon::approval {
namespace {

namespace fs = std::filesystem;

constexpr const char* kKey = "w3bh00k-k3y";

// RFC 4231 section 4.3, test case 2: a key shorter than the block.
TEST(WebhookSignatureTest, MatchesRfc4231TestCase2) {
    EXPECT_EQ(signature("Jefe", "what do ya want for nothing?"),
              "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

// RFC 4231 section 4.2, test case 1: 20 bytes of 0x0b, "Hi There".
TEST(WebhookSignatureTest, MatchesRfc4231TestCase1) {
    EXPECT_EQ(signature(std::string(20, '\x0b'), "Hi There"),
              "sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

// RFC 4231 section 4.7, test case 6: a key longer than the block is hashed first.
TEST(WebhookSignatureTest, MatchesRfc4231TestCase6) {
    EXPECT_EQ(signature(std::string(131, '\xaa'),
                        "Test Using Larger Than Block-Size Key - Hash Key First"),
              "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(WebhookAuditTest, ADeliveredResultHasNoErrorField) {
    DeliveryResult r{
        "approval.requested", "0b8e5f7a-2f4e-4c1d-9a57-3c6d1e2f4a5b", true, 2, 204, ""};
    EXPECT_EQ(to_json(r), nlohmann::json({{"webhookEvent", "approval.requested"},
                                          {"delivery", "0b8e5f7a-2f4e-4c1d-9a57-3c6d1e2f4a5b"},
                                          {"delivered", true},
                                          {"attempts", 2},
                                          {"status", 204}}));
}

TEST(WebhookAuditTest, AFailedResultCarriesItsError) {
    DeliveryResult r{"approval.requested",
                     "d1",
                     false,
                     5,
                     503,
                     "webhook https://hooks.example.test/...: HTTP 503 after 5 attempts"};
    nlohmann::json j = to_json(r);
    EXPECT_EQ(j["webhookEvent"], "approval.requested");
    EXPECT_EQ(j["delivery"], "d1");
    EXPECT_EQ(j["delivered"], false);
    EXPECT_EQ(j["attempts"], 5);
    EXPECT_EQ(j["status"], 503);
    EXPECT_EQ(j["error"], r.error);
    EXPECT_EQ(j.size(), 6u);
}

// The audit log writes its own "event" first, then the fields: none of
// them may take its place.
TEST(WebhookAuditTest, KeepsTheAuditEventNameOfTheLine) {
    char tmpl[] = "/tmp/cordon-webhook-audit-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    fs::path dir = tmpl;
    {
        auto log = audit::AuditLog::open((dir / "audit.jsonl").string());
        ASSERT_TRUE(log) << log.error().message();
        DeliveryResult r{"approval.requested", "d2", false, 0, 0, "dropped"};
        (*log)->emit("approval.notify.error", {"support-agent", "support", "1.4.2", "s1"},
                     to_json(r));
    }
    std::ifstream in(dir / "audit.jsonl");
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["event"], "approval.notify.error");
    EXPECT_EQ(j["webhookEvent"], "approval.requested");
    EXPECT_EQ(j["error"], "dropped");
    fs::remove_all(dir);
}

class WebhookStartTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/cordon-webhook-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string key_file(mode_t mode) {
        std::string path = (dir_ / "webhook.key").string();
        std::ofstream(path) << kKey << "\n";
        EXPECT_EQ(::chmod(path.c_str(), mode), 0);
        return path;
    }

    WebhookConfig config(const std::string& secret_file) {
        WebhookConfig c;
        c.url = "https://hooks.example.test/services/T0/B0/TOKEN-IN-PATH";
        c.secret_file = secret_file;
        return c;
    }

    // The error's whole message, or a failure when start() succeeded.
    static std::string refusal(WebhookConfig c) {
        auto r = Webhook::start(std::move(c), [](const DeliveryResult&) {});
        if (r) {
            ADD_FAILURE() << "the webhook started, expected a refusal";
            return {};
        }
        return r.error().message();
    }

    fs::path dir_;
};

TEST_F(WebhookStartTest, StartsWithAProtectedSecretFileAndStopsAtOnce) {
    auto r = Webhook::start(config(key_file(0600)), [](const DeliveryResult&) {});
    ASSERT_TRUE(r) << r.error().message();
    auto before = std::chrono::steady_clock::now();
    r->reset();  // nothing queued: the destructor has nothing to wait for
    EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(1));
}

TEST_F(WebhookStartTest, RefusesAMissingSecretFile) {
    std::string path = (dir_ / "absent.key").string();
    std::string msg = refusal(config(path));
    EXPECT_NE(msg.find("approval webhook secret: cannot read " + path), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
}

TEST_F(WebhookStartTest, RefusesAWorldReadableSecretFileWithoutShowingTheKey) {
    std::string path = key_file(0644);
    std::string msg = refusal(config(path));
    EXPECT_NE(msg.find("approval webhook secret: " + path + " has mode 0644"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("chmod 600 " + path), std::string::npos) << msg;
    EXPECT_EQ(msg.find(kKey), std::string::npos) << msg;
}

TEST_F(WebhookStartTest, RefusesAnEmptySecretFile) {
    std::string path = (dir_ / "empty.key").string();
    std::ofstream(path) << "\n";
    ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
    std::string msg = refusal(config(path));
    EXPECT_NE(msg.find(path + " is empty"), std::string::npos) << msg;
}

TEST_F(WebhookStartTest, RefusesAUrlThatIsNotHttpWithoutShowingIt) {
    for (const char* url : {"ftp://hooks.example.test/T0/secret-path", "file:///etc/secret-path",
                            "hooks.example.test/secret-path", ""}) {
        auto c = config(key_file(0600));
        c.url = url;
        std::string msg = refusal(c);
        EXPECT_NE(msg.find("approval webhook url: "), std::string::npos) << url << ": " << msg;
        EXPECT_EQ(msg.find("secret-path"), std::string::npos) << msg;
    }
}

TEST_F(WebhookStartTest, RefusesUnboundedRetriesOrTimeouts) {
    auto c = config(key_file(0600));
    c.attempts = 0;
    EXPECT_NE(refusal(c).find("approval webhook attempts: 0 is not between 1 and 10"),
              std::string::npos);
    c.attempts = 11;
    EXPECT_NE(refusal(c).find("attempts: 11"), std::string::npos);
    c = config(key_file(0600));
    c.timeout = std::chrono::seconds(0);
    EXPECT_NE(refusal(c).find("approval webhook timeout: 0 s"), std::string::npos);
    c = config(key_file(0600));
    c.first_backoff = std::chrono::milliseconds(-1);
    EXPECT_NE(refusal(c).find("approval webhook first backoff: -1 ms"), std::string::npos);
}

TEST_F(WebhookStartTest, RefusesACaBundleOthersCanChange) {
    auto c = config(key_file(0600));
    c.ca_bundle = (dir_ / "ca.pem").string();
    std::ofstream(c.ca_bundle) << "not checked before it is trusted\n";
    ASSERT_EQ(::chmod(c.ca_bundle.c_str(), 0666), 0);
    std::string msg = refusal(c);
    EXPECT_NE(msg.find("approval webhook CA bundle: " + c.ca_bundle), std::string::npos) << msg;
}

}  // namespace
}  // namespace cordon::approval
