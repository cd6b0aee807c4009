// SPDX-License-Identifier: Apache-2.0
// The cost of Cordon's network filter on an allowed path (issue 3): an
// allowed connect()+close() on loopback and bulk TCP throughput through an
// allowed connection, measured with the process bare (outside Cordon's
// subtree, where no program runs) and in a session cgroup, at 1 and 10,000
// rules in the session and with 1 and 1,000 live sessions; and through an
// open approval gate (issue 7), the one rule of its session gated.
//
// The programs are attached to a cgroup root of this process's own and
// pinned under a name of its own; both are removed at exit. The process
// moves itself into the session's cgroup (cgroup.procs) before it makes its
// sockets and back out after, so bare and filtered runs alternate in one
// process. The servers are forked children that stay outside the subtree.
//
// Two phases, each its own Google Benchmark pass with repetitions
// interleaved at random: 1 live session of each size (bare, then 1, 100,
// 1,000 and 10,000 rules), then, after 999 more sessions are added, the
// same again with 1,000 live sessions in all. Each phase's JSON goes to
// PREFIX.sessions-N.json (--out-prefix), N the live sessions.
#include <arpa/inet.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "bpf/netfilter/netfilter.h"
#include "cgroup/cgroup.h"
#include "netfilter/netfilter.h"

namespace {

using cordon::cgroup::SessionCgroup;
using cordon::netfilter::Netfilter;
using cordon::netfilter::Rule;

constexpr int kManySessions = 1000;
constexpr int kManyRules = 10000;
constexpr size_t kBulkBytes = 256u << 20;  // one iteration of the bulk benchmark
constexpr size_t kChunk = 1u << 20;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "netfilter_bench: %s\n", what.c_str());
    std::exit(1);
}

void check(const cordon::Status& st) {
    if (!st) die(st.error().message());
}

// A host-order IPv4 address as a rule's v4-mapped form.
cordon::profile::Ip6 v4_mapped(uint32_t host) {
    cordon::profile::Ip6 a{};
    a[10] = a[11] = 0xff;
    a[12] = host >> 24;
    a[13] = (host >> 16) & 255;
    a[14] = (host >> 8) & 255;
    a[15] = host & 255;
    return a;
}

Rule tcp_rule(uint32_t host, unsigned v4_prefix, uint16_t first, uint16_t last) {
    Rule r;
    r.address = v4_mapped(host);
    r.prefix_len = static_cast<uint8_t>(96 + v4_prefix);
    r.ports = {first, last};
    r.protocols = CORDON_PROTO_TCP;
    return r;
}

constexpr uint32_t kLoopback = 0x7f000001;  // 127.0.0.1

// ---- servers, forked before any session exists, outside the subtree ----

struct Listener {
    int fd = -1;
    uint16_t port = 0;
};

