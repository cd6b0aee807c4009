// SPDX-License-Identifier: Apache-2.0
// A session's budget of net.deny events: a token bucket, so that an agent
// that makes denied connects in a loop cannot fill the audit log (or the
// disk under it). Denials over the budget still deny; only their events are
// held back, counted, and reported as net.deny.suppressed with the count.
#pragma once

#include <chrono>
#include <cstdint>

namespace cordon::audit {

// A session may report kDenialBurst denials at once, then kDenialsPerSecond
// on average: a misconfigured agent shows every one of its first attempts,
// a flood costs at most 20 lines a second.
inline constexpr uint32_t kDenialBurst = 50;
inline constexpr uint32_t kDenialsPerSecond = 20;
// While denials are held back, a net.deny.suppressed event at least this
// often, and one when the flood is over.
inline constexpr std::chrono::seconds kSuppressedReportInterval{2};

class DenialLimiter {
  public:
    using Clock = std::chrono::steady_clock;

    // Starts full: `burst` denials may be reported at once; the bucket
    // refills at `per_second` (at least 1).
    DenialLimiter(uint32_t burst, uint32_t per_second, Clock::time_point now);

    // True when a denial seen at `now` may be reported; false when it is
    // held back, and then counted.
    bool admit(Clock::time_point now);

    // Denials held back since the last call, and resets that count.
    uint64_t take_suppressed();

    // Denials held back and not yet taken.
    uint64_t pending() const { return pending_; }

    // Every denial held back since the limiter was made.
    uint64_t total_suppressed() const { return total_; }

  private:
    // Integer arithmetic: the bucket holds nanoseconds of refill, a token
    // costs 1e9 / per_second of them, so nothing drifts by rounding.
    int64_t cost_ns_;
    int64_t capacity_ns_;
    int64_t credit_ns_;
    Clock::time_point last_;
    uint64_t pending_ = 0;
    uint64_t total_ = 0;
};

}  // namespace cordon::audit
