// SPDX-License-Identifier: Apache-2.0
// The audit log written from several threads at once, as a session does
// (the supervise loop, the resolver, the webhook's worker): each line
// exactly once, whole.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit.h"

namespace cordon::audit {
namespace {

namespace fs = std::filesystem;

TEST(AuditLogTest, LinesFromManyThreadsAreEachWrittenOnceAndWhole) {
    char tmpl[] = "/tmp/cordon-audit-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    fs::path dir = tmpl;
    constexpr int kThreads = 8, kLines = 2000;
    {
        auto log = AuditLog::open((dir / "audit.jsonl").string());
        ASSERT_TRUE(log) << log.error().message();
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t)
            threads.emplace_back([&log, t] {
                for (int i = 0; i < kLines; ++i)
                    (*log)->emit("net.deny", {"a", "b", "1", "s"}, {{"n", t * kLines + i}});
            });
        for (auto& th : threads) th.join();
    }
    std::ifstream in(dir / "audit.jsonl");
    std::set<int> seen;
    size_t lines = 0;
    for (std::string line; std::getline(in, line); ++lines) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        ASSERT_TRUE(j.is_object()) << "a torn line: " << line;
        EXPECT_TRUE(seen.insert(j["n"].get<int>()).second) << "written twice: " << line;
    }
    EXPECT_EQ(lines, size_t{kThreads * kLines});
    EXPECT_EQ(seen.size(), size_t{kThreads * kLines});
    fs::remove_all(dir);
}

}  // namespace
}  // namespace cordon::audit
