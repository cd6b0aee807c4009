// SPDX-License-Identifier: Apache-2.0
// The approval broker against a kernel of the test's: its real sockets
// (the approvers' and the agent's, in a directory of the test's) and hooks
// that record what it asks of the gates. What it writes to the audit log
// is checked event by event: the count of uses it reports is the
// kernel's, held-back events are counted, and a replaced grant is closed.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <thread>

#include "approval/broker.h"
#include "cordon/fd.h"
#include "daemon/protocol.h"
#include "policy/policy.h"
#include "profile/profile.h"

namespace cordon::approval {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

json doc() {
    return json::parse(R"({
      "apiVersion": "cordon/v1",
      "identity": {"agentId": "support-agent", "agentType": "support", "version": "1",
                   "expiresAt": "2099-01-31T00:00:00Z"},
      "allowedTools": [],
      "approvalRequired": ["issue_refund"],
      "tools": {"issue_refund": {"endpoints": ["127.0.0.4:18083"]}},
      "approval": {"approvers": {"users": ["root"]}, "maxWindow": "1h"}
    })");
}

// The gates as the kernel keeps them: each opening counts from 0.
struct FakeGates {
    std::map<uint16_t, netfilter::GateState> gates;
    int credentials_opened = 0;
    int credentials_closed = 0;
};

class ApprovalBrokerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "the approval sockets' directories are root's";
        dir_ = "/tmp/cordon-broker-" + std::to_string(::getpid());
        fs::remove_all(dir_);
        auto now =
            std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
        profile_ = profile::parse_profile(doc(), now);
        policy_ = policy::compute_policy(profile_, now);
        BrokerConfig config;
        config.profile = &profile_;
        config.policy = &policy_;
        config.session_id = "s1";
        config.launcher_uid = 1;
        config.agent_uid = 65534;
        config.deadline = now + 1h;
        config.approvals_dir = dir_ + "/approvals";
        config.agent_dir = dir_ + "/agent";
        auto broker = Broker::start(std::move(config), hooks());
        ASSERT_TRUE(broker) << broker.error().message();
        broker_ = std::move(*broker);
    }

    void TearDown() override {
        broker_.reset();
        fs::remove_all(dir_);
    }

    BrokerHooks hooks() {
        BrokerHooks h;
        h.open_gate = [this](uint16_t gate, std::optional<uint32_t> uses, auto) {
            gates_.gates[gate] = {true, uses, 0};
            return ok_status();
        };
        h.close_gate = [this](uint16_t gate) {
            gates_.gates.erase(gate);
            return ok_status();
        };
        h.gate_state = [this](uint16_t gate) -> Result<netfilter::GateState> {
            return gates_.gates.count(gate) ? gates_.gates[gate] : netfilter::GateState{};
        };
        h.open_credentials = [this](const std::string&) {
            gates_.credentials_opened++;
            return ok_status();
        };
        h.close_credentials = [this](const std::string&) { gates_.credentials_closed++; };
        h.audit = [this](const std::string& event, const json& fields) {
            json e = fields;
            e["event"] = event;
            events_.push_back(e);
        };
        return h;
    }

    // What the events named `name` held back, all told.
    uint64_t held_back(const std::string& name) const {
        uint64_t n = 0;
        for (const auto& e : events(name)) n += e.value("earlierSuppressed", uint64_t{0});
        return n;
    }

    std::vector<json> events(const std::string& name) const {
        std::vector<json> out;
        for (const auto& e : events_)
            if (e["event"] == name) out.push_back(e);
        return out;
    }

    // The agent tried the gated tool while its gate was closed: the id of
    // the request that made.
    std::string attempt() {
        netfilter::Denial d;
        d.reason = "approval-required";
        d.gate = 1;
        d.hook = "connect4";
        d.protocol = "tcp";
        broker_->on_event(d);
        auto requests = events("approval.request");
        return requests.empty() ? "" : requests.back()["id"].get<std::string>();
    }

    // The kernel let a connection through gate 1 and reported it.
    void use(bool reported = true) {
        auto& state = gates_.gates[1];
        state.used++;
        if (state.uses_left) --*state.uses_left;
        if (!reported) return;
        netfilter::Denial d;
        d.reason = "gate-use";
        d.gate = 1;
        d.hook = "connect4";
        d.protocol = "tcp";
        d.used = state.used;
        d.uses_left = state.uses_left;
        broker_->on_event(d);
    }

    UniqueFd connect_to(const std::string& path, int type) {
        UniqueFd fd(::socket(AF_UNIX, type | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        EXPECT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
            << path << ": " << std::strerror(errno);
        return fd;
    }

    // Lets the broker work until fd has something to read.
    bool pump_until_readable(int fd) {
        for (int i = 0; i < 200; ++i) {
            broker_->on_ready();
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 5) == 1) return true;
        }
        return false;
    }

    // One request as cordonctl (root here) makes it: the answer.
    json call(const json& request) {
        UniqueFd fd = connect_to(dir_ + "/approvals/s1.sock", SOCK_SEQPACKET);
        EXPECT_TRUE(daemon::send_message(fd.get(), request));
        if (!pump_until_readable(fd.get())) return json();
        auto m = daemon::receive_message(fd.get(), 1 << 20);
        return m && *m ? (*m)->body : json();
    }

    json approve(const std::string& id, std::optional<uint32_t> uses = std::nullopt) {
        json request = {{"op", "approve"}, {"id", id}, {"for", 120}};
        if (uses) request["uses"] = *uses;
        json answer = call(request);
        EXPECT_EQ(answer["ok"], true) << answer.dump();
        return answer;
    }

    // The agent asks for `tool` `times` times on one connection; every
    // answer read.
    void ask(const std::string& tool, int times) {
        UniqueFd fd = connect_to(dir_ + "/agent/socket", SOCK_STREAM);
        std::string line = json{{"tool", tool}}.dump() + "\n";
        for (int i = 0; i < times; ++i) {
            ASSERT_EQ(::write(fd.get(), line.data(), line.size()),
                      static_cast<ssize_t>(line.size()));
            ASSERT_TRUE(pump_until_readable(fd.get()));
            char buf[4096];
            ASSERT_GT(::read(fd.get(), buf, sizeof buf), 0);
        }
    }

    std::string dir_;
    profile::Profile profile_;
    policy::EffectivePolicy policy_;
    FakeGates gates_;
    std::vector<json> events_;
    std::unique_ptr<Broker> broker_;
};

