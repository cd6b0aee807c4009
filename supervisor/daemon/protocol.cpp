// SPDX-License-Identifier: Apache-2.0
#include "daemon/protocol.h"

#include <sys/socket.h>

#include <cstring>

namespace cordon::daemon {
namespace {

using nlohmann::json;

constexpr size_t kMaxArgs = 4096;
constexpr size_t kMaxEnv = 4096;

// Closes every descriptor that came with a message (SCM_RIGHTS).
std::vector<UniqueFd> take_fds(msghdr& msg) {
    std::vector<UniqueFd> fds;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            fds.emplace_back(fd);
        }
    }
    return fds;
}

// A JSON string without NUL bytes (a NUL cannot pass execve or setenv).
Result<std::string> plain_string(const json& value, const std::string& field) {
    if (!value.is_string()) return plain_error(field + ": expected a string");
    const auto& text = value.get_ref<const std::string&>();
    if (text.find('\0') != std::string::npos) return plain_error(field + ": contains a NUL byte");
    return text;
}

Result<std::vector<std::string>> string_list(const json& body, const char* field, size_t most) {
    auto it = body.find(field);
    if (it == body.end()) return std::vector<std::string>{};
    if (!it->is_array()) return plain_error(std::string(field) + ": expected an array of strings");
    if (it->size() > most)
        return plain_error(std::string(field) + ": more than " + std::to_string(most) + " entries");
    std::vector<std::string> out;
    for (size_t i = 0; i < it->size(); ++i) {
        auto s = plain_string((*it)[i], std::string(field) + "[" + std::to_string(i) + "]");
        if (!s) return s.error();
        out.push_back(std::move(*s));
    }
    return out;
}

Status check_env(const std::vector<std::string>& env) {
    for (size_t i = 0; i < env.size(); ++i) {
        size_t eq = env[i].find('=');
        if (eq == 0 || eq == std::string::npos)
            return plain_error("env[" + std::to_string(i) + "]: expected NAME=VALUE");
    }
    return ok_status();
}

}  // namespace

Status send_message(int sock, const json& body, std::span<const int> fds) {
    // Text a client sent may be cut mid-character somewhere: never throw on it.
    std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
    iovec iov{text.data(), text.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds.empty()) {
        if (fds.size() > kMaxFds) return plain_error("cannot send more than 3 descriptors");
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n;
    do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) return errno_error("cannot send to cordond's socket");
    return ok_status();
}

Result<std::optional<Message>> receive_message(int sock, size_t max_bytes) {
    std::string buffer(max_bytes + 1, '\0');
    iovec iov{buffer.data(), buffer.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0) return errno_error("cannot read from the socket");
    Message m{json(), take_fds(msg)};
    if (n == 0 && m.fds.empty()) return std::optional<Message>{};
    if (msg.msg_flags & MSG_CTRUNC)
        return plain_error("message refused: more than " + std::to_string(kMaxFds) +
                           " descriptors attached");
    if ((msg.msg_flags & MSG_TRUNC) || static_cast<size_t>(n) > max_bytes)
        return plain_error("message refused: larger than " + std::to_string(max_bytes) + " bytes");
    buffer.resize(static_cast<size_t>(n));
    m.body = json::parse(buffer, nullptr, false);
    if (m.body.is_discarded() || !m.body.is_object())
        return plain_error("message refused: not one JSON object");
    return std::optional<Message>(std::move(m));
}

Result<LaunchRequest> parse_launch(const json& body) {
    static const char* kKeys[] = {"op", "profile", "argv", "cwd", "env"};
    for (const auto& item : body.items())
        if (std::find_if(std::begin(kKeys), std::end(kKeys),
                         [&](const char* k) { return item.key() == k; }) == std::end(kKeys))
            return plain_error(item.key() + ": unknown key (expected op, profile, argv, cwd, env)");
    LaunchRequest r;
    auto profile = plain_string(body.value("profile", json()), "profile");
    if (!profile) return profile.error();
    r.profile = std::move(*profile);
    auto argv = string_list(body, "argv", kMaxArgs);
    if (!argv) return argv.error();
    r.argv = std::move(*argv);
    if (r.profile.empty()) return plain_error("profile: empty (name an installed profile)");
    if (r.argv.empty() || r.argv[0].empty()) return plain_error("argv: no command given");
    auto cwd = plain_string(body.value("cwd", json("/")), "cwd");
    if (!cwd) return cwd.error();
    if (cwd->empty() || (*cwd)[0] != '/') return plain_error("cwd: expected an absolute path");
    r.cwd = std::move(*cwd);
    auto env = string_list(body, "env", kMaxEnv);
    if (!env) return env.error();
    if (auto st = check_env(*env); !st) return st.error();
    r.env = std::move(*env);
    return r;
}

json to_json(const LaunchRequest& r) {
    return {
        {"op", "launch"}, {"profile", r.profile}, {"argv", r.argv}, {"cwd", r.cwd}, {"env", r.env}};
}

json error_answer(const std::string& text, bool launch) {
    json a{{"ok", false}, {"error", text}};
    if (launch) a["exit"] = 125;
    return a;
}

}  // namespace cordon::daemon
