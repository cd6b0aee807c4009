// SPDX-License-Identifier: Apache-2.0
// The supervisor's end of seccomp user notification. The agent's filter
// hands the escape class (ptrace, bpf, mount, ...) to a listener; agent-run
// watches it in its epoll loop and answers each syscall EPERM, deciding on
// the syscall number alone: it never reads the agent's memory, whose
// contents the agent could change after the check anyway. Each refusal is
// reported as a syscall.deny event, within a budget like net.deny's: what
// it holds back is reported as syscall.deny.suppressed 2 s after the first
// one held back, before the next one reported, and at the end.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "audit/rate_limit.h"
#include "cordon/fd.h"
#include "cordon/result.h"

namespace cordon::seccomp {

class Notifier {
  public:
    // Writes one audit event: its name and fields.
    using Emit = std::function<void(const std::string& event, const nlohmann::json& fields)>;

    // Notifications answered before on_ready returns to the caller's loop.
    static constexpr int kMaxAnswersPerWakeup = 64;

    static Result<Notifier> create(UniqueFd listener, Emit emit);

    int fd() const { return listener_.get(); }
    // Fires kSuppressedReportInterval after the first event held back.
    int timer_fd() const { return timer_.get(); }

    // The listener is readable: answers the pending notifications, at most
    // kMaxAnswersPerWakeup of them, so that an agent whose threads keep
    // notifying cannot keep the caller from its deadline and signals (the
    // listener stays readable; the next wake-up answers the rest). Returns
    // false once no process of the filter is left (EPOLLHUP, or the
    // listener failed): stop watching it then.
    bool on_ready(uint32_t epoll_events);

    // The timer fired: reports what the budget held back.
    void on_timer();

    // Reports what the budget held back as syscall.deny.suppressed.
    void flush();

    // Every syscall.deny event held back since the session began.
    uint64_t total_suppressed() const { return limiter_.total_suppressed(); }

  private:
    Notifier(UniqueFd listener, UniqueFd timer, Emit emit, size_t notif_size, size_t resp_size);
    bool answer_one();
    void report(int nr, uint32_t pid);

    UniqueFd listener_;
    UniqueFd timer_;
    Emit emit_;
    size_t notif_size_;
    size_t resp_size_;
    audit::DenialLimiter limiter_;
};

// The fields of a syscall.deny event: the syscall's name on the native
// architecture ("nr-N" when libseccomp does not know it), its number, the pid.
nlohmann::json deny_fields(int nr, uint32_t pid);

}  // namespace cordon::seccomp
