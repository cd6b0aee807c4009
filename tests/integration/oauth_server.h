// SPDX-License-Identifier: Apache-2.0
// A real OAuth 2.x authorization server for the credential tests:
// oidc-provider (tests/oauth/server.js, installed by packaging/install-deps.sh)
// on 127.0.0.1 and an ephemeral port, stopped when the object goes.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

extern char** environ;

namespace cordon::testing {

class OAuthServer {
  public:
    static constexpr const char* kClientId = "cordon-test";
    static constexpr const char* kClientSecret = "cordon-test-client-secret";

    // Why the server cannot run here, or empty when it can.
    static std::string missing() {
        namespace fs = std::filesystem;
        if (!fs::exists("/usr/bin/node")) return "needs Node.js (packaging/install-deps.sh)";
        if (!fs::exists(dir() + "/node_modules/oidc-provider"))
            return "needs oidc-provider in tests/oauth/node_modules (packaging/install-deps.sh)";
        return {};
    }

    // `options` as server.js takes them: "--ttl", "RESOURCE=SECONDS", "--tls", CERT, KEY.
    explicit OAuthServer(std::vector<std::string> options = {}) {
        for (const auto& o : options)
            if (o == "--tls") scheme_ = "https";
        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0) return;
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, out[1], 1);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
        std::string script = dir() + "/server.js";
        std::vector<const char*> argv = {"/usr/bin/node", script.c_str(), kClientId, kClientSecret};
        for (const auto& o : options) argv.push_back(o.c_str());
        argv.push_back(nullptr);
        if (posix_spawn(&pid_, argv[0], &actions, nullptr, const_cast<char**>(argv.data()),
                        environ) != 0)
            pid_ = -1;
        posix_spawn_file_actions_destroy(&actions);
        ::close(out[1]);
        // Kept open while the server runs: a write to a closed pipe would end it.
        output_ = ::fdopen(out[0], "r");
        if (output_ && std::fscanf(output_, "listening %d", &port_) != 1) port_ = 0;
    }
    ~OAuthServer() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            ::waitpid(pid_, nullptr, 0);
        }
        if (output_) std::fclose(output_);
    }
    OAuthServer(const OAuthServer&) = delete;
    OAuthServer& operator=(const OAuthServer&) = delete;

    bool running() const { return pid_ > 0 && port_ > 0; }

    // The server's introspection (RFC 7662) of `token`, with curl(1), as
    // the JSON text it answered; `curl_options` such as "--cacert FILE".
    std::string introspection(const std::string& token,
                              const std::string& curl_options = "") const {
        return curl(curl_options + " -u " + kClientId + ":" + kClientSecret + " -d token=" + token +
                    " " + url("/token/introspection"));
    }

    // The audience and scope of each token the server issued so far, as the
    // JSON text of server.js's /test/issued.
    std::string issued(const std::string& curl_options = "") const {
        return curl(curl_options + " " + url("/test/issued"));
    }
    std::string url(const std::string& path) const {
        return scheme_ + "://127.0.0.1:" + std::to_string(port_) + path;
    }

  private:
    static std::string dir() { return std::string(CORDON_SOURCE_DIR) + "/tests/oauth"; }
    static std::string curl(const std::string& arguments) {
        FILE* p = ::popen(("curl -s " + arguments).c_str(), "r");
        if (!p) return {};
        std::string out;
        char buf[512];
        while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
        ::pclose(p);
        return out;
    }
    std::string scheme_ = "http";
    pid_t pid_ = -1;
    int port_ = 0;
    FILE* output_ = nullptr;
};

}  // namespace cordon::testing
