// SPDX-License-Identifier: Apache-2.0
// The approval webhook against a real receiver (tests/webhook/receiver.py)
// on 127.0.0.1: what arrives is what was sent, signed, and the receiver's
// own HMAC check agrees; 5xx and 429 are retried with the same delivery id
// and growing backoffs up to the bound, other answers are not; nothing
// listening fails after the bound; the destructor keeps to its drain
// timeout when the receiver never answers; an unprotected secret file is
// refused; neither the key nor the URL's path reaches logs or errors. Only
// loopback traffic; the receiver is killed by its pid.
#include "approval/webhook.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include "cordon/fd.h"
#include "cordon/log.h"
#include "webhook_receiver.h"

extern char** environ;

namespace cordon::approval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kKey = "w3bh00k-k3y-for-tests";
constexpr const char* kEvent = "approval.requested";

using testing::WebhookReceiver;

// What on_result reported, for the test's thread to wait on.
class Results {
  public:
    ResultCallback callback() {
        return [this](const DeliveryResult& r) {
            std::lock_guard lock(mu_);
            all_.push_back(r);
            changed_.notify_all();
        };
    }
    // The first n results, or fewer when they took longer than 30 s.
    std::vector<DeliveryResult> wait_for(size_t n) {
        std::unique_lock lock(mu_);
        changed_.wait_for(lock, 30s, [&] { return all_.size() >= n; });
        return all_;
    }
    std::vector<DeliveryResult> all() {
        std::lock_guard lock(mu_);
        return all_;
    }

  private:
    std::mutex mu_;
    std::condition_variable changed_;
    std::vector<DeliveryResult> all_;
};

