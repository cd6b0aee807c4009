// SPDX-License-Identifier: Apache-2.0
// Fail closed: when a layer cannot be applied, agent-run starts nothing and
// says which layer failed and why. Each failure is a real one, provoked on
// the real kernel; the agent would create a file, and the file must not
// exist afterwards.
#include "agent_run_fixture.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

class AgentRunFailClosedTest : public AgentRunTest {
  protected:
    // Runs agent-run with `options`, the agent a `touch` of ran_; expects
    // exit 125, `message` on stderr and, when `audited`, in session.error.
    void expect_refused(std::vector<std::string> options, const std::string& message,
                        bool audited) {
        std::vector<std::string> args = {"--profile", write_profile({}, {}).string()};
        args.insert(args.end(), options.begin(), options.end());
        args.insert(args.end(), {"--", "/usr/bin/touch", ran_.string()});
        auto r = run(args);
        EXPECT_EQ(r.exit_code, 125) << r.err;
        EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
        EXPECT_FALSE(fs::exists(ran_)) << "the agent ran";
        if (audited) {
            auto errors = events_named(audit_events(), "session.error");
            ASSERT_EQ(errors.size(), 1u) << read_text(audit_log_);
            EXPECT_NE(errors[0]["error"].get<std::string>().find(message), std::string::npos)
                << errors[0].dump();
        } else {
            EXPECT_FALSE(fs::exists(audit_log_)) << "refused before any session: no audit log";
        }
        EXPECT_TRUE(events_named(audit_events(), "session.start").empty());
        EXPECT_EQ(leftover_cgroups(), 0u);
    }

    // Where the agent would leave a mark: not its private /tmp or /var/tmp.
    fs::path ran_ = fs::path("/run") / ("cordon-fail-closed-ran-" + std::to_string(::getpid()));
    void TearDown() override {
        fs::remove(ran_);
        AgentRunTest::TearDown();
    }
};

// The kernel caps the seccomp instructions of a thread; agent-run started
// under filters that fill that cap cannot give its agent one more.
TEST_F(AgentRunFailClosedTest, SeccompFilterTheKernelRefusesStartsNothing) {
    wrapper_ = {std::string(CORDON_HELPERS_DIR) + "/sc_stack"};
    expect_refused({},
                   "cannot prepare the agent: installing the seccomp filter failed: Cannot "
                   "allocate memory (nothing was started)",
                   true);
}

TEST_F(AgentRunFailClosedTest, SeccompBaselineThatDoesNotCompileStartsNothing) {
    auto data = dir_ / "seccomp";
    fs::create_directories(data / "baselines");
    fs::copy_file(fs::path(CORDON_SOURCE_DIR) / "profiles/seccomp/groups.json",
                  data / "groups.json");
    write_text(data / "baselines/agent-default.json",
               R"({"baseline": "agent-default", "help": "broken", "default": "allow",
                   "rules": [{"syscalls": ["no_such_syscall"], "action": "errno:EPERM"}]})");
    expect_refused({"--seccomp-dir", data.string()},
                   "seccomp: " + (data / "baselines/agent-default.json").string() +
                       ": rules[0].syscalls[0]: unknown syscall 'no_such_syscall'",
                   false);
}

TEST_F(AgentRunFailClosedTest, CgroupThatCannotBeCreatedStartsNothing) {
    auto mount = cgroup::find_cgroup2_mount();
    ASSERT_TRUE(mount.ok());
    std::string name = "cordon-test-absent-" + std::to_string(::getpid()) + "/sub";
    expect_refused(
        {"--cgroup", name},
        "cgroup: cannot create cgroup " + *mount + "/" + name + ": No such file or directory",
        true);
}

TEST_F(AgentRunFailClosedTest, BpfPinDirNotOnBpffsStartsNothing) {
    auto pins = dir_ / "pins";
    expect_refused({"--bpf-pin-dir", pins.string()},
                   "network filter (BPF): " + dir_.string() +
                       " is not on a BPF filesystem (mount one: mount -t bpf bpf "
                       "/sys/fs/bpf)",
                   true);
}

// The files laid over the agent's view (its resolv.conf) cannot be made:
// the mount namespace has nothing to bind.
TEST_F(AgentRunFailClosedTest, MountNamespaceWithoutItsFilesStartsNothing) {
    auto run_dir = dir_ / "run";
    fs::create_directories(run_dir);
    write_text(run_dir / "sessions", "a file where the sessions directory belongs");
    expect_refused({"--run-dir", run_dir.string()},
                   "mount namespace: cannot create " + (run_dir / "sessions").string() + "/", true);
}

// agent-run on a kernel whose Landlock probe answers ENOSYS (a seccomp
// filter of the test's makes it so): a profile that asks for Landlock is
// refused, and --check says Landlock is missing.
TEST_F(AgentRunFailClosedTest, FilesystemSectionWithoutLandlockStartsNothing) {
#if !defined(__x86_64__)
    GTEST_SKIP() << "sc_nolandlock's filter knows x86_64 system call numbers only";
#endif
    wrapper_ = {std::string(CORDON_HELPERS_DIR) + "/sc_nolandlock"};
    auto profile = write_profile({}, {}, "5m", {{"filesystem", {{"write", {"/run"}}}}});
    auto r = run({"--profile", profile.string(), "--", "/usr/bin/touch", ran_.string()});
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.err.find("Landlock: the profile's filesystem section needs Landlock, and this "
                         "kernel was built without Landlock; nothing was started"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(ran_)) << "the agent ran";
    EXPECT_EQ(leftover_cgroups(), 0u);

    // Without the section the same host runs agents, and --check says why
    // Landlock is off.
    r = run({"--check", "--profile", write_profile({}, {}).string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto landlock = json::parse(r.out)["landlock"];
    EXPECT_TRUE(landlock["abi"].is_null()) << landlock.dump();
    EXPECT_EQ(landlock["missing"], "this kernel was built without Landlock");
    EXPECT_TRUE(landlock["enforced"].empty());
}

}  // namespace
}  // namespace cordon::testing
