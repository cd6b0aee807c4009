// SPDX-License-Identifier: Apache-2.0
// A real server a test starts (an authorization server, a webhook
// receiver): spawned with its standard output on a pipe, on which it says
// "listening PORT" once it accepts connections; stopped, by its pid, when
// the object goes.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

extern char** environ;

namespace cordon::testing {

class ListeningProcess {
  public:
    // argv[0] is the program's path. quiet: its stderr goes to /dev/null.
    ListeningProcess(const std::vector<std::string>& argv, int stop_signal, bool quiet)
        : stop_signal_(stop_signal) {
        int out[2];
        if (argv.empty() || ::pipe2(out, O_CLOEXEC) != 0) return;
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        if (quiet) posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        if (posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&actions);
        ::close(out[1]);
        // Kept open while the server runs: a write to a closed pipe would end it.
        output_ = ::fdopen(out[0], "r");
        if (output_ && std::fscanf(output_, "listening %d", &port_) != 1) port_ = 0;
    }
    ~ListeningProcess() {
        if (pid_ > 0) {
            ::kill(pid_, stop_signal_);
            ::waitpid(pid_, nullptr, 0);
        }
        if (output_) std::fclose(output_);
    }
    ListeningProcess(const ListeningProcess&) = delete;
    ListeningProcess& operator=(const ListeningProcess&) = delete;

    bool running() const { return pid_ > 0 && port_ > 0; }
    int port() const { return port_; }

  private:
    int stop_signal_;
    pid_t pid_ = -1;
    int port_ = 0;
    FILE* output_ = nullptr;
};

}  // namespace cordon::testing
