// SPDX-License-Identifier: Apache-2.0
// A session's network denials as audit events: net.deny within the
// session's budget (audit::DenialLimiter), and net.deny.suppressed with the
// count of what the budget held back: kSuppressedReportInterval after the
// first denial held back, again while the flood lasts, and at the end.
// The kernel's denials come from the supervise loop, the resolver's from its
// own thread: both go through report_fields, under one lock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

#include "audit/audit.h"
#include "audit/rate_limit.h"
#include "cordon/fd.h"
#include "cordon/result.h"
#include "netfilter/netfilter.h"
#include "policy/policy.h"
#include "profile/profile.h"

namespace cordon::launch {

// The fields of a net.deny event for a kernel denial: the destination and
// the tool it belongs to (by its endpoints, or by the gate that covered it).
nlohmann::json denial_fields(const netfilter::Denial& d, const profile::Profile& profile,
                             const policy::EffectivePolicy& policy);

class DenialReporter {
  public:
    DenialReporter(audit::Subject subject, const profile::Profile& profile,
                   const policy::EffectivePolicy& policy, audit::AuditLog& audit, UniqueFd timer,
                   std::function<void()> on_denial = {});

    static Result<std::unique_ptr<DenialReporter>> create(const audit::Subject& subject,
                                                          const profile::Profile& profile,
                                                          const policy::EffectivePolicy& policy,
                                                          audit::AuditLog& audit,
                                                          std::function<void()> on_denial = {});

    // Readable when held-back denials are due to be reported (on_timer).
    int timer_fd() const { return timer_.get(); }

    void report(const netfilter::Denial& d) { report_fields(denial_fields(d, profile_, policy_)); }
    void report_fields(const nlohmann::json& fields);

    // The timer fired: report what was held back since the last report.
    void on_timer();
    void flush();
    uint64_t total_suppressed() const;

  private:
    using Clock = audit::DenialLimiter::Clock;

    bool admit();
    void arm(std::chrono::seconds after);

    std::function<void()> on_denial_;
    audit::Subject subject_;
    const profile::Profile& profile_;
    const policy::EffectivePolicy& policy_;
    mutable std::mutex mu_;
    audit::AuditLog& audit_;
    UniqueFd timer_;
    audit::DenialLimiter limiter_;
};

}  // namespace cordon::launch
