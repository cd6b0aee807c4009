// SPDX-License-Identifier: Apache-2.0
#include "launch/denials.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cordon/log.h"

namespace cordon::launch {
namespace {

using nlohmann::json;

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("session");
    return logger;
}

}  // namespace

json denial_fields(const netfilter::Denial& d, const profile::Profile& profile,
                   const policy::EffectivePolicy& policy) {
    json f{{"pid", d.pid},           {"comm", d.comm}, {"destination", nullptr}, {"port", nullptr},
           {"protocol", d.protocol}, {"hook", d.hook}, {"reason", d.reason},     {"tool", nullptr}};
    // Refused at socket() or setsockopt(): there is no destination yet.
    // Refused at connect() or sendmsg() of a Unix socket: no inet destination,
    // and only some are reported (1st, 2nd, 4th, ...), with the count so far.
    if (d.hook == "connect_unix" || d.hook == "sendmsg_unix") {
        f["attempts"] = d.drops;
        return f;
    }
    if (d.hook == "sock_create" || d.hook == "setsockopt") return f;
    f["destination"] = profile::format_ip(d.address);
    f["port"] = d.port;
    auto proto = d.protocol == "udp" ? profile::Protocol::udp : profile::Protocol::tcp;
    if (auto tool = policy::tool_for(profile, d.address, d.port, proto)) f["tool"] = *tool;
    // A gated tool's address may be one its DNS name resolved to: the gate names it.
    if (const policy::GatedTool* gated = policy::gated_tool(policy, d.gate);
        gated && f["tool"].is_null())
        f["tool"] = gated->name;
    if (d.hook == "egress") {
        // Packets leave in softirq context too, where no task is theirs.
        f["pid"] = nullptr;
        f["comm"] = nullptr;
        f["drops"] = d.drops;
    }
    return f;
}

DenialReporter::DenialReporter(audit::Subject subject, const profile::Profile& profile,
                               const policy::EffectivePolicy& policy, audit::AuditLog& audit,
                               UniqueFd timer, std::function<void()> on_denial)
    : on_denial_(std::move(on_denial)),
      subject_(std::move(subject)),
      profile_(profile),
      policy_(policy),
      audit_(audit),
      timer_(std::move(timer)),
      limiter_(audit::kDenialBurst, audit::kDenialsPerSecond, Clock::now()) {}

Result<std::unique_ptr<DenialReporter>> DenialReporter::create(
    const audit::Subject& subject, const profile::Profile& profile,
    const policy::EffectivePolicy& policy, audit::AuditLog& audit,
    std::function<void()> on_denial) {
    UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!fd.valid()) return errno_error("cannot create a timerfd for suppressed denials");
    return std::make_unique<DenialReporter>(subject, profile, policy, audit, std::move(fd),
                                            std::move(on_denial));
}

void DenialReporter::report_fields(const json& fields) {
    std::lock_guard lock(mu_);
    if (on_denial_) on_denial_();
    if (admit()) audit_.emit("net.deny", subject_, fields);
}

void DenialReporter::on_timer() {
    uint64_t expirations;
    (void)!::read(timer_.get(), &expirations, sizeof expirations);
    flush();
}

void DenialReporter::flush() {
    std::lock_guard lock(mu_);
    if (uint64_t n = limiter_.take_suppressed())
        audit_.emit("net.deny.suppressed", subject_, {{"count", n}});
}

uint64_t DenialReporter::total_suppressed() const {
    std::lock_guard lock(mu_);
    return limiter_.total_suppressed();
}

// True when the budget lets one more denial through; else it is counted,
// and the report timer armed for the first one held back.
bool DenialReporter::admit() {
    if (limiter_.admit(Clock::now())) return true;
    if (limiter_.pending() == 1) arm(audit::kSuppressedReportInterval);
    return false;
}

void DenialReporter::arm(std::chrono::seconds after) {
    itimerspec spec{};
    spec.it_value.tv_sec = after.count();
    if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) != 0)
        log()->error("cannot arm the suppressed-denials timer: {}", std::strerror(errno));
}

}  // namespace cordon::launch