Listener listen_on(uint16_t port) {
    Listener l;
    l.fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(kLoopback);
    a.sin_port = htons(port);
    if (bind(l.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(l.fd, 1024) != 0) {
        close(l.fd);
        l.fd = -1;
        return l;
    }
    socklen_t len = sizeof(a);
    getsockname(l.fd, reinterpret_cast<sockaddr*>(&a), &len);
    l.port = ntohs(a.sin_port);
    return l;
}

// Two listeners on adjacent ports, so that one rule (a port range) allows both.
std::pair<Listener, Listener> listen_adjacent() {
    for (int attempt = 0; attempt < 100; attempt++) {
        Listener first = listen_on(0);
        if (first.fd < 0) die(std::string("cannot listen on loopback: ") + strerror(errno));
        if (first.port < 65535) {
            Listener second = listen_on(first.port + 1);
            if (second.fd >= 0) return {first, second};
        }
        close(first.fd);
    }
    die("no two adjacent free ports on 127.0.0.1");
}

// Accepts and closes, forever: the far end of connect()+close().
[[noreturn]] void serve_connect(int lfd) {
    for (;;) {
        int c = accept(lfd, nullptr, nullptr);
        if (c >= 0) close(c);
    }
}

// Per connection: reads kBulkBytes, answers one byte, again, until EOF.
[[noreturn]] void serve_bulk(int lfd) {
    std::vector<char> buf(kChunk);
    for (;;) {
        int c = accept(lfd, nullptr, nullptr);
        if (c < 0) continue;
        size_t got = 0;
        for (;;) {
            ssize_t n = read(c, buf.data(), buf.size());
            if (n <= 0) break;
            got += static_cast<size_t>(n);
            while (got >= kBulkBytes) {
                got -= kBulkBytes;
                char ack = 'k';
                if (write(c, &ack, 1) != 1) break;
            }
        }
        close(c);
    }
}

pid_t fork_server(void (*serve)(int), int lfd, int other_fd) {
    pid_t pid = fork();
    if (pid < 0) die(std::string("fork: ") + strerror(errno));
    if (pid == 0) {
        close(other_fd);
        serve(lfd);
    }
    return pid;
}

// ---- the world the benchmarks run in ----

struct World {
    std::string cgroup_root;  // <cgroup2>/cordon-bench-<pid>
    std::string pin_dir;      // /sys/fs/bpf/cordon-bench-<pid>
    std::string home_procs;   // cgroup.procs of the cgroup this process started in
    std::unique_ptr<Netfilter> nf;
    std::deque<SessionCgroup> cgroups;  // deque: pointers stay valid
    // The measured sessions by their number of rules: 1, 100, 1,000, 10,000.
    std::vector<std::pair<int, const SessionCgroup*>> measured;
    const SessionCgroup* gated = nullptr;  // its one rule behind gate 1, open without a count
    uint16_t connect_port = 0;
    uint16_t bulk_port = 0;
    std::vector<pid_t> servers;
};

World world;

bool ensure_bpffs() {
    struct statfs fs;
    if (statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC) return true;
    return mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") == 0;
}

// The cgroup2 path of this process ("0::/x" in /proc/self/cgroup).
std::string own_cgroup(const std::string& mount) {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("0::", 0) == 0) return mount + line.substr(3);
    }
    die("no cgroup v2 line in /proc/self/cgroup");
}

void move_self(const std::string& procs) {
    std::ofstream out(procs);
    out << getpid() << std::flush;
    if (!out) die("cannot write to " + procs + ": " + strerror(errno));
}

const SessionCgroup& add_session(const std::string& name, const std::vector<Rule>& rules) {
    auto cg = SessionCgroup::create(world.cgroup_root, name);
    if (!cg) die(cg.error().message());
    world.cgroups.push_back(std::move(cg.value()));
    const SessionCgroup& s = world.cgroups.back();
    check(world.nf->add_session(s.id(), rules, cordon::netfilter::kNoResolver, 0));
    return s;
}

void set_up() {
    if (geteuid() != 0) die("run as root: it loads BPF programs and makes cgroups");
    if (!ensure_bpffs()) die("cannot mount bpffs at /sys/fs/bpf");
    auto mount = cordon::cgroup::find_cgroup2_mount();
    if (!mount) die(mount.error().message());
    std::string name = "cordon-bench-" + std::to_string(getpid());
    world.cgroup_root = mount.value() + "/" + name;
    world.pin_dir = "/sys/fs/bpf/" + name;
    world.home_procs = own_cgroup(mount.value()) + "/cgroup.procs";

    auto [conn, bulk] = listen_adjacent();
    world.connect_port = conn.port;
    world.bulk_port = bulk.port;
    world.servers.push_back(fork_server(serve_connect, conn.fd, bulk.fd));
    world.servers.push_back(fork_server(serve_bulk, bulk.fd, conn.fd));
    close(conn.fd);
    close(bulk.fd);

    check(cordon::cgroup::ensure_dir(world.cgroup_root));
    auto nf = Netfilter::open_or_attach(world.cgroup_root, world.pin_dir);
    if (!nf) die(nf.error().message());
    world.nf = std::move(nf.value());

    // The allowing rule: 127.0.0.1, both servers' ports. The others, each a
    // /32 of its own (every other address, so none fold into a shorter
    // prefix), in the same /8 as the allowed one.
    Rule allow = tcp_rule(kLoopback, 32, world.connect_port, world.bulk_port);
    for (int count : {1, 100, 1000, kManyRules}) {
        std::vector<Rule> rules{allow};
        for (int k = 1; k < count; k++) {
            rules.push_back(
                tcp_rule((127u << 24) | (128u << 16) | static_cast<uint32_t>(2 * k), 32, 443, 443));
        }
        world.measured.emplace_back(count, &add_session("rules-" + std::to_string(count), rules));
    }
    // Each connect takes the gate's lock, marks its socket and reports the
    // use (to a ring buffer nobody drains here: past its size, uses are only
    // counted); each packet looks up the socket's mark and the gate.
    Rule gated = allow;
    gated.gate = 1;
    world.gated = &add_session("gated-1", {gated});
    check(world.nf->open_gate(world.gated->id(), 1, std::nullopt));
}

