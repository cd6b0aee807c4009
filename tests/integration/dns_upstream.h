// SPDX-License-Identifier: Apache-2.0
// A real upstream resolver for tests: dnsmasq on 127.0.0.1, answering from
// host records of the test's choosing for names under .test and nothing
// else (no forwarding, no /etc/hosts), logging every query it receives so
// that a test can show what reached it. Started and stopped by pid.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace cordon::testing {

class TestUpstream {
  public:
    struct Record {
        std::string name;
        std::vector<std::string> addresses;
    };

    // netns: "" for the caller's network namespace, else a name under /run/netns.
    TestUpstream(const std::filesystem::path& dir, const std::vector<Record>& records,
                 int ttl_seconds, const std::string& netns = "")
        : log_(dir / "dnsmasq.log") {
        port_ = static_cast<uint16_t>(20000 + (::getpid() * 7 + counter()++) % 20000);
        std::vector<std::string> args;
        if (!netns.empty()) args = {"/usr/bin/nsenter", "--net=/run/netns/" + netns, "--"};
        std::vector<std::string> dnsmasq = {"/usr/sbin/dnsmasq",
                                            "--keep-in-foreground",
                                            "--no-resolv",
                                            "--no-hosts",
                                            "--no-poll",
                                            "--bind-interfaces",
                                            "--listen-address=127.0.0.1",
                                            "--port=" + std::to_string(port_),
                                            "--user=root",
                                            "--group=root",
                                            "--pid-file=",
                                            "--log-queries",
                                            "--log-facility=" + log_.string(),
                                            "--local-ttl=" + std::to_string(ttl_seconds),
                                            "--local=/test/"};
        args.insert(args.end(), dnsmasq.begin(), dnsmasq.end());
        for (const Record& r : records) {
            std::string spec = "--host-record=" + r.name;
            for (const auto& a : r.addresses) spec += "," + a;
            args.push_back(spec);
        }
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
        wait_started();
    }

    ~TestUpstream() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    bool running() const { return started_; }
    uint16_t port() const { return port_; }
    std::string spec() const { return "127.0.0.1:" + std::to_string(port_); }

    // The names dnsmasq was asked about, in order ("query[A] NAME from ...").
    std::vector<std::string> queried_names() const {
        std::vector<std::string> names;
        std::ifstream in(log_);
        std::string line;
        while (std::getline(in, line)) {
            auto at = line.find("query[");
            if (at == std::string::npos) continue;
            std::istringstream words(line.substr(line.find(' ', at) + 1));
            std::string name;
            words >> name;
            names.push_back(name);
        }
        return names;
    }

  private:
    static int& counter() {
        static int n = 0;
        return n;
    }

    void wait_started() {
        for (int i = 0; i < 100 && pid_ > 0; ++i) {
            std::ifstream in(log_);
            std::stringstream text;
            text << in.rdbuf();
            if (text.str().find("started, version") != std::string::npos) {
                started_ = true;
                return;
            }
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    std::filesystem::path log_;
    pid_t pid_ = -1;
    uint16_t port_ = 0;
    bool started_ = false;
};

}  // namespace cordon::testing