// An agent that asks for a tool that is none, in a loop, spends a budget
// of its own: the uses of a grant are still on the record.
TEST_F(ApprovalBrokerTest, AsksForABogusToolCannotHideUses) {
    approve(attempt());
    ask("bogus", 200);
    auto refused = events("approval.refused");
    ASSERT_FALSE(refused.empty());
    EXPECT_LT(refused.size(), 200u) << "asks have a budget";
    EXPECT_EQ(refused[0]["op"], "ask");
    for (int i = 0; i < 20; ++i) use();
    auto uses = events("approval.use");
    ASSERT_EQ(uses.size(), 20u);
    EXPECT_EQ(uses[19]["used"], 20);
    EXPECT_TRUE(uses[19]["usesLeft"].is_null());
    // The asks held back are counted on the next refusal written.
    std::this_thread::sleep_for(100ms);
    ask("bogus", 1);
    refused = events("approval.refused");
    EXPECT_TRUE(refused.back().contains("earlierSuppressed"));
    EXPECT_EQ(refused.size() + held_back("approval.refused"), 201u);
}

// Uses over the budget are held back, counted, and reported: on the next
// approval.use, and on approval.close.
TEST_F(ApprovalBrokerTest, HeldBackUseEventsAreCountedAndReported) {
    approve(attempt());
    constexpr int kFlood = 200;
    for (int i = 0; i < kFlood; ++i) use();
    size_t written = events("approval.use").size();
    EXPECT_LT(written, static_cast<size_t>(kFlood));
    std::this_thread::sleep_for(100ms);
    use();
    auto uses = events("approval.use");
    ASSERT_EQ(uses.size(), written + 1);
    EXPECT_TRUE(uses.back().contains("earlierSuppressed"));
    uint64_t held = held_back("approval.use");
    EXPECT_EQ(uses.size() + held, static_cast<size_t>(kFlood + 1));
    EXPECT_EQ(uses.back()["used"], kFlood + 1);

    broker_->end();
    auto closed = events("approval.close");
    ASSERT_EQ(closed.size(), 1u);
    EXPECT_EQ(closed[0]["cause"], "session-ended");
    EXPECT_EQ(closed[0]["used"], kFlood + 1);
    EXPECT_EQ(closed[0]["useEventsSuppressed"], held);
}

// Uses whose events the ring buffer lost still count: `used` is the
// kernel's, in the approvers' list and in approval.close.
TEST_F(ApprovalBrokerTest, UsedIsTheKernelsCountNotTheEventsSeen) {
    std::string id = attempt();
    approve(id);
    for (int i = 0; i < 3; ++i) use();
    for (int i = 0; i < 1997; ++i) use(false);
    json list = call({{"op", "list"}});
    ASSERT_EQ(list["grants"].size(), 1u) << list.dump();
    EXPECT_EQ(list["grants"][0]["used"], 2000);

    broker_->end();
    auto closed = events("approval.close");
    ASSERT_EQ(closed.size(), 1u);
    EXPECT_EQ(closed[0]["id"], id);
    EXPECT_EQ(closed[0]["used"], 2000);
    EXPECT_EQ(closed[0]["useEventsSuppressed"], 0);
}

// A grant's last use spent, the agent asks again and a new grant replaces
// it while its window is still open: the old one is closed on the record,
// its credentials and gate left to the new one.
TEST_F(ApprovalBrokerTest, AReplacedGrantIsClosedWithCauseReplaced) {
    std::string first = attempt();
    approve(first, 1);
    use();
    EXPECT_EQ(gates_.gates[1].uses_left, 0u);
    std::string second = attempt();
    ASSERT_NE(second, first);
    approve(second, 2);
    EXPECT_EQ(gates_.gates[1].uses_left, 2u);

    auto closed = events("approval.close");
    ASSERT_EQ(closed.size(), 1u);
    EXPECT_EQ(closed[0]["id"], first);
    EXPECT_EQ(closed[0]["cause"], "replaced");
    EXPECT_EQ(closed[0]["used"], 1);
    EXPECT_EQ(closed[0]["uses"], 1);
    EXPECT_EQ(gates_.credentials_opened, 1);
    EXPECT_EQ(gates_.credentials_closed, 0);
    // The close comes before the grant that replaced it.
    auto at = [&](const std::string& event, const std::string& id) {
        for (size_t i = 0; i < events_.size(); ++i)
            if (events_[i]["event"] == event && events_[i]["id"] == id) return i;
        return events_.size();
    };
    EXPECT_LT(at("approval.close", first), at("approval.grant", second));

    use();
    broker_->end();
    closed = events("approval.close");
    ASSERT_EQ(closed.size(), 2u);
    EXPECT_EQ(closed[1]["id"], second);
    EXPECT_EQ(closed[1]["cause"], "session-ended");
    EXPECT_EQ(closed[1]["used"], 1);
    EXPECT_EQ(gates_.credentials_closed, 1);
}

}  // namespace
}  // namespace cordon::approval
