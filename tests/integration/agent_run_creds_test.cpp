// SPDX-License-Identifier: Apache-2.0
// Session-scoped credentials end to end (issue 5): what the real agent-run
// refuses to read as a secret, and that a refusal starts nothing.
#include <sys/stat.h>

#include "agent_run_fixture.h"

namespace cordon::testing {
namespace {

using nlohmann::json;

class CredsTest : public AgentRunTest {
  protected:
    // A profile whose allowed tool needs one credential read from `source`.
    fs::path profile_with_source(const fs::path& source) {
        json extra = {
            {"tools", {{"allowed_tool", {{"credentials", {"tok"}}}}}},
            {"credentials",
             {{"tok", {{"source", {{"file", source.string()}}}, {"deliver", {{"env", "TOK"}}}}}}}};
        return write_profile({}, {}, "5m", extra);
    }
};

TEST_F(CredsTest, WorldReadableSourceFileStopsTheLaunchWithTheFix) {
    auto token = dir_ / "token";
    write_text(token, "s3cr3t-at-rest\n");
    ASSERT_EQ(::chmod(token.c_str(), 0644), 0);
    auto profile = profile_with_source(token);
    std::string fix = "run: chown root:root " + token.string() + " && chmod 600 " + token.string();

    for (const auto& args : {std::vector<std::string>{"--check", "--profile", profile},
                             std::vector<std::string>{"--profile", profile, "--", "true"}}) {
        auto r = run(args);
        EXPECT_EQ(r.exit_code, 125) << r.err;
        EXPECT_NE(r.err.find("credentials.tok.source.file: " + token.string() + " has mode 0644"),
                  std::string::npos)
            << r.err;
        EXPECT_NE(r.err.find(fix), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("s3cr3t"), std::string::npos) << r.err;
        EXPECT_EQ(r.out.find("s3cr3t"), std::string::npos) << r.out;
    }
    EXPECT_FALSE(fs::exists(audit_log_)) << "a refused credential must start no session";
    EXPECT_EQ(leftover_cgroups(), 0u);
}

TEST_F(CredsTest, SymlinkedSourceFileStopsTheLaunch) {
    auto token = dir_ / "token";
    write_text(token, "s3cr3t-at-rest\n");
    ASSERT_EQ(::chmod(token.c_str(), 0600), 0);
    auto link = dir_ / "token-link";
    fs::create_symlink(token, link);
    auto r = run({"--profile", profile_with_source(link), "--", "true"});
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("credentials.tok.source.file: " + link.string() + " is a symbolic link"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(audit_log_)) << "a refused credential must start no session";
}

TEST_F(CredsTest, ProtectedSourceFileReachesTheAgent) {
    auto token = dir_ / "token";
    write_text(token, "s3cr3t-at-rest\n");
    ASSERT_EQ(::chmod(token.c_str(), 0400), 0);
    auto r = run({"--profile", profile_with_source(token), "--", "sh", "-c", "echo \"$TOK\""});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "s3cr3t-at-rest\n");
}

}  // namespace
}  // namespace cordon::testing
