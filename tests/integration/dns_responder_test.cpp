// SPDX-License-Identifier: Apache-2.0
// The session resolver against a real upstream (dnsmasq on loopback) and a
// real client (ldns, over UDP and TCP). What reaches the kernel is checked
// through the rules the responder hands over; the BPF side of those rules
// is tested end to end in agent_run_dns_test.cpp.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "dns/dns.h"
#include "dns/message.h"
#include "dns_upstream.h"
#include "policy/policy.h"
#include "profile/profile.h"

namespace cordon::dns {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::TestUpstream;

profile::Ip6 v4(const std::string& text) {
    profile::Ip6 out{};
    out[10] = out[11] = 0xff;
    inet_pton(AF_INET, text.c_str(), &out[12]);
    return out;
}

struct Reply {
    int rcode = -1;  // -1: no reply
    std::vector<std::string> addresses;
    std::vector<uint32_t> ttls;
};

// Asks the responder as a stub resolver would, over UDP or TCP.
// The timeout outlasts the responder's own wait for its upstream (two tries of 2 s).
Reply ask(const std::string& server, const std::string& name, ldns_rr_type type, bool tcp) {
    Reply out;
    ldns_resolver* res = ldns_resolver_new();
    ldns_rdf* addr = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, server.c_str());
    ldns_resolver_push_nameserver(res, addr);
    ldns_rdf_deep_free(addr);
    ldns_resolver_set_usevc(res, tcp);
    ldns_resolver_set_fallback(res, false);
    ldns_resolver_set_timeout(res, timeval{6, 0});
    ldns_resolver_set_retry(res, 1);
    ldns_rdf* qname = ldns_dname_new_frm_str(name.c_str());
    ldns_pkt* pkt = nullptr;
    if (ldns_resolver_query_status(&pkt, res, qname, type, LDNS_RR_CLASS_IN, LDNS_RD) ==
            LDNS_STATUS_OK &&
        pkt) {
        out.rcode = ldns_pkt_get_rcode(pkt);
        const ldns_rr_list* answer = ldns_pkt_answer(pkt);
        for (size_t i = 0; i < ldns_rr_list_rr_count(answer); ++i) {
            const ldns_rr* rr = ldns_rr_list_rr(answer, i);
            char* text = ldns_rdf2str(ldns_rr_rdf(rr, 0));
            out.addresses.push_back(text);
            out.ttls.push_back(ldns_rr_ttl(rr));
            free(text);
        }
    }
    if (pkt) ldns_pkt_free(pkt);
    ldns_rdf_deep_free(qname);
    ldns_resolver_deep_free(res);
    return out;
}

json policy_doc() {
    return json::parse(R"({
      "apiVersion": "cordon/v1",
      "identity": {"agentId": "dns-test", "agentType": "test", "version": "1",
                   "expiresAt": "2099-01-01T00:00:00Z"},
      "allowedTools": ["api", "cdn"],
      "deniedTools": ["exfil"],
      "tools": {
        "api": {"endpoints": ["api.allowed.test:443", "private.allowed.test:443",
                              "loop.allowed.test:443", "inrange.allowed.test:8443",
                              "10.9.0.0/16:8443"]},
        "cdn": {"endpoints": ["udp://*.cdn.test:4433"]},
        "exfil": {"endpoints": ["denied.test:443"]}
      }
    })");
}

class DnsResponderTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "needs root: the resolver binds port 53";
        dir_ = fs::temp_directory_path() /
               ("cordon-dns-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(dir_);
        profile_ =
            profile::parse_profile(policy_doc(), profile::parse_rfc3339("2026-01-01T00:00:00Z"));
        policy_ = policy::compute_policy(
            profile_, profile::parse_rfc3339("2026-01-01T00:00:00Z"),
            [](const std::string& name) -> Result<std::vector<profile::Ip6>> {
                // Start-time resolution is policy_test's; here names
                // resolve to a public address so that they validate.
                (void)name;
                return std::vector<profile::Ip6>{v4("198.51.100.99")};
            });
    }

    void TearDown() override {
        responder_.reset();
        upstream_.reset();
        if (!dir_.empty()) fs::remove_all(dir_);
    }

    void start(int upstream_ttl, profile::DnsPolicy ttl = {}) {
        upstream_ = std::make_unique<TestUpstream>(
            dir_,
            std::vector<TestUpstream::Record>{{"api.allowed.test", {"198.51.100.7"}},
                                              {"private.allowed.test", {"10.1.2.3", "fd00::5"}},
                                              {"loop.allowed.test", {"127.0.0.9", "::1"}},
                                              {"inrange.allowed.test", {"10.9.1.1"}},
                                              {"eu.cdn.test", {"198.51.100.20", "2001:db8::20"}},
                                              {"denied.test", {"198.51.100.66"}}},
            upstream_ttl);
        ASSERT_TRUE(upstream_->running()) << "dnsmasq did not start";
        auto ups = parse_upstreams(upstream_->spec());
        ASSERT_TRUE(ups.ok()) << ups.error().message();
        ResponderConfig config{&policy_, ttl, *ups, 0};
        ResponderHooks hooks{[this](const std::vector<netfilter::Rule>& rules) -> Status {
                                 std::lock_guard lock(mu_);
                                 ++applies_;
                                 if (fail_apply_) return plain_error("rules map is full");
                                 learned_ = rules;
                                 return ok_status();
                             },
                             [this](const std::string& event, const json& fields) {
                                 std::lock_guard lock(mu_);
                                 json e = fields;
                                 e["event"] = event;
                                 events_.push_back(e);
                             }};
        auto r = Responder::start(config, hooks);
        ASSERT_TRUE(r.ok()) << r.error().message();
        responder_ = std::move(*r);
    }

    std::vector<netfilter::Rule> learned() {
        std::lock_guard lock(mu_);
        return learned_;
    }
    std::vector<json> events(const std::string& name) {
        std::lock_guard lock(mu_);
        std::vector<json> out;
        for (const auto& e : events_)
            if (e["event"] == name) out.push_back(e);
        return out;
    }
    std::string server() const { return responder_->address_text(); }

    fs::path dir_;
    profile::Profile profile_;
    policy::EffectivePolicy policy_;
    std::unique_ptr<TestUpstream> upstream_;
    std::unique_ptr<Responder> responder_;
    std::mutex mu_;
    std::vector<netfilter::Rule> learned_;
    std::vector<json> events_;
    int applies_ = 0;
    bool fail_apply_ = false;
};

TEST_F(DnsResponderTest, ListensOnItsOwnLoopbackAddress) {
    start(60);
    EXPECT_EQ(server().rfind("127.53.", 0), 0u) << server();
    auto second = Responder::start({&policy_, {}, {{"127.0.0.1", upstream_->port()}}, 0}, {});
    ASSERT_TRUE(second.ok()) << second.error().message();
    EXPECT_NE((*second)->address_text(), server());
}

TEST_F(DnsResponderTest, AllowedNameIsAnsweredAndItsAddressLearnedForItsEndpoint) {
    start(60);
    Reply r = ask(server(), "api.allowed.test", LDNS_RR_TYPE_A, false);
    EXPECT_EQ(r.rcode, LDNS_RCODE_NOERROR);
    EXPECT_EQ(r.addresses, std::vector<std::string>{"198.51.100.7"});
    auto rules = learned();
    ASSERT_EQ(rules.size(), 1u);
    EXPECT_EQ(rules[0].address, v4("198.51.100.7"));
    EXPECT_EQ(rules[0].prefix_len, 128);
    EXPECT_EQ(rules[0].ports.first, 443);
    EXPECT_EQ(rules[0].ports.last, 443);
    EXPECT_EQ(rules[0].protocols, static_cast<uint8_t>(profile::Protocol::tcp));
    auto answers = events("dns.answer");
    ASSERT_EQ(answers.size(), 1u);
    EXPECT_EQ(answers[0]["name"], "api.allowed.test");
    EXPECT_EQ(answers[0]["queryType"], "A");
    EXPECT_EQ(answers[0]["tools"], json::array({"api"}));
    EXPECT_EQ(answers[0]["addresses"], json::array({"198.51.100.7"}));
    EXPECT_EQ(upstream_->queried_names(), std::vector<std::string>{"api.allowed.test"});
}

