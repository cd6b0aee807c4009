// SPDX-License-Identifier: Apache-2.0
#include "approval/book.h"

#include <sys/random.h>

#include <nlohmann/json.hpp>

#include "audit/audit.h"

namespace cordon::approval {

using nlohmann::json;

void Book::cool_down(const std::string& tool, Clock::time_point until) {
    cooldowns_[tool] = until;
}

std::optional<Clock::duration> Book::cooling(const std::string& tool, Clock::time_point now) const {
    auto it = cooldowns_.find(tool);
    if (it == cooldowns_.end() || it->second <= now) return std::nullopt;
    return it->second - now;
}

std::string new_request_id() {
    unsigned char raw[6];
    if (::getrandom(raw, sizeof raw, 0) != sizeof raw) {
        // getrandom(2) does not fail for 6 bytes once the pool is ready; the
        // clock keeps ids apart if it ever does.
        auto t = Clock::now().time_since_epoch().count();
        for (size_t i = 0; i < sizeof raw; ++i) raw[i] = static_cast<unsigned char>(t >> (8 * i));
    }
    static const char kHex[] = "0123456789abcdef";
    std::string id;
    for (unsigned char b : raw) {
        id += kHex[b >> 4];
        id += kHex[b & 15];
    }
    return id;
}

Book::Noted Book::note(const std::string& tool, uint16_t gate, Clock::duration timeout) {
    if (Request* r = pending_for_tool(tool)) return {r, false};
    Request r;
    r.id = new_request_id();
    r.tool = tool;
    r.gate = gate;
    r.created = Clock::now();
    r.expires = r.created + timeout;
    r.created_wall = SysClock::now();
    r.expires_wall = r.created_wall + std::chrono::duration_cast<SysClock::duration>(timeout);
    auto [it, _] = requests_.emplace(r.id, std::move(r));
    return {&it->second, true};
}

Request* Book::pending(const std::string& id) {
    auto it = requests_.find(id);
    return it == requests_.end() ? nullptr : &it->second;
}

Request* Book::pending_for_tool(const std::string& tool) {
    for (auto& [_, r] : requests_)
        if (r.tool == tool) return &r;
    return nullptr;
}

Grant* Book::grant_for_tool(const std::string& tool) {
    auto it = grants_.find(tool);
    return it == grants_.end() ? nullptr : &it->second;
}

Grant* Book::grant_for_gate(uint16_t gate) {
    for (auto& [_, g] : grants_)
        if (g.gate == gate) return &g;
    return nullptr;
}

Grant& Book::grant(const std::string& id, Clock::duration window, std::optional<uint32_t> uses,
                   uid_t approver_uid, const std::string& approver) {
    Request r = take(id);
    Grant g;
    g.id = r.id;
    g.tool = r.tool;
    g.gate = r.gate;
    g.ends = Clock::now() + window;
    g.ends_wall = SysClock::now() + std::chrono::duration_cast<SysClock::duration>(window);
    g.uses = uses;
    g.approver_uid = approver_uid;
    g.approver = approver;
    grants_[g.tool] = g;
    return grants_[g.tool];
}

Request Book::take(const std::string& id) {
    auto node = requests_.extract(id);
    return node ? std::move(node.mapped()) : Request{};
}

std::optional<Grant> Book::take_grant(const std::string& tool) {
    auto node = grants_.extract(tool);
    return node ? std::optional<Grant>(std::move(node.mapped())) : std::nullopt;
}

std::vector<Request> Book::take_expired(Clock::time_point now) {
    std::vector<Request> out;
    for (auto it = requests_.begin(); it != requests_.end();) {
        if (it->second.expires > now) {
            ++it;
            continue;
        }
        out.push_back(std::move(it->second));
        it = requests_.erase(it);
    }
    return out;
}

std::vector<Grant> Book::take_ended(Clock::time_point now) {
    std::vector<Grant> out;
    for (auto it = grants_.begin(); it != grants_.end();) {
        if (it->second.ends > now) {
            ++it;
            continue;
        }
        out.push_back(std::move(it->second));
        it = grants_.erase(it);
    }
    return out;
}

std::vector<Request> Book::take_all_requests() {
    std::vector<Request> out;
    for (auto& [_, r] : requests_) out.push_back(std::move(r));
    requests_.clear();
    return out;
}

std::vector<Grant> Book::take_all_grants() {
    std::vector<Grant> out;
    for (auto& [_, g] : grants_) out.push_back(std::move(g));
    grants_.clear();
    return out;
}

std::optional<Clock::time_point> Book::next_event() const {
    std::optional<Clock::time_point> next;
    auto consider = [&next](Clock::time_point t) {
        if (!next || t < *next) next = t;
    };
    for (const auto& [_, r] : requests_) consider(r.expires);
    for (const auto& [_, g] : grants_) consider(g.ends);
    return next;
}

json to_json(const Request& r) {
    return {{"id", r.id},
            {"tool", r.tool},
            {"destination", r.destination.empty() ? json(nullptr) : json(r.destination)},
            {"reason", r.reason.empty() ? json(nullptr) : json(r.reason)},
            {"attempts", r.attempts},
            {"created", audit::format_time(r.created_wall)},
            {"expires", audit::format_time(r.expires_wall)}};
}

json to_json(const Grant& g) {
    return {{"id", g.id},
            {"tool", g.tool},
            {"until", audit::format_time(g.ends_wall)},
            {"uses", g.uses ? json(*g.uses) : json(nullptr)},
            {"used", g.used},
            {"approverUid", g.approver_uid},
            {"approver", g.approver}};
}

}  // namespace cordon::approval
