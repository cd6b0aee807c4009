// SPDX-License-Identifier: Apache-2.0
// cordond's local API: one JSON object per SOCK_SEQPACKET message, so a
// message is never split or merged, and descriptors ride along with
// SCM_RIGHTS. Every request names its "op":
//
//   {"op":"launch","profile":NAME,"argv":[...],"cwd":DIR,"env":["NAME=VALUE",...]}
//       with stdin, stdout and stderr attached. Answers: {"event":"started",
//       "session":ID}, then {"event":"exit","status":N}; while it runs the
//       client may send {"op":"signal","signal":N}.
//   {"op":"sessions"}             -> {"ok":true,"sessions":[...]}
//   {"op":"stop","session":ID}    -> {"ok":true}
//
// A refusal or a bad request is answered {"ok":false,"error":TEXT} (and,
// for launch, "exit":125), and the connection is closed.
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cordon/fd.h"
#include "cordon/result.h"

namespace cordon::daemon {

// The default socket, and the variable and option that name another.
inline constexpr const char* kDefaultSocket = "/run/cordon/cordond.sock";
inline constexpr const char* kSocketVariable = "CORDON_SOCKET";

// The largest request cordond reads: argv and environment included.
inline constexpr size_t kMaxRequestBytes = 128 * 1024;
// The largest answer a client reads (a long session list).
inline constexpr size_t kMaxAnswerBytes = 4 * 1024 * 1024;
// A launch carries stdin, stdout and stderr; nothing carries more.
inline constexpr size_t kMaxFds = 3;

struct Message {
    nlohmann::json body;
    std::vector<UniqueFd> fds;
};

// Sends body as one message, with fds attached (SCM_RIGHTS).
Status send_message(int sock, const nlohmann::json& body, std::span<const int> fds = {});

// Receives one message of at most max_bytes: nullopt at end of stream. A
// larger message, more than kMaxFds descriptors or text that is not one
// JSON object is an error; descriptors that came with it are closed.
Result<std::optional<Message>> receive_message(int sock, size_t max_bytes);

struct LaunchRequest {
    std::string profile;  // an installed profile's name, or its path
    std::vector<std::string> argv;
    std::string cwd;               // absolute
    std::vector<std::string> env;  // "NAME=VALUE"
};

// Checks a launch request's fields: each error names the field and why.
Result<LaunchRequest> parse_launch(const nlohmann::json& body);
nlohmann::json to_json(const LaunchRequest& request);

// {"ok":false,"error":TEXT} (with "exit":125 for a launch).
nlohmann::json error_answer(const std::string& text, bool launch = false);

}  // namespace cordon::daemon
