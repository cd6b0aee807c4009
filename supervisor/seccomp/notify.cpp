// SPDX-License-Identifier: Apache-2.0
#include "seccomp/notify.h"

#include <linux/seccomp.h>
#include <poll.h>
#include <seccomp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "cordon/log.h"

namespace cordon::seccomp {
namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("seccomp");
    return logger;
}

// True when a notification is waiting: RECV would block otherwise, and
// the target may have died between epoll's wake-up and the read.
bool pending(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

}  // namespace

nlohmann::json deny_fields(int nr, uint32_t pid) {
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    nlohmann::json f{{"syscall", name ? name : "nr-" + std::to_string(nr)},
                     {"nr", nr},
                     {"pid", pid},
                     {"action", "EPERM"}};
    std::free(name);
    return f;
}

Result<Notifier> Notifier::create(UniqueFd listener, Emit emit) {
    // The kernel's structures may be larger than this build's headers: the
    // buffers follow the sizes it reports.
    seccomp_notif_sizes sizes{};
    if (::syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0)
        return errno_error("cannot read the seccomp notification sizes",
                           "seccomp user notification needs Linux 5.0 or later");
    UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!timer.valid())
        return errno_error("cannot create a timerfd for suppressed syscall denials");
    return Notifier(std::move(listener), std::move(timer), std::move(emit),
                    std::max<size_t>(sizes.seccomp_notif, sizeof(seccomp_notif)),
                    std::max<size_t>(sizes.seccomp_notif_resp, sizeof(seccomp_notif_resp)));
}

Notifier::Notifier(UniqueFd listener, UniqueFd timer, Emit emit, size_t notif_size,
                   size_t resp_size)
    : listener_(std::move(listener)),
      timer_(std::move(timer)),
      emit_(std::move(emit)),
      notif_size_(notif_size),
      resp_size_(resp_size),
      limiter_(audit::kDenialBurst, audit::kDenialsPerSecond, audit::DenialLimiter::Clock::now()) {}

bool Notifier::on_ready(uint32_t epoll_events) {
    for (int i = 0; i < kMaxAnswersPerWakeup && pending(listener_.get()); ++i)
        if (!answer_one()) return false;
    return !(epoll_events & (EPOLLHUP | EPOLLERR));
}

// Receives one notification and refuses it. False when the listener
// itself failed.
bool Notifier::answer_one() {
    std::vector<char> req_buf(notif_size_, 0), resp_buf(resp_size_, 0);
    auto* req = reinterpret_cast<seccomp_notif*>(req_buf.data());
    if (::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_RECV, req) != 0) {
        // ENOENT: the target died before we read its notification.
        if (errno == ENOENT || errno == EINTR) return true;
        log()->error("cannot receive a seccomp notification: {}", std::strerror(errno));
        return false;
    }
    auto* resp = reinterpret_cast<seccomp_notif_resp*>(resp_buf.data());
    resp->id = req->id;
    resp->error = -EPERM;
    resp->val = 0;
    resp->flags = 0;
    // ENOENT: the target died, or a signal interrupted its syscall; either
    // way the syscall did not run.
    if (::ioctl(listener_.get(), SECCOMP_IOCTL_NOTIF_SEND, resp) != 0 && errno != ENOENT)
        log()->error("cannot answer a seccomp notification: {}", std::strerror(errno));
    report(req->data.nr, req->pid);
    return true;
}

void Notifier::report(int nr, uint32_t pid) {
    if (limiter_.admit(audit::DenialLimiter::Clock::now())) {
        flush();
        emit_("syscall.deny", deny_fields(nr, pid));
        return;
    }
    if (limiter_.pending() != 1) return;  // the timer is armed already
    itimerspec spec{};
    spec.it_value.tv_sec = audit::kSuppressedReportInterval.count();
    if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) != 0)
        log()->error("cannot arm the suppressed syscall denials timer: {}", std::strerror(errno));
}

void Notifier::on_timer() {
    uint64_t expirations;
    (void)!::read(timer_.get(), &expirations, sizeof expirations);
    flush();
}

void Notifier::flush() {
    if (uint64_t n = limiter_.take_suppressed()) emit_("syscall.deny.suppressed", {{"count", n}});
}

}  // namespace cordon::seccomp
