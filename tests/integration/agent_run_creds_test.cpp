// SPDX-License-Identifier: Apache-2.0
// Session-scoped credentials end to end (issue 5): what the real agent-run
// refuses to read as a secret, that a refusal starts nothing, and the
// credentials directory only the session's own mount namespace has.
#include <sys/stat.h>

#include "agent_run_fixture.h"
#include "creds/directory.h"
#include "landlock/landlock.h"

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

    // A profile whose allowed tool needs credential `name`, delivered as
    // the default file, from a protected file holding `value`.
    fs::path profile_with_file_credential(const std::string& name, const std::string& value) {
        auto source = dir_ / (name + ".secret");
        write_text(source, value + "\n");
        EXPECT_EQ(::chmod(source.c_str(), 0600), 0);
        json extra = {{"tools", {{"allowed_tool", {{"credentials", {name}}}}}},
                      {"credentials", {{name, {{"source", {{"file", source.string()}}}}}}}};
        return write_profile({}, {}, "5m", extra);
    }

    // The line of the host's mount table for mount point `dir`, or empty
    // when it is no mount point here.
    static std::string host_mount_of(const std::string& dir) {
        std::istringstream table(read_text("/proc/self/mountinfo"));
        std::string line;
        while (std::getline(table, line))
            if (line.find(" " + dir + " ") != std::string::npos) return line;
        return {};
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

TEST_F(CredsTest, FileDeliveryIsAPrivateTmpfsOwnedByTheAgent) {
    auto profile = profile_with_file_credential("tok", "s3cr3t-in-a-file");
    auto r =
        run({"--profile", profile, "--", "sh", "-c",
             "echo \"$CREDENTIALS_DIRECTORY|${TOK-unset}\"; cat \"$CREDENTIALS_DIRECTORY/tok\"; "
             "echo; id -u; id -g; stat -c '%a %u %g' \"$CREDENTIALS_DIRECTORY\" "
             "\"$CREDENTIALS_DIRECTORY/tok\"; ls -A \"$CREDENTIALS_DIRECTORY\"; "
             "grep \" $CREDENTIALS_DIRECTORY \" /proc/self/mountinfo"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::istringstream out(r.out);
    std::string dir_line, value, uid, gid, dir_stat, file_stat, listing, mount;
    std::getline(out, dir_line);
    std::getline(out, value);
    std::getline(out, uid);
    std::getline(out, gid);
    std::getline(out, dir_stat);
    std::getline(out, file_stat);
    std::getline(out, listing);
    std::getline(out, mount);
    EXPECT_EQ(dir_line, std::string(creds::kCredentialsDir) + "|unset");
    EXPECT_EQ(value, "s3cr3t-in-a-file");
    EXPECT_NE(uid, "0") << "the agent runs as root: ownership proves nothing";
    EXPECT_EQ(dir_stat, "500 " + uid + " " + gid);
    EXPECT_EQ(file_stat, "400 " + uid + " " + gid);
    EXPECT_EQ(listing, "tok");
    // mountinfo: "... MOUNTPOINT OPTIONS ... - tmpfs tmpfs SUPER-OPTIONS".
    EXPECT_NE(mount.find(" - tmpfs "), std::string::npos) << mount;
    for (const char* flag : {"nosuid", "nodev", "noexec"})
        EXPECT_NE(mount.find(flag), std::string::npos) << flag << " missing: " << mount;
    EXPECT_TRUE(!creds::noswap_supported() || mount.find("noswap") != std::string::npos) << mount;
    std::string audit = read_text(audit_log_);
    EXPECT_EQ(audit.find("s3cr3t"), std::string::npos);
    EXPECT_EQ(r.err.find("s3cr3t"), std::string::npos);
}

TEST_F(CredsTest, NeitherTheHostNorAnotherSessionSeesTheDirectory) {
    auto ready = dir_ / "ready", done = dir_ / "done";
    auto first =
        start({"--profile", profile_with_file_credential("first", "s3cr3t-first"), "--", "sh", "-c",
               "cat \"$CREDENTIALS_DIRECTORY/first\" >/dev/null && touch " + ready.string() +
                   " && while [ ! -e " + done.string() + " ]; do sleep 0.05; done"});
    for (int i = 0; i < 500 && !fs::exists(ready); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    bool first_ready = fs::exists(ready);

    // The host has the empty mount point and no mount on it.
    std::string host_mount = host_mount_of(creds::kCredentialsDir);
    bool host_empty = fs::is_empty(creds::kCredentialsDir);
    // A second session, at the same time, has only its own file.
    auto second = run({"--profile", profile_with_file_credential("second", "s3cr3t-second"), "--",
                       "ls", "-A", creds::kCredentialsDir});
    write_text(done, "");
    auto r = wait(first);

    ASSERT_TRUE(first_ready) << "the first session never read its credential: " << r.err;
    EXPECT_EQ(host_mount, "") << "the host has the session's tmpfs mounted";
    EXPECT_TRUE(host_empty) << "the host sees files in " << creds::kCredentialsDir;
    EXPECT_EQ(second.exit_code, 0) << second.err;
    EXPECT_EQ(second.out, "second\n");
    EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Landlock's rules on host paths do not reach a tmpfs mounted over them:
// the init adds the credentials directory's own rule after its mounts.
TEST_F(CredsTest, LandlockedAgentReadsItsCredentialFile) {
    if (landlock::abi_version() <= 0) GTEST_SKIP() << "needs a kernel with Landlock";
    auto token = dir_ / "tok.secret";
    write_text(token, "s3cr3t-landlocked\n");
    ASSERT_EQ(::chmod(token.c_str(), 0600), 0);
    json extra = {{"tools", {{"allowed_tool", {{"credentials", {"tok"}}}}}},
                  {"credentials", {{"tok", {{"source", {{"file", token.string()}}}}}}},
                  {"filesystem", json::object()}};
    auto profile = write_profile({}, {}, "5m", extra);
    auto r = run({"--profile", profile, "--", "cat", std::string(creds::kCredentialsDir) + "/tok"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "s3cr3t-landlocked");
}

TEST_F(CredsTest, EnvDeliveryMakesNoDirectory) {
    auto token = dir_ / "token";
    write_text(token, "s3cr3t-at-rest\n");
    ASSERT_EQ(::chmod(token.c_str(), 0600), 0);
    auto r = run({"--profile", profile_with_source(token), "--", "sh", "-c",
                  "echo \"${CREDENTIALS_DIRECTORY-unset}\"; grep -c \" " +
                      std::string(creds::kCredentialsDir) + " \" /proc/self/mountinfo; true"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "unset\n0\n") << r.err;
}

}  // namespace
}  // namespace cordon::testing
