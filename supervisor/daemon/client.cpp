// SPDX-License-Identifier: Apache-2.0
#include "daemon/client.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "cordon/log.h"
#include "launch/session.h"

namespace cordon::daemon {
namespace {

using nlohmann::json;

std::shared_ptr<spdlog::logger> log() {
    static auto logger = layer_logger("client");
    return logger;
}

using launch::kExitFailure;

// What cordond's answer means for agent-run: nullopt while the session runs.
std::optional<int> on_answer(const json& body) {
    if (body.value("event", json("")) == "started") {
        log()->debug("session {} started, agent pid {}", body.value("session", json("")).dump(),
                     body.value("pid", json(0)).dump());
        return std::nullopt;
    }
    if (body.value("event", json("")) == "exit" && body.value("status", json()).is_number_integer())
        return body["status"].get<int>();
    std::string error = body.value("error", json("")).is_string() ? body.value("error", "") : "";
    log()->error("cordond: {}", error.empty() ? body.dump() : error);
    return body.value("exit", json(kExitFailure)).is_number_integer()
               ? body.value("exit", kExitFailure)
               : kExitFailure;
}

// Relays signals to the session until cordond reports its end.
int relay(int conn, int signal_fd) {
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    for (int fd : {conn, signal_fd}) {
        epoll_event ev{EPOLLIN, {.fd = fd}};
        (void)::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev);
    }
    for (;;) {
        epoll_event events[2];
        int n = ::epoll_wait(ep.get(), events, 2, -1);
        for (int i = 0; i < n; ++i) {
            if (events[i].data.fd == signal_fd) {
                signalfd_siginfo si{};
                while (::read(signal_fd, &si, sizeof si) == sizeof si)
                    (void)send_message(conn, {{"op", "signal"}, {"signal", si.ssi_signo}});
                continue;
            }
            auto m = receive_message(conn, kMaxAnswerBytes);
            if (!m || !*m) {
                log()->error("cordond ended the session without an exit status{}",
                             m ? "" : ": " + m.error().message());
                return kExitFailure;
            }
            if (auto status = on_answer((*m)->body)) return *status;
        }
    }
}

}  // namespace

std::string socket_path(const std::string& option) {
    if (!option.empty()) return option;
    const char* env = std::getenv(kSocketVariable);
    return env && *env ? env : kDefaultSocket;
}

bool socket_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

Result<UniqueFd> connect_to(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return plain_error("socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return errno_error("cannot create a socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return errno_error("cannot connect to cordond at " + path,
                           "is cordond running? systemctl start cordond; if it serves another "
                           "socket, name it with --socket or CORDON_SOCKET");
    return fd;
}

Result<json> call(const std::string& path, const json& request) {
    auto conn = connect_to(path);
    if (!conn) return conn.error();
    if (auto st = send_message(conn->get(), request); !st) return st.error();
    auto m = receive_message(conn->get(), kMaxAnswerBytes);
    if (!m) return m.error();
    if (!*m) return plain_error("cordond closed the connection without an answer");
    return (*m)->body;
}

int launch_through(const std::string& path, const LaunchRequest& request) {
    auto signals = launch::forwarded_signals();
    if (!signals) {
        log()->error("{}", signals.error().message());
        return kExitFailure;
    }
    auto conn = connect_to(path);
    if (!conn) {
        log()->error("{}", conn.error().message());
        return kExitFailure;
    }
    const int stdio[3] = {0, 1, 2};
    if (auto st = send_message(conn->get(), to_json(request), stdio); !st) {
        log()->error("{}", st.error().message());
        return kExitFailure;
    }
    return relay(conn->get(), signals->get());
}

}  // namespace cordon::daemon
