// SPDX-License-Identifier: Apache-2.0
// A real OAuth 2.x authorization server for the credential tests:
// oidc-provider (tests/oauth/server.js, installed by packaging/install-deps.sh)
// on 127.0.0.1 and an ephemeral port, stopped when the object goes.
#pragma once

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "listening_process.h"

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
    explicit OAuthServer(std::vector<std::string> options = {})
        : scheme_(uses_tls(options) ? "https" : "http"),
          process_(command(std::move(options)), SIGTERM, /*quiet=*/true) {}

    bool running() const { return process_.running(); }

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
        return scheme_ + "://127.0.0.1:" + std::to_string(process_.port()) + path;
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
    static bool uses_tls(const std::vector<std::string>& options) {
        for (const auto& o : options)
            if (o == "--tls") return true;
        return false;
    }
    static std::vector<std::string> command(std::vector<std::string> options) {
        std::vector<std::string> argv = {"/usr/bin/node", dir() + "/server.js", kClientId,
                                         kClientSecret};
        argv.insert(argv.end(), options.begin(), options.end());
        return argv;
    }

    std::string scheme_;
    ListeningProcess process_;
};

}  // namespace cordon::testing
