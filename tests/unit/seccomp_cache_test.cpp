// SPDX-License-Identifier: Apache-2.0
// Compiled once per distinct policy: the canonical text that keys the
// caches, the in-memory cache, and the disk cache's hit, miss and the files
// it must not trust (damaged, another policy's, someone else's, a link).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "seccomp/cache.h"

namespace cordon::seccomp {
namespace {

namespace fs = std::filesystem;

const std::string kDataDir = CORDON_SOURCE_DIR "/profiles/seccomp";

Ruleset resolved(const profile::SyscallPolicy& policy) {
    auto cat = load_catalog(kDataDir);
    EXPECT_TRUE(cat) << cat.error().message();
    auto rs = resolve(*cat, policy);
    EXPECT_TRUE(rs) << rs.error().message();
    return *rs;
}

Ruleset with_deny(const std::string& name) {
    profile::SyscallPolicy p;
    p.deny = {name};
    return resolved(p);
}

bool same_program(const Program& a, const Program& b) {
    auto eq = [](const std::vector<sock_filter>& x, const std::vector<sock_filter>& y) {
        return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(),
                                                  [](const sock_filter& l, const sock_filter& r) {
                                                      return l.code == r.code && l.jt == r.jt &&
                                                             l.jf == r.jf && l.k == r.k;
                                                  });
    };
    return eq(a.insns(), b.insns()) && eq(a.exceptions(), b.exceptions()) &&
           a.notifies() == b.notifies();
}

class DiskCacheTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/cordon-seccomp-cache-XXXXXX";
        root_ = ::mkdtemp(tmpl);
        dir_ = root_ / "seccomp";
    }
    void TearDown() override { fs::remove_all(root_); }

    Program get(const Ruleset& rs, CacheOutcome expected) {
        CacheOutcome outcome{};
        auto prog = DiskCache(dir_.string()).get(rs, &outcome);
        EXPECT_TRUE(prog) << prog.error().message();
        EXPECT_EQ(outcome, expected);
        auto fresh = compile(rs);
        EXPECT_TRUE(fresh);
        EXPECT_TRUE(prog && fresh && same_program(*prog, *fresh)) << "not the policy's own filter";
        return prog ? *prog : Program{};
    }

    std::string file_of(const Ruleset& rs) const {
        return DiskCache(dir_.string()).path_for(canonical_text(rs));
    }

    fs::path root_, dir_;
};

TEST(SeccompCanonicalText, NamesWhatTheFilterDoesNotWhereRulesCameFrom) {
    Ruleset a = resolved({});
    Ruleset b = a;
    for (auto& [_, rules] : b.syscalls)
        for (auto& r : rules) r.origin = "elsewhere";
    EXPECT_EQ(canonical_text(a), canonical_text(b));
    EXPECT_NE(canonical_text(a), canonical_text(with_deny("getcwd")));
    EXPECT_NE(canonical_text(a).find("default errno:ENOSYS"), std::string::npos);
    EXPECT_NE(canonical_text(a).find("syscall ptrace\n rule notify\n"), std::string::npos);
}

TEST(SeccompProgramCache, CompilesOncePerDistinctPolicy) {
    ProgramCache cache;
    auto first = cache.get(resolved({}));
    auto again = cache.get(resolved({}));
    ASSERT_TRUE(first && again);
    EXPECT_TRUE(same_program(*first, *again));
    EXPECT_EQ(cache.size(), 1u);
    auto other = cache.get(with_deny("getcwd"));
    ASSERT_TRUE(other);
    EXPECT_FALSE(same_program(*first, *other));
    EXPECT_EQ(cache.size(), 2u);
}

TEST_F(DiskCacheTest, MissWritesAPrivateFileThenHits) {
    Ruleset rs = resolved({});
    get(rs, CacheOutcome::miss);
    struct stat st {};
    ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(::stat(file_of(rs).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_uid, ::geteuid());
    get(rs, CacheOutcome::hit);
    // Another policy is another file.
    get(with_deny("getcwd"), CacheOutcome::miss);
    EXPECT_NE(file_of(rs), file_of(with_deny("getcwd")));
}

TEST_F(DiskCacheTest, DamagedFileIsReplaced) {
    Ruleset rs = resolved({});
    get(rs, CacheOutcome::miss);
    for (const char* damage : {"", "CSCMPv1\ngarbage", "not a cache file at all"}) {
        {
            std::ofstream out(file_of(rs), std::ios::trunc);
            out << damage;
        }
        get(rs, CacheOutcome::replaced);
        get(rs, CacheOutcome::hit);
    }
    // Cut short in the middle of the program.
    fs::resize_file(file_of(rs), fs::file_size(file_of(rs)) - 8);
    get(rs, CacheOutcome::replaced);
}

// A file named like this policy's but compiled from another: what a hash
// collision would look like. The text inside decides.
TEST_F(DiskCacheTest, AnotherPolicysFileUnderThisNameIsNotUsed) {
    Ruleset strict = with_deny("getcwd"), plain = resolved({});
    get(strict, CacheOutcome::miss);
    get(plain, CacheOutcome::miss);
    fs::copy_file(file_of(plain), file_of(strict), fs::copy_options::overwrite_existing);
    Program p = get(strict, CacheOutcome::replaced);
    EXPECT_FALSE(p.size() == 0);
}

TEST_F(DiskCacheTest, FilesOthersCouldWriteAreNotTrusted) {
    Ruleset rs = resolved({});
    get(rs, CacheOutcome::miss);
    ::chmod(file_of(rs).c_str(), 0644);
    get(rs, CacheOutcome::replaced);

    // A link in the file's place is not followed.
    auto target = root_ / "elsewhere.bpf";
    fs::copy_file(file_of(rs), target);
    fs::remove(file_of(rs));
    fs::create_symlink(target, file_of(rs));
    get(rs, CacheOutcome::replaced);
    EXPECT_FALSE(fs::is_symlink(file_of(rs)));

    // A directory open to others: no cache at all, and nothing written.
    fs::remove_all(dir_);
    fs::create_directory(dir_);
    ::chmod(dir_.c_str(), 0755);
    get(rs, CacheOutcome::miss);
    EXPECT_FALSE(fs::exists(file_of(rs)));
}

}  // namespace
}  // namespace cordon::seccomp
