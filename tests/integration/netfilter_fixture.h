// SPDX-License-Identifier: Apache-2.0
// The fixture of the netfilter integration tests: programs attached to a
// cgroup root of the test's own, sessions as map entries, probes (see
// netfilter_probe.h) as forked processes in session cgroups, denials read
// back from the session's ring buffer.
#pragma once

#include <bpf/bpf.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bpf/netfilter/netfilter.h"
#include "cgroup/cgroup.h"
#include "cordon/fd.h"
#include "netfilter/netfilter.h"
#include "netfilter_probe.h"

namespace cordon::netfilter::testing {

using namespace cordon::testing;

inline Rule rule(const std::string& addr, uint8_t prefix_len, uint16_t first, uint16_t last,
                 uint8_t protocols = CORDON_PROTO_TCP) {
    Rule r;
    r.address = ip(addr);
    r.prefix_len = prefix_len;
    r.ports = {first, last};
    r.protocols = protocols;
    return r;
}

// The same rule, passing only while the session's gate is open.
inline Rule gated(Rule r, uint16_t gate) {
    r.gate = gate;
    return r;
}

// Where bpffs belongs. A host without it gets it mounted, as systemd does at boot.
inline bool ensure_bpffs() {
    struct statfs fs;
    if (statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC) return true;
    return mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") == 0;
}

// Programs attached to a cgroup root of the test's own and pinned under a
// name of its own; every session and cgroup it made is removed at the end.
// A derived fixture may set config_ (map sizes) and name_ in its constructor.
class NetfilterFixture : public ::testing::Test {
  protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs and make cgroups";
        ASSERT_TRUE(ensure_bpffs()) << "cannot mount bpffs at /sys/fs/bpf";
        auto mount = cgroup::find_cgroup2_mount();
        ASSERT_TRUE(mount) << mount.error().message();
        std::string name = name_ + "-" + std::to_string(getpid());
        root_ = mount.value() + "/" + name;
        pin_dir_ = "/sys/fs/bpf/" + name;
        ASSERT_TRUE(cgroup::ensure_dir(root_));
        auto nf = Netfilter::open_or_attach(root_, pin_dir_, config_);
        ASSERT_TRUE(nf) << nf.error().message();
        nf_ = std::move(nf.value());
    }

    void TearDown() override {
        for (auto& cg : cgroups_) {
            if (nf_) {
                EXPECT_TRUE(nf_->remove_session(cg.id()));
            }
            EXPECT_TRUE(cg.destroy());
        }
        nf_.reset();
        if (!pin_dir_.empty()) {
            auto st = Netfilter::detach(pin_dir_);
            EXPECT_TRUE(st) << st.error().message();
            struct stat s;
            EXPECT_NE(stat(pin_dir_.c_str(), &s), 0) << pin_dir_ << " left behind";
        }
        if (!root_.empty()) rmdir(root_.c_str());
    }

    // A cgroup under the test root; with rules, a session too.
    const cgroup::SessionCgroup& make_cgroup(const std::string& name) {
        auto cg = cgroup::SessionCgroup::create(root_, name);
        EXPECT_TRUE(cg) << cg.error().message();
        cgroups_.push_back(std::move(cg.value()));
        return cgroups_.back();
    }

    const cgroup::SessionCgroup& make_session(const std::string& name,
                                              const std::vector<Rule>& rules,
                                              const std::optional<Resolver>& resolver = kNoResolver,
                                              uint64_t egress_budget = 0) {
        const auto& cg = make_cgroup(name);
        auto st = nf_->add_session(cg.id(), rules, resolver, egress_budget);
        EXPECT_TRUE(st) << st.error().message();
        return cg;
    }

    std::vector<Denial> drain(uint64_t cgroup_id) {
        std::vector<Denial> out;
        auto stream = nf_->watch(cgroup_id);
        EXPECT_TRUE(stream) << stream.error().message();
        if (!stream) return out;
        auto n = stream.value()->drain([&](const Denial& d) { out.push_back(d); });
        EXPECT_TRUE(n) << n.error().message();
        return out;
    }

