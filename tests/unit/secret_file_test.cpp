// SPDX-License-Identifier: Apache-2.0
// Secrets at rest: a credential's source file is read only when it is as
// protected as ssh wants a private key, on real files in a directory of the
// test's own.
#include "creds/secret_file.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace cordon::creds {
namespace {

namespace fs = std::filesystem;

const std::string kWhat = "credentials.tok.source.file";

class SecretFileTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/cordon-secret-file-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string secret_file(const std::string& text, mode_t mode) {
        std::string path = (dir_ / "token").string();
        std::ofstream(path) << text;
        EXPECT_EQ(::chmod(path.c_str(), mode), 0);
        return path;
    }

    // The error's whole message, or a failure when the read succeeded.
    std::string refusal(const std::string& path) {
        auto r = read_secret_file(path, kWhat);
        if (r) {
            ADD_FAILURE() << path << " was read, expected a refusal";
            return {};
        }
        return r.error().message();
    }

    fs::path dir_;
};

TEST_F(SecretFileTest, ReadsAFileOnlyItsOwnerCanRead) {
    auto path = secret_file("s3cr3t\n", 0600);
    auto r = read_secret_file(path, kWhat);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->reveal(), "s3cr3t");

    ASSERT_EQ(::chmod(path.c_str(), 0400), 0);
    r = read_secret_file(path, kWhat);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->reveal(), "s3cr3t");
}

TEST_F(SecretFileTest, RefusesAFileGroupOrOthersMayReadOrWrite) {
    for (mode_t mode : {0644, 0640, 0604, 0620, 0602, 0660}) {
        auto path = secret_file("s3cr3t", mode);
        char octal[8];
        std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
        std::string msg = refusal(path);
        EXPECT_NE(msg.find(kWhat + ": " + path + " has mode " + octal), std::string::npos) << msg;
        EXPECT_NE(msg.find("run: chown root:root " + path + " && chmod 600 " + path),
                  std::string::npos)
            << msg;
        EXPECT_EQ(msg.find("s3cr3t"), std::string::npos) << msg;
    }
}

TEST_F(SecretFileTest, RefusesAFileOwnedByAnotherAccount) {
    const passwd* nobody = ::getpwnam("nobody");
    if (!nobody) GTEST_SKIP() << "needs the nobody account";
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a file to nobody";
    auto path = secret_file("s3cr3t", 0600);
    ASSERT_EQ(::chown(path.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
    std::string msg = refusal(path);
    EXPECT_NE(
        msg.find(path + " is owned by uid " + std::to_string(nobody->pw_uid) + ", not by root"),
        std::string::npos)
        << msg;
    EXPECT_NE(msg.find("run: chown root:root " + path + " && chmod 600 " + path), std::string::npos)
        << msg;
}

TEST_F(SecretFileTest, RefusesASymbolicLinkEvenToAProtectedFile) {
    auto target = secret_file("s3cr3t", 0600);
    auto link = (dir_ / "link").string();
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    std::string msg = refusal(link);
    EXPECT_NE(msg.find(kWhat + ": " + link + " is a symbolic link"), std::string::npos) << msg;
}

TEST_F(SecretFileTest, RefusesAMissingOrEmptyFile) {
    std::string msg = refusal((dir_ / "absent").string());
    EXPECT_NE(msg.find(kWhat + ": cannot read " + (dir_ / "absent").string() +
                       ": No such file or directory"),
              std::string::npos)
        << msg;

    auto path = secret_file("\n", 0600);
    msg = refusal(path);
    EXPECT_NE(msg.find(kWhat + ": " + path + " is empty"), std::string::npos) << msg;
}

}  // namespace
}  // namespace cordon::creds