// Sessions beside the measured ones, up to kManySessions in all.
void add_other_sessions() {
    int others = kManySessions - static_cast<int>(world.measured.size()) - 1;
    for (int i = 0; i < others; i++) {
        uint32_t net = (127u << 24) | (static_cast<uint32_t>(1 + i / 256) << 16) |
                       (static_cast<uint32_t>(i % 256) << 8);
        add_session("other-" + std::to_string(i), {tcp_rule(net, 24, 9000, 9000)});
    }
}

void tear_down() {
    if (world.nf) {
        for (auto& cg : world.cgroups) {
            auto st = world.nf->remove_session(cg.id());
            if (!st) std::fprintf(stderr, "netfilter_bench: %s\n", st.error().message().c_str());
        }
    }
    for (auto& cg : world.cgroups) {
        auto st = cg.destroy();
        if (!st) std::fprintf(stderr, "netfilter_bench: %s\n", st.error().message().c_str());
    }
    world.cgroups.clear();
    world.nf.reset();
    if (!world.pin_dir.empty()) {
        auto st = Netfilter::detach(world.pin_dir);
        if (!st) std::fprintf(stderr, "netfilter_bench: %s\n", st.error().message().c_str());
    }
    if (!world.cgroup_root.empty()) rmdir(world.cgroup_root.c_str());
    for (pid_t pid : world.servers) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
    }
}

// ---- the benchmarks ----

// Where the benchmark's process runs while it makes its sockets: moved in
// on construction, back home on destruction.
class InCgroup {
  public:
    explicit InCgroup(const SessionCgroup* cg) : moved_(cg != nullptr) {
        if (moved_) move_self(cg->path() + "/cgroup.procs");
    }
    ~InCgroup() {
        if (moved_) move_self(world.home_procs);
    }
    InCgroup(const InCgroup&) = delete;
    InCgroup& operator=(const InCgroup&) = delete;

  private:
    bool moved_;
};

sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(kLoopback);
    a.sin_port = htons(port);
    return a;
}

// socket(), connect(), close() with linger 0, so that no TIME_WAIT piles up
// on the ephemeral ports over hundreds of thousands of iterations.
void connect_close(benchmark::State& state, const SessionCgroup* cg) {
    InCgroup in(cg);
    sockaddr_in a = loopback(world.connect_port);
    linger lg{1, 0};
    for (auto _ : state) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
            state.SkipWithError(("connect: " + std::string(strerror(errno))).c_str());
            close(fd);
            break;
        }
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
    }
}

