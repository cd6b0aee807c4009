// SPDX-License-Identifier: Apache-2.0
// The cost of the agent-default seccomp filter (issue 4): a tight getppid
// loop, the cheapest system call, and a file-heavy workload (open, fstat,
// read, close over a few thousand small files), each run with no filter,
// under a filter that allows everything (the floor: what entering seccomp
// costs at all) and under the filter agent-run gives an agent, side by side
// in one run.
//
// Each iteration forks a child that installs the variant's filter (a
// filter cannot be removed, so every variant needs a fresh process), times
// the workload itself and reports the time through a pipe: the fork and the
// filter's installation are not measured. At the end, the ratio filtered /
// bare of each workload. --files=N sets the number of files (default 3000).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "seccomp/seccomp.h"

namespace {

namespace fs = std::filesystem;
using cordon::seccomp::Program;

constexpr long kGetppidCalls = 1'000'000;  // one iteration of the loop benchmark
int g_files = 3000;
fs::path g_dir;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "seccomp_bench: %s\n", what.c_str());
    std::exit(1);
}

enum class Variant { none, allow_all, agent_default };
constexpr std::pair<Variant, const char*> kVariants[] = {{Variant::none, "none"},
                                                         {Variant::allow_all, "allow-all"},
                                                         {Variant::agent_default, "agent-default"}};

const Program* filter_of(Variant v) {
    static const Program agent_default = [] {
        auto p = cordon::seccomp::build({}, CORDON_SOURCE_DIR "/profiles/seccomp");
        if (!p) die(p.error().message());
        return std::move(*p);
    }();
    static const Program allow_all = [] {
        auto p = cordon::seccomp::compile(cordon::seccomp::Ruleset{"allow-all", {}, {}});
        if (!p) die(p.error().message());
        return std::move(*p);
    }();
    if (v == Variant::agent_default) return &agent_default;
    if (v == Variant::allow_all) return &allow_all;
    return nullptr;
}

// A temporary directory of g_files small files, removed at exit.
void make_files() {
    char tmpl[] = "/tmp/cordon-seccomp-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) die("cannot create a temporary directory");
    g_dir = tmpl;
    for (int i = 0; i < g_files; ++i)
        std::ofstream(g_dir / std::to_string(i)) << "file " << i << " of the seccomp benchmark\n";
}

void getppid_loop() {
    for (long i = 0; i < kGetppidCalls; ++i) benchmark::DoNotOptimize(::syscall(SYS_getppid));
}

void file_walk() {
    int dir = ::open(g_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char buf[256];
    struct stat st;
    for (int i = 0; i < g_files; ++i) {
        int fd = ::openat(dir, std::to_string(i).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::fstat(fd, &st) != 0 || ::read(fd, buf, sizeof buf) <= 0) _exit(3);
        ::close(fd);
    }
    ::close(dir);
}

// Runs `work` in a child under `filter` (none when null); the seconds the
// work took, as the child measured them.
double timed_in_child(const Program* filter, void (*work)()) {
    int p[2];
    if (::pipe(p) != 0) die("cannot create a pipe");
    pid_t pid = ::fork();
    if (pid < 0) die("cannot fork");
    if (pid == 0) {
        ::close(p[0]);
        if (filter && cordon::seccomp::install(*filter) != 0) _exit(2);
        auto start = std::chrono::steady_clock::now();
        work();
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        _exit(::write(p[1], &s, sizeof s) == sizeof s ? 0 : 4);
    }
    ::close(p[1]);
    double s = -1;
    ssize_t n = ::read(p[0], &s, sizeof s);
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (n != sizeof s || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the benchmark child failed (status " + std::to_string(status) + ")");
    return s;
}

void run(benchmark::State& state, Variant variant, void (*work)(), long ops) {
    const Program* filter = filter_of(variant);
    for (auto _ : state) state.SetIterationTime(timed_in_child(filter, work));
    state.SetItemsProcessed(state.iterations() * ops);
}

void register_all() {
    for (const auto& [variant, name] : kVariants) {
        Variant v = variant;
        benchmark::RegisterBenchmark(
            (std::string("getppid/") + name).c_str(),
            [v](benchmark::State& s) { run(s, v, getppid_loop, kGetppidCalls); })
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark((std::string("files/") + name).c_str(),
                                     [v](benchmark::State& s) { run(s, v, file_walk, g_files); })
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    }
}

// The console's lines, and the mean time of each benchmark for the ratios.
class RatioReporter : public benchmark::ConsoleReporter {
  public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (const auto& r : runs) {
            if (r.run_type != Run::RT_Iteration) continue;
            auto& m = times_[r.run_name.function_name];
            m.first += r.GetAdjustedRealTime();
            m.second += 1;
        }
    }

    void print_ratios() const {
        for (const char* work : {"getppid", "files"}) {
            auto bare = times_.find(std::string(work) + "/none");
            if (bare == times_.end()) continue;
            double b = bare->second.first / bare->second.second;
            for (const char* variant : {"allow-all", "agent-default"}) {
                auto filtered = times_.find(std::string(work) + "/" + variant);
                if (filtered == times_.end()) continue;
                double f = filtered->second.first / filtered->second.second;
                std::printf("ratio %s: %s / none = %.3f\n", work, variant, f / b);
            }
        }
    }

  private:
    std::map<std::string, std::pair<double, int>> times_;
};

}  // namespace

int main(int argc, char** argv) {
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        if (a.rfind("--files=", 0) == 0)
            g_files = std::stoi(a.substr(8));
        else
            args.push_back(argv[i]);
    }
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    for (const auto& [variant, _] : kVariants) (void)filter_of(variant);  // before any fork
    make_files();
    register_all();
    RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    reporter.print_ratios();
    std::error_code ec;
    fs::remove_all(g_dir, ec);
    benchmark::Shutdown();
    return 0;
}
