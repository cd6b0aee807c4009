// SPDX-License-Identifier: Apache-2.0
#include "audit/rate_limit.h"

#include <algorithm>

namespace cordon::audit {

DenialLimiter::DenialLimiter(uint32_t burst, uint32_t per_second, Clock::time_point now)
    : cost_ns_(1'000'000'000 / std::max<uint32_t>(per_second, 1)),
      capacity_ns_(cost_ns_ * burst),
      credit_ns_(capacity_ns_),
      last_(now) {}

bool DenialLimiter::admit(Clock::time_point now) {
    if (now > last_) {
        auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count();
        credit_ns_ = std::min(capacity_ns_, credit_ns_ + elapsed);
        last_ = now;
    }
    if (credit_ns_ >= cost_ns_) {
        credit_ns_ -= cost_ns_;
        return true;
    }
    pending_++;
    total_++;
    return false;
}

uint64_t DenialLimiter::take_suppressed() {
    uint64_t n = pending_;
    pending_ = 0;
    return n;
}

}  // namespace cordon::audit
