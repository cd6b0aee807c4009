// SPDX-License-Identifier: Apache-2.0
// tests/webhook/receiver.py as a test's process: a real HTTP server on
// 127.0.0.1 that records each webhook request and whether its signature
// verifies under the key, for the webhook's own tests and the sessions'.
#pragma once

#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include "listening_process.h"

namespace cordon::testing {

// receiver.py LOG KEY_FILE [OPTIONS]: see the script for its options.
class WebhookReceiver : public ListeningProcess {
  public:
    WebhookReceiver(const std::filesystem::path& log, const std::filesystem::path& key,
                    const std::vector<std::string>& options)
        : ListeningProcess(command(log, key, options), SIGKILL, /*quiet=*/false) {}

  private:
    static std::vector<std::string> command(const std::filesystem::path& log,
                                            const std::filesystem::path& key,
                                            const std::vector<std::string>& options) {
        std::vector<std::string> argv = {
            "/usr/bin/python3", std::string(CORDON_SOURCE_DIR) + "/tests/webhook/receiver.py",
            log.string(), key.string()};
        argv.insert(argv.end(), options.begin(), options.end());
        return argv;
    }
};

}  // namespace cordon::testing
