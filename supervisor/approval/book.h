// SPDX-License-Identifier: Apache-2.0
// A session's approval requests and grants, as plain state: no sockets, no
// kernel. The broker (broker.h) feeds it what happens and carries out what
// it decides. One pending request per tool: every attempt to reach a closed
// tool, and every ask of the agent's, folds into it until it is decided or
// expires.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include <nlohmann/json_fwd.hpp>

namespace cordon::approval {

using Clock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;

struct Request {
    std::string id;  // 12 hex digits, random: cordonctl names it
    std::string tool;
    uint16_t gate = 0;
    std::string destination;  // the last one attempted, "ADDR:PORT/tcp"; "" if only asked
    std::string reason;       // the agent's, when it asked ahead; "" otherwise
    uint64_t attempts = 0;    // connections refused while it waited
    Clock::time_point created;
    Clock::time_point expires;
    SysClock::time_point created_wall;
    SysClock::time_point expires_wall;
};

struct Grant {
    std::string id;  // the request it decided
    std::string tool;
    uint16_t gate = 0;
    Clock::time_point ends;
    SysClock::time_point ends_wall;
    std::optional<uint32_t> uses;        // unset: any number of connections in the window
    uint64_t used = 0;                   // connections it let through so far: the kernel's count
    uint64_t use_events_suppressed = 0;  // its approval.use events the rate limit held back
    uid_t approver_uid = 0;
    std::string approver;
};

class Book {
  public:
    // The pending request for tool, made if there is none. `created` says
    // whether it is new (an approval.request to announce).
    struct Noted {
        Request* request;
        bool created;
    };
    Noted note(const std::string& tool, uint16_t gate, Clock::duration timeout);

    Request* pending(const std::string& id);
    Request* pending_for_tool(const std::string& tool);
    Grant* grant_for_tool(const std::string& tool);
    Grant* grant_for_gate(uint16_t gate);

    // The request decided: it leaves the pending list. A grant replaces any
    // grant of the same tool (take_grant it first to report its end).
    Grant& grant(const std::string& id, Clock::duration window, std::optional<uint32_t> uses,
                 uid_t approver_uid, const std::string& approver);
    Request take(const std::string& id);
    std::optional<Grant> take_grant(const std::string& tool);

    // Requests whose time ran out, and grants whose window ended, by `now`:
    // removed and returned.
    std::vector<Request> take_expired(Clock::time_point now);
    std::vector<Grant> take_ended(Clock::time_point now);
    // Everything, at the session's end.
    std::vector<Request> take_all_requests();
    std::vector<Grant> take_all_grants();

    // The next time something expires or ends.
    std::optional<Clock::time_point> next_event() const;

    // A denied tool makes no new request until `until`; how long is left.
    void cool_down(const std::string& tool, Clock::time_point until);
    std::optional<Clock::duration> cooling(const std::string& tool, Clock::time_point now) const;

    const std::map<std::string, Request>& requests() const { return requests_; }
    const std::map<std::string, Grant>& grants() const { return grants_; }

  private:
    std::map<std::string, Request> requests_;             // by id
    std::map<std::string, Grant> grants_;                 // by tool
    std::map<std::string, Clock::time_point> cooldowns_;  // by tool
};

// A new request id: 12 random hex digits.
std::string new_request_id();

// As the API and the audit log show them.
nlohmann::json to_json(const Request& r);
nlohmann::json to_json(const Grant& g);

}  // namespace cordon::approval