// kBulkBytes per iteration over one connection, until the server's byte
// says it has read them all.
void bulk_tcp(benchmark::State& state, const SessionCgroup* cg) {
    InCgroup in(cg);
    sockaddr_in a = loopback(world.bulk_port);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
        state.SkipWithError(("connect: " + std::string(strerror(errno))).c_str());
        close(fd);
        return;
    }
    std::vector<char> buf(kChunk, 'x');
    for (auto _ : state) {
        for (size_t sent = 0; sent < kBulkBytes;) {
            ssize_t n = write(fd, buf.data(), std::min(buf.size(), kBulkBytes - sent));
            if (n <= 0) {
                state.SkipWithError(("write: " + std::string(strerror(errno))).c_str());
                close(fd);
                return;
            }
            sent += static_cast<size_t>(n);
        }
        char ack;
        if (read(fd, &ack, 1) != 1) {
            state.SkipWithError("the bulk server did not acknowledge");
            break;
        }
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBulkBytes));
    close(fd);
}

// connect_close at every rule count; bulk_tcp at the smallest and the largest.
void register_phase(int sessions) {
    std::string suffix = "/sessions:" + std::to_string(sessions);
    std::vector<std::pair<std::string, const SessionCgroup*>> contenders{{"bare", nullptr}};
    for (auto [count, cg] : world.measured)
        contenders.emplace_back("rules:" + std::to_string(count), cg);
    contenders.emplace_back("gated:1", world.gated);
    for (const auto& [name, cg] : contenders) {
        const SessionCgroup* where = cg;
        benchmark::RegisterBenchmark(("connect_close/" + name + suffix).c_str(),
                                     [where](benchmark::State& s) { connect_close(s, where); })
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
        if (name == "rules:100" || name == "rules:1000") continue;
        benchmark::RegisterBenchmark(("bulk_tcp/" + name + suffix).c_str(),
                                     [where](benchmark::State& s) { bulk_tcp(s, where); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    }
}

// Shows each run on the console and writes it to a JSON file too (Google
// Benchmark's own file reporter wants --benchmark_out, one file per process).
class TeeReporter : public benchmark::BenchmarkReporter {
  public:
    TeeReporter(BenchmarkReporter& a, BenchmarkReporter& b) : a_(a), b_(b) {}
    bool ReportContext(const Context& context) override {
        bool ok = a_.ReportContext(context);
        return b_.ReportContext(context) && ok;
    }
    void ReportRuns(const std::vector<Run>& runs) override {
        a_.ReportRuns(runs);
        b_.ReportRuns(runs);
    }
    void Finalize() override {
        a_.Finalize();
        b_.Finalize();
    }

  private:
    BenchmarkReporter& a_;
    BenchmarkReporter& b_;
};

// One Google Benchmark pass over the benchmarks of one phase.
void run_phase(int sessions, const std::string& out_prefix) {
    std::string spec = "/sessions:" + std::to_string(sessions) + "(/|$)";
    benchmark::ConsoleReporter console;
    if (out_prefix.empty()) {
        benchmark::RunSpecifiedBenchmarks(&console, spec);
        return;
    }
    std::string path = out_prefix + ".sessions-" + std::to_string(sessions) + ".json";
    std::ofstream out(path);
    if (!out) die("cannot write " + path);
    benchmark::JSONReporter json;
    json.SetOutputStream(&out);
    json.SetErrorStream(&std::cerr);
    TeeReporter tee(console, json);
    benchmark::RunSpecifiedBenchmarks(&tee, spec);
}

}  // namespace

int main(int argc, char** argv) {
    // --out-prefix=P: this program's own flag, taken out before Google Benchmark's.
    std::string out_prefix;
    std::vector<char*> args;
    for (int i = 0; i < argc; i++) {
        std::string a = argv[i];
        if (a.rfind("--out-prefix=", 0) == 0) {
            out_prefix = a.substr(13);
        } else {
            args.push_back(argv[i]);
        }
    }
    int n = static_cast<int>(args.size());
    benchmark::Initialize(&n, args.data());
    if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;

    set_up();
    int few = static_cast<int>(world.measured.size()) + 1;  // and the gated one
    register_phase(few);
    register_phase(kManySessions);

    run_phase(few, out_prefix);
    add_other_sessions();
    run_phase(kManySessions, out_prefix);

    tear_down();
    benchmark::Shutdown();
    return 0;
}