TEST_F(DnsResponderTest, WildcardMatchesNamesBelowItForBothFamiliesOverTcp) {
    start(60);
    Reply a = ask(server(), "EU.cdn.test", LDNS_RR_TYPE_A, true);
    Reply aaaa = ask(server(), "eu.cdn.test", LDNS_RR_TYPE_AAAA, true);
    EXPECT_EQ(a.addresses, std::vector<std::string>{"198.51.100.20"});
    EXPECT_EQ(aaaa.addresses, std::vector<std::string>{"2001:db8::20"});
    auto rules = learned();
    ASSERT_EQ(rules.size(), 2u);
    for (const auto& rule : rules) {
        EXPECT_EQ(rule.ports.first, 4433);
        EXPECT_EQ(rule.protocols, static_cast<uint8_t>(profile::Protocol::udp));
    }
    // The wildcard covers names below cdn.test, not cdn.test itself.
    EXPECT_EQ(ask(server(), "cdn.test", LDNS_RR_TYPE_A, false).rcode, LDNS_RCODE_REFUSED);
}

TEST_F(DnsResponderTest, RefusedNameIsNeverForwardedAndIsAudited) {
    start(60);
    std::string payload(150, 'a');
    std::string exfil = payload.substr(0, 60) + "." + payload.substr(60, 60) + ".evil.test";
    EXPECT_EQ(ask(server(), exfil, LDNS_RR_TYPE_A, false).rcode, LDNS_RCODE_REFUSED);
    EXPECT_EQ(ask(server(), "denied.test", LDNS_RR_TYPE_A, true).rcode, LDNS_RCODE_REFUSED);
    EXPECT_EQ(ask(server(), "api.allowed.test.evil.test", LDNS_RR_TYPE_TXT, false).rcode,
              LDNS_RCODE_REFUSED);
    EXPECT_TRUE(upstream_->queried_names().empty());
    EXPECT_TRUE(learned().empty());
    auto denials = events("net.deny");
    ASSERT_EQ(denials.size(), 3u);
    EXPECT_EQ(denials[0]["hook"], "dns");
    EXPECT_EQ(denials[0]["reason"], "name-not-allowed");
    EXPECT_EQ(denials[0]["protocol"], "udp");
    EXPECT_EQ(denials[0]["port"], 53);
    EXPECT_EQ(denials[0]["nameLength"], exfil.size());
    EXPECT_EQ(denials[0]["name"], exfil.substr(0, kAuditNameMax) + "...");
    EXPECT_EQ(denials[0]["queryType"], "A");
    EXPECT_EQ(denials[1]["name"], "denied.test");
    EXPECT_EQ(denials[1]["protocol"], "tcp");
    EXPECT_EQ(denials[2]["queryType"], "TXT");
}