    // The probe was denied with EPERM, and exactly one event says so (with
    // the gate that covered the destination, for reason approval-required).
    void expect_denied(const cgroup::SessionCgroup& cg, const ProbeResult& r,
                       const std::string& hook, const std::string& addr, uint16_t port,
                       const std::string& protocol, const std::string& reason = "no-rule",
                       uint16_t gate = 0) {
        EXPECT_EQ(r.status, EPERM) << "pid " << r.pid;
        auto events = drain(cg.id());
        ASSERT_EQ(events.size(), 1u) << "denials reported for " << hook << " " << addr;
        const Denial& d = events[0];
        EXPECT_EQ(d.cgroup_id, cg.id());
        EXPECT_EQ(d.pid, static_cast<uint32_t>(r.pid));
        EXPECT_EQ(d.comm, kProbeComm);
        EXPECT_EQ(d.hook, hook);
        EXPECT_EQ(d.reason, reason);
        EXPECT_EQ(d.protocol, protocol);
        EXPECT_EQ(d.address, ip(addr)) << "expected " << addr;
        EXPECT_EQ(d.port, port);
        EXPECT_EQ(d.drops, 0u);
        EXPECT_EQ(d.gate, gate);
        EXPECT_FALSE(d.uses_left);
    }

    // One egress event: no task behind it, the session's drop count so far.
    void expect_egress(const Denial& d, const cgroup::SessionCgroup& cg, const std::string& addr,
                       uint16_t port, const std::string& protocol, const std::string& reason,
                       uint64_t drops) {
        EXPECT_EQ(d.cgroup_id, cg.id());
        EXPECT_EQ(d.hook, "egress");
        EXPECT_EQ(d.reason, reason);
        EXPECT_EQ(d.pid, 0u);
        EXPECT_EQ(d.comm, "");
        EXPECT_EQ(d.address, ip(addr)) << "expected " << addr;
        EXPECT_EQ(d.port, port);
        EXPECT_EQ(d.protocol, protocol);
        EXPECT_EQ(d.drops, drops);
    }

    SessionCounters counters(const cgroup::SessionCgroup& cg) {
        auto c = nf_->counters(cg.id());
        EXPECT_TRUE(c) << c.error().message();
        return c ? c.value() : SessionCounters{};
    }

    void expect_allowed(const cgroup::SessionCgroup& cg, const ProbeResult& r, int status = 0) {
        EXPECT_EQ(r.status, status) << "pid " << r.pid;
        EXPECT_TRUE(drain(cg.id()).empty());
    }

    // A pinned map of the test's program set, opened afresh.
    UniqueFd pinned_map(const std::string& name) {
        UniqueFd fd(bpf_obj_get((pin_dir_ + "/maps/" + name).c_str()));
        EXPECT_TRUE(fd.valid()) << "cannot open pinned map " << name << ": " << strerror(errno);
        return fd;
    }

    // Entries of a pinned map, all sessions together.
    size_t count_entries(const std::string& name) {
        UniqueFd fd = pinned_map(name);
        bpf_map_info info{};
        uint32_t len = sizeof(info);
        if (!fd.valid() || bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return SIZE_MAX;
        std::vector<uint8_t> key(info.key_size), next(info.key_size);
        size_t n = 0;
        const void* prev = nullptr;
        while (bpf_map_get_next_key(fd.get(), prev, next.data()) == 0) {
            n++;
            key = next;
            prev = key.data();
        }
        return n;
    }

    std::string name_ = "cordon-test-nf";
    NetfilterConfig config_;
    std::string root_;
    std::string pin_dir_;
    std::unique_ptr<Netfilter> nf_;
    std::deque<cgroup::SessionCgroup> cgroups_;  // deque: references stay valid
};

}  // namespace cordon::netfilter::testing