class WebhookTest : public ::testing::Test {
  protected:
    void SetUp() override {
        // Loopback only: no proxy of the environment in the way.
        for (const char* v : {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"})
            ::unsetenv(v);
        char tmpl[] = "/tmp/cordon-webhook-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        key_ = dir_ / "webhook.key";
        std::ofstream(key_) << kKey << "\n";
        ASSERT_EQ(::chmod(key_.c_str(), 0600), 0);
    }
    void TearDown() override {
        webhook_.reset();
        receiver_.reset();
        fs::remove_all(dir_);
    }

    // Starts receiver.py with its options ("--fail", "--status", "--hang").
    void start_receiver(const std::vector<std::string>& options = {}) {
        receiver_ = std::make_unique<WebhookReceiver>(log_path(), key_, options);
        ASSERT_TRUE(receiver_->running()) << "tests/webhook/receiver.py did not start";
    }

    // Fast retries, so that a test of five attempts takes a fraction of a second.
    WebhookConfig config(int port, int attempts = 5) {
        WebhookConfig c;
        c.url = "http://127.0.0.1:" + std::to_string(port) + "/hooks/approval?channel=ops";
        c.secret_file = key_.string();
        c.attempts = attempts;
        c.first_backoff = 20ms;
        c.timeout = 5s;
        return c;
    }

    void start_webhook(WebhookConfig c) {
        auto w = Webhook::start(std::move(c), results_.callback());
        ASSERT_TRUE(w) << w.error().message();
        webhook_ = std::move(*w);
    }

    static std::string shown(int port) {
        return "webhook http://127.0.0.1:" + std::to_string(port) + "/...";
    }

    // The requests the receiver has recorded, oldest first.
    std::vector<json> requests() {
        std::vector<json> out;
        std::ifstream in(log_path());
        for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
        return out;
    }

    // Waits until the receiver has recorded n requests.
    std::vector<json> await_requests(size_t n) {
        for (int i = 0; i < 1500 && requests().size() < n; ++i) std::this_thread::sleep_for(20ms);
        return requests();
    }

    static json approval_body() {
        return {{"request", "9b7c1c2e-5a4f-4f51-9d0e-3a1f2b6c7d8e"},
                {"agentId", "support-agent"},
                {"tool", "issue_refund"},
                {"reason", "refund of 12,50 \u20ac for order \"A-17\"\nline two"},
                {"window", {{"seconds", 600}}}};
    }

    fs::path log_path() const { return dir_ / "requests.jsonl"; }

    fs::path dir_, key_;
    std::unique_ptr<WebhookReceiver> receiver_;
    Results results_;
    std::unique_ptr<Webhook> webhook_;
};

void expect_signed_request(const json& req, const std::string& body) {
    const json& h = req["headers"];
    EXPECT_EQ(req["method"], "POST");
    EXPECT_EQ(req["path"], "/hooks/approval?channel=ops");
    EXPECT_EQ(req["body"], body);
    EXPECT_EQ(h.value("Content-Type", ""), "application/json");
    EXPECT_EQ(h.value(kSignatureHeader, ""), signature(kKey, body));
    EXPECT_TRUE(req["signature_valid"]) << "receiver.py does not verify " << h.dump();
    EXPECT_EQ(h.value(kEventHeader, ""), kEvent);
}

TEST_F(WebhookTest, DeliversTheBodyAsSentSignedWithItsEventAndAUniqueDeliveryId) {
    start_receiver();
    start_webhook(config(receiver_->port()));
    json body = approval_body();
    webhook_->notify(kEvent, body);
    webhook_->notify(kEvent, {{"request", "second"}});

    auto results = results_.wait_for(2);
    ASSERT_EQ(results.size(), 2u);
    for (const auto& r : results) {
        EXPECT_TRUE(r.delivered) << r.error;
        EXPECT_EQ(r.event, kEvent);
        EXPECT_EQ(r.attempts, 1);
        EXPECT_EQ(r.status, 204);
        EXPECT_EQ(r.error, "");
        EXPECT_EQ(r.delivery.size(), 36u) << r.delivery;  // a UUID
    }
    EXPECT_NE(results[0].delivery, results[1].delivery);

    auto reqs = requests();
    ASSERT_EQ(reqs.size(), 2u);
    expect_signed_request(reqs[0], body.dump());
    EXPECT_EQ(json::parse(reqs[0]["body"].get<std::string>()), body);
    EXPECT_EQ(reqs[0]["headers"].value(kDeliveryHeader, ""), results[0].delivery);
    expect_signed_request(reqs[1], json{{"request", "second"}}.dump());
    EXPECT_EQ(reqs[1]["headers"].value(kDeliveryHeader, ""), results[1].delivery);
}

TEST_F(WebhookTest, AfterTwoFailuresDeliversOnTheThirdAttemptUnderTheSameDeliveryId) {
    start_receiver({"--fail", "2"});
    start_webhook(config(receiver_->port()));
    webhook_->notify(kEvent, approval_body());

    auto results = results_.wait_for(1);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_TRUE(results[0].delivered) << results[0].error;
    EXPECT_EQ(results[0].attempts, 3);
    EXPECT_EQ(results[0].status, 204);

    auto reqs = requests();
    ASSERT_EQ(reqs.size(), 3u);
    for (const auto& req : reqs) {
        expect_signed_request(req, approval_body().dump());
        EXPECT_EQ(req["headers"].value(kDeliveryHeader, ""), results[0].delivery);
    }
}

TEST_F(WebhookTest, RetriesA429) {
    start_receiver({"--fail", "1", "--status", "429"});
    start_webhook(config(receiver_->port()));
    webhook_->notify(kEvent, approval_body());

    auto results = results_.wait_for(1);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_TRUE(results[0].delivered) << results[0].error;
    EXPECT_EQ(results[0].attempts, 2);
    EXPECT_EQ(requests().size(), 2u);
}

// 5xx and 429 are retried: exactly `attempts` requests, under one delivery
// id, each after the backoff, doubled from the first; then one failure.
class WebhookRetriedStatusTest : public WebhookTest, public ::testing::WithParamInterface<int> {};

TEST_P(WebhookRetriedStatusTest, GetsExactlyTheAttemptsWithGrowingBackoffsThenFails) {
    const int status = GetParam();
    start_receiver({"--fail", "always", "--status", std::to_string(status)});
    auto c = config(receiver_->port(), 4);
    c.first_backoff = 30ms;
    start_webhook(c);
    webhook_->notify(kEvent, approval_body());

    auto results = results_.wait_for(1);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_FALSE(results[0].delivered);
    EXPECT_EQ(results[0].attempts, 4);
    EXPECT_EQ(results[0].status, status);
    EXPECT_EQ(results[0].error,
              shown(receiver_->port()) + ": HTTP " + std::to_string(status) + " after 4 attempts");

    // None after the report either.
    std::this_thread::sleep_for(300ms);
    auto reqs = requests();
    ASSERT_EQ(reqs.size(), 4u);
    for (const auto& req : reqs) {
        expect_signed_request(req, approval_body().dump());
        EXPECT_EQ(req["headers"].value(kDeliveryHeader, ""), results[0].delivery);
    }
    // The receiver's clock: each gap holds the answer, the backoff and a new
    // connection, so it is at least the backoff; and well short of a second.
    std::chrono::duration<double> backoff = c.first_backoff;
    for (size_t i = 1; i < reqs.size(); ++i, backoff *= 2) {
        double gap = reqs[i]["arrived"].get<double>() - reqs[i - 1]["arrived"].get<double>();
        EXPECT_GE(gap, backoff.count()) << "before attempt " << i + 1;
        EXPECT_LT(gap, backoff.count() + 0.5) << "before attempt " << i + 1;
    }
}

INSTANTIATE_TEST_SUITE_P(Status, WebhookRetriedStatusTest, ::testing::Values(500, 503, 429));

// Any other answer is final: one request, its status, and why.
class WebhookFinalStatusTest : public WebhookTest, public ::testing::WithParamInterface<int> {};

TEST_P(WebhookFinalStatusTest, IsNotRetried) {
    const int status = GetParam();
    start_receiver({"--fail", "always", "--status", std::to_string(status)});
    start_webhook(config(receiver_->port()));
    webhook_->notify(kEvent, approval_body());

    auto results = results_.wait_for(1);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_FALSE(results[0].delivered);
    EXPECT_EQ(results[0].attempts, 1);
    EXPECT_EQ(results[0].status, status);
    const std::string& e = results[0].error;
    EXPECT_EQ(e.rfind(shown(receiver_->port()) + ": HTTP " + std::to_string(status), 0), 0u) << e;
    EXPECT_TRUE(e.ends_with(", not retried")) << e;
    if (status == 401) {
        EXPECT_NE(e.find("verifies X-Cordon-Signature-256"), std::string::npos) << e;
    }
    if (status == 302) {
        EXPECT_NE(e.find("redirects are not followed"), std::string::npos) << e;
    }
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(requests().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Status, WebhookFinalStatusTest, ::testing::Values(400, 401, 404, 302));

TEST_F(WebhookTest, NothingListeningFailsAfterTheBoundedAttempts) {
    // Bound and never listening: connections are refused, and no other
    // process can take the port while the test runs.
    UniqueFd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::getsockname(sock.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
    int port = ntohs(addr.sin_port);

    start_webhook(config(port, 3));
    auto before = std::chrono::steady_clock::now();
    webhook_->notify(kEvent, approval_body());

    auto results = results_.wait_for(1);
    // Refused at once each time: what took time is the backoffs, 20 and 40 ms.
    EXPECT_GE(std::chrono::steady_clock::now() - before, 60ms);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_FALSE(results[0].delivered);
    EXPECT_EQ(results[0].attempts, 3);
    EXPECT_EQ(results[0].status, 0);
    const std::string& e = results[0].error;
    EXPECT_EQ(e.rfind(shown(port) + ": Couldn't connect to server", 0), 0u) << e;
    EXPECT_NE(e.find(" after 3 attempts"), std::string::npos) << e;
}

TEST_F(WebhookTest, DestructorKeepsToItsDrainTimeoutWhenTheReceiverNeverAnswers) {
    start_receiver({"--hang"});
    auto c = config(receiver_->port());
    c.timeout = 1s;
    start_webhook(c);
    webhook_->notify(kEvent, approval_body());
    webhook_->notify(kEvent, {{"request", "second"}});
    ASSERT_EQ(await_requests(1).size(), 1u);

    auto before = std::chrono::steady_clock::now();
    webhook_.reset();
    auto took = std::chrono::steady_clock::now() - before;
    // Without the cut, five attempts of 1 s each and their backoffs.
    EXPECT_LT(took, 2500ms);

    // Both reported, as failed, by the time the destructor returned.
    auto results = results_.all();
    ASSERT_EQ(results.size(), 2u);
    for (const auto& r : results) {
        EXPECT_FALSE(r.delivered);
        EXPECT_EQ(r.error.rfind(shown(receiver_->port()) + ": ", 0), 0u) << r.error;
    }
    EXPECT_NE(results[1].error.find("not sent: the session ended before the queue drained"),
              std::string::npos)
        << results[1].error;
}

TEST_F(WebhookTest, EventsPastAFullQueueAreDroppedAndEachIsReported) {
    start_receiver({"--hang"});
    auto c = config(receiver_->port(), 1);
    c.timeout = 1s;
    start_webhook(c);
    webhook_->notify(kEvent, approval_body());
    // The first is in flight, so the queue is empty again before the rest.
    ASSERT_EQ(await_requests(1).size(), 1u);
    for (size_t i = 0; i < Webhook::kMaxQueued + 3; ++i)
        webhook_->notify(kEvent, {{"request", std::to_string(i)}});
    webhook_.reset();

    auto results = results_.all();
    ASSERT_EQ(results.size(), 1 + Webhook::kMaxQueued + 3);
    std::set<std::string> ids;
    size_t dropped = 0;
    for (const auto& r : results) {
        EXPECT_FALSE(r.delivered);
        ids.insert(r.delivery);
        if (r.error.find(": event dropped, not sent: 64 events wait already") == std::string::npos)
            continue;
        ++dropped;
        EXPECT_EQ(r.attempts, 0);
    }
    EXPECT_EQ(dropped, 3u);
    EXPECT_EQ(ids.size(), results.size()) << "a delivery id reported twice";
}

TEST_F(WebhookTest, AnEventNameThatCouldEndItsHeaderIsDroppedUnsent) {
    start_receiver();
    start_webhook(config(receiver_->port()));
    webhook_->notify("approval.requested\r\nX-Injected: 1", approval_body());
    webhook_->notify(kEvent, approval_body());

    auto results = results_.wait_for(2);
    ASSERT_EQ(results.size(), 2u);
    EXPECT_FALSE(results[0].delivered);
    EXPECT_EQ(results[0].attempts, 0);
    EXPECT_NE(results[0].error.find("the event name is not an HTTP token"), std::string::npos);
    EXPECT_TRUE(results[1].delivered) << results[1].error;
    EXPECT_EQ(requests().size(), 1u);
}

// receiver.py's check is its own (Python's hmac), not an echo of ours: a
// body signed under another key arrives, and fails it.
TEST_F(WebhookTest, TheReceiverTellsABodySignedUnderAnotherKey) {
    start_receiver();
    fs::path other = dir_ / "other.key";
    std::ofstream(other) << "not-the-receivers-key\n";
    ASSERT_EQ(::chmod(other.c_str(), 0600), 0);
    auto c = config(receiver_->port());
    c.secret_file = other.string();
    start_webhook(c);
    webhook_->notify(kEvent, approval_body());

    ASSERT_EQ(results_.wait_for(1).size(), 1u);
    auto reqs = requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_FALSE(reqs[0]["signature_valid"]);
    EXPECT_EQ(reqs[0]["headers"].value(kSignatureHeader, ""),
              signature("not-the-receivers-key", approval_body().dump()));
}

// A secret file others could read or replace is refused before any
// request, by a message that names the file, says why and how to fix it,
// and never shows the key.
TEST_F(WebhookTest, RefusesAnUnprotectedSecretFileWithAClearError) {
    start_receiver();
    struct Case {
        const char* why;
        std::function<void()> spoil;
        std::string expected;
    };
    const std::string path = key_.string();
    const Case cases[] = {
        {"readable by its group", [&] { ASSERT_EQ(::chmod(key_.c_str(), 0640), 0); },
         "approval webhook secret: " + path +
             " has mode 0640: group or others may read or change the secret (run: chown "
             "root:root " +
             path + " && chmod 600 " + path + ")"},
        {"owned by another account", [&] { ASSERT_EQ(::chown(key_.c_str(), 65534, 65534), 0); },
         "approval webhook secret: " + path + " is owned by uid 65534, not by root"},
        {"a symbolic link",
         [&] {
             fs::path target = dir_ / "target.key";
             fs::rename(key_, target);
             fs::create_symlink(target, key_);
         },
         "approval webhook secret: " + path + " is a symbolic link"},
    };
    for (const auto& k : cases) {
        SCOPED_TRACE(k.why);
        fs::remove(key_);
        std::ofstream(key_) << kKey << "\n";
        ASSERT_EQ(::chmod(key_.c_str(), 0600), 0);
        k.spoil();
        auto w = Webhook::start(config(receiver_->port()), results_.callback());
        ASSERT_FALSE(w) << "started with a secret file " << k.why;
        std::string msg = w.error().message();
        EXPECT_EQ(msg.rfind(k.expected, 0), 0u) << msg;
        EXPECT_EQ(msg.find(kKey), std::string::npos) << msg;
    }
    EXPECT_TRUE(requests().empty());
    EXPECT_TRUE(results_.all().empty());
}

// The layer's debug log, as a daemon run with --log-level debug would write it.
class CapturedLog {
  public:
    // Its lines go here only, not to the test's stderr too.
    CapturedLog()
        : logger_(layer_logger("approval")), level_(logger_->level()), saved_(logger_->sinks()) {
        logger_->sinks() = {std::make_shared<spdlog::sinks::ostream_sink_mt>(text_)};
        logger_->set_level(spdlog::level::trace);
    }
    // Only once the webhook has stopped: sinks are not changed under a logger in use.
    ~CapturedLog() {
        logger_->sinks() = saved_;
        logger_->set_level(level_);
    }
    std::string text() {
        logger_->flush();
        return text_.str();
    }

  private:
    std::shared_ptr<spdlog::logger> logger_;
    spdlog::level::level_enum level_;
    std::vector<spdlog::sink_ptr> saved_;
    std::ostringstream text_;
};

// Neither the key nor the URL's path and query (where chat systems put the
// credential of an incoming webhook) reach the log or the reports.
TEST_F(WebhookTest, NeitherTheKeyNorTheUrlPathReachesLogsOrErrors) {
    CapturedLog log;
    start_receiver({"--fail", "always", "--status", "503"});
    start_webhook(config(receiver_->port(), 3));
    webhook_->notify(kEvent, approval_body());
    auto results = results_.wait_for(1);
    webhook_.reset();

    ASSERT_EQ(results.size(), 1u);
    std::string text = log.text();
    EXPECT_NE(text.find("trying again in 20 ms"), std::string::npos) << text;  // it did log
    for (const std::string& s : {text, results[0].error}) {
        EXPECT_EQ(s.find(kKey), std::string::npos) << s;
        EXPECT_EQ(s.find("hooks/approval"), std::string::npos) << s;
        EXPECT_EQ(s.find("channel=ops"), std::string::npos) << s;
    }
}

}  // namespace
}  // namespace cordon::approval