// Sends a raw query for wire labels, returns the reply's rcode (-1: none).
int ask_labels(const std::string& server, const std::vector<std::string>& labels) {
    std::string q("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
    for (const auto& l : labels) q += static_cast<char>(l.size()) + l;
    q += std::string("\x00\x00\x01\x00\x01", 5);  // root, type A, class IN
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(53);
    inet_pton(AF_INET, server.c_str(), &sa.sin_addr);
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    unsigned char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ::close(fd);
    return n >= 4 ? (buf[3] & 0x0f) : -1;
}

TEST_F(DnsResponderTest, ADotOrOddByteInsideALabelIsRefusedNotMatchedAsText) {
    start(60);
    // In text "payload.x\.cdn.test" ends in ".cdn.test"; on the wire it is
    // two labels under "test", which the wildcard does not cover.
    EXPECT_EQ(ask_labels(server(), {"payload", "x.cdn", "test"}), LDNS_RCODE_REFUSED);
    EXPECT_EQ(ask_labels(server(), {std::string("a\0b", 3), "cdn", "test"}), LDNS_RCODE_REFUSED);
    EXPECT_EQ(ask_labels(server(), {"eu", "cdn", "test"}), LDNS_RCODE_NOERROR);
    EXPECT_EQ(upstream_->queried_names(), std::vector<std::string>{"eu.cdn.test"});
}

TEST_F(DnsResponderTest, ASlowTcpClientCannotHoldTheResolverOrDelayExpiry) {
    start(1, {std::chrono::seconds(0), std::chrono::seconds(1)});
    ASSERT_EQ(ask(server(), "api.allowed.test", LDNS_RR_TYPE_A, false).addresses.size(), 1u);
    // A client that announces a long query and sends one byte now and then.
    std::atomic<bool> stop{false};
    std::thread drip([&] {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(53);
        inet_pton(AF_INET, server().c_str(), &sa.sin_addr);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
            (void)!::send(fd, "\xff\xff", 2, MSG_NOSIGNAL);
            for (int i = 0; i < 40 && !stop; ++i) {
                (void)!::send(fd, "x", 1, MSG_NOSIGNAL);
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
        }
        ::close(fd);
    });
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (!learned().empty() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(learned().empty()) << "the address outlived its TTL behind a slow client";
    EXPECT_EQ(ask(server(), "api.allowed.test", LDNS_RR_TYPE_A, false).rcode, LDNS_RCODE_NOERROR);
    stop = true;
    drip.join();
}

TEST_F(DnsResponderTest, AFloodOfAllowedNamesIsRateLimitedInTheLogAndCounted) {
    start(60);
    constexpr int kQueries = 120;
    for (int i = 0; i < kQueries; ++i)
        ASSERT_NE(ask(server(), "n" + std::to_string(i) + ".cdn.test", LDNS_RR_TYPE_A, false).rcode,
                  -1);
    responder_.reset();  // reports what is still held back
    uint64_t reported = events("dns.answer").size(), suppressed = 0;
    for (const auto& e : events("dns.answer")) suppressed += e.value("suppressedBefore", 0);
    for (const auto& e : events("dns.answer.suppressed")) suppressed += e["count"].get<uint64_t>();
    EXPECT_LT(reported, static_cast<uint64_t>(kQueries));
    EXPECT_GE(reported, 50u);
    EXPECT_EQ(reported + suppressed, static_cast<uint64_t>(kQueries));
}

TEST_F(DnsResponderTest, PrivateAndLoopbackAnswersAreNotLearnedUnlessARangeAllowsThem) {
    start(60);
    Reply priv = ask(server(), "private.allowed.test", LDNS_RR_TYPE_A, false);
    EXPECT_EQ(priv.rcode, LDNS_RCODE_NOERROR);
    EXPECT_TRUE(priv.addresses.empty());
    EXPECT_TRUE(ask(server(), "loop.allowed.test", LDNS_RR_TYPE_AAAA, false).addresses.empty());
    EXPECT_TRUE(learned().empty());
    auto answers = events("dns.answer");
    ASSERT_EQ(answers.size(), 2u);
    EXPECT_EQ(answers[0]["notLearned"],
              json::parse(R"([{"address": "10.1.2.3", "range": "private"}])"));
    EXPECT_EQ(answers[1]["notLearned"],
              json::parse(R"([{"address": "::1", "range": "loopback"}])"));
    // 10.9.0.0/16 is an endpoint of its own, so a name may resolve into it.
    Reply in_range = ask(server(), "inrange.allowed.test", LDNS_RR_TYPE_A, false);
    EXPECT_EQ(in_range.addresses, std::vector<std::string>{"10.9.1.1"});
    ASSERT_EQ(learned().size(), 1u);
    EXPECT_EQ(learned()[0].address, v4("10.9.1.1"));
}

TEST_F(DnsResponderTest, OtherTypesOfAnAllowedNameGetAnEmptyAnswerWithoutForwarding) {
    start(60);
    Reply txt = ask(server(), "api.allowed.test", LDNS_RR_TYPE_TXT, false);
    EXPECT_EQ(txt.rcode, LDNS_RCODE_NOERROR);
    EXPECT_TRUE(txt.addresses.empty());
    EXPECT_TRUE(upstream_->queried_names().empty());
}

TEST_F(DnsResponderTest, TtlIsBoundedAndExpiryRemovesTheAddress) {
    start(1, {std::chrono::seconds(0), std::chrono::seconds(1)});
    Reply r = ask(server(), "api.allowed.test", LDNS_RR_TYPE_A, false);
    ASSERT_EQ(r.ttls, std::vector<uint32_t>{1});
    ASSERT_EQ(learned().size(), 1u);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!learned().empty() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(learned().empty());
    auto expired = events("dns.expire");
    ASSERT_EQ(expired.size(), 1u);
    EXPECT_EQ(expired[0]["addresses"], json::array({"198.51.100.7"}));
}

TEST_F(DnsResponderTest, TtlFloorKeepsAShortLivedAnswer) {
    start(1, {std::chrono::seconds(30), std::chrono::seconds(60)});
    Reply r = ask(server(), "api.allowed.test", LDNS_RR_TYPE_A, false);
    EXPECT_EQ(r.ttls, std::vector<uint32_t>{30});
}

TEST_F(DnsResponderTest, UnreachableUpstreamIsServfailAndAudited) {
    // A port nothing listens on: dnsmasq is never started for this test.
    auto ups = parse_upstreams("127.0.0.1:" + std::to_string(20000 + ::getpid() % 20000));
    ASSERT_TRUE(ups.ok());
    ResponderHooks hooks{[](const std::vector<netfilter::Rule>&) { return ok_status(); },
                         [this](const std::string& event, const json& fields) {
                             std::lock_guard lock(mu_);
                             json e = fields;
                             e["event"] = event;
                             events_.push_back(e);
                         }};
    auto r = Responder::start({&policy_, {}, *ups, 0}, hooks);
    ASSERT_TRUE(r.ok()) << r.error().message();
    responder_ = std::move(*r);
    EXPECT_EQ(ask(server(), "api.allowed.test", LDNS_RR_TYPE_A, false).rcode, LDNS_RCODE_SERVFAIL);
    auto errors = events("dns.error");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_NE(errors[0]["error"].get<std::string>().find("no upstream resolver answered"),
              std::string::npos)
        << errors[0].dump();
}

TEST_F(DnsResponderTest, RulesThatCannotBeInstalledWithholdTheAnswer) {
    start(60);
    fail_apply_ = true;
    EXPECT_EQ(ask(server(), "api.allowed.test", LDNS_RR_TYPE_A, false).rcode, LDNS_RCODE_SERVFAIL);
    EXPECT_EQ(events("dns.error").at(0)["error"], "rules map is full");
    fail_apply_ = false;
    // Nothing was kept of the failed attempt: the next answer learns it anew.
    EXPECT_EQ(ask(server(), "api.allowed.test", LDNS_RR_TYPE_A, false).addresses,
              std::vector<std::string>{"198.51.100.7"});
    EXPECT_EQ(learned().size(), 1u);
}

TEST_F(DnsResponderTest, GarbageGetsNoReplyAndTheResolverGoesOn) {
    start(60);
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(53);
    inet_pton(AF_INET, server().c_str(), &sa.sin_addr);
    const char junk[] = "\x01\x02not dns at all";
    ASSERT_EQ(::sendto(fd, junk, sizeof junk, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa),
              static_cast<ssize_t>(sizeof junk));
    timeval tv{0, 300000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    EXPECT_LT(::recv(fd, buf, sizeof buf, 0), 0);  // no reply
    ::close(fd);
    EXPECT_EQ(ask(server(), "api.allowed.test", LDNS_RR_TYPE_A, false).rcode, LDNS_RCODE_NOERROR);
}

TEST(DnsUpstreams, ParsesSpecsAndResolvConf) {
    auto ups = parse_upstreams("127.0.0.1:5353,[::1]:53,10.0.0.53");
    ASSERT_TRUE(ups.ok()) << ups.error().message();
    ASSERT_EQ(ups->size(), 3u);
    EXPECT_EQ((*ups)[0].port, 5353);
    EXPECT_EQ((*ups)[1].address, "::1");
    EXPECT_EQ((*ups)[2].port, 53);
    auto bad = parse_upstreams("resolver.example:53");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.error().message(),
              "\"resolver.example:53\" is not an upstream resolver: \"resolver.example\" is not "
              "an IP address (write ADDRESS, ADDRESS:PORT or [IPV6]:PORT)");
    auto path = fs::temp_directory_path() / ("cordon-resolv-" + std::to_string(::getpid()));
    {
        std::ofstream out(path);
        out << "# comment\nsearch example.com\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\n";
    }
    auto sys = system_upstreams(path);
    fs::remove(path);
    ASSERT_TRUE(sys.ok()) << sys.error().message();
    ASSERT_GE(sys->size(), 1u);
    EXPECT_EQ((*sys)[0].address, "192.0.2.53");
    EXPECT_FALSE(system_upstreams("/nonexistent/resolv.conf").ok());
}

}  // namespace
}  // namespace cordon::dns
