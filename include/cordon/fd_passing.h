// SPDX-License-Identifier: Apache-2.0
// Passing one descriptor over a Unix socket with one byte (SCM_RIGHTS,
// unix(7)). Async-signal-safe, stack only: spawn's child sends the seccomp
// listener with it between clone3 and execve.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace cordon {

// One byte with room for one descriptor.
struct FdMessage {
    char byte = 'f';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    FdMessage() {
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
    }
    FdMessage(const FdMessage&) = delete;
    FdMessage& operator=(const FdMessage&) = delete;
};

// Sends fd over the Unix socket `over`; 0, or -1 with errno set.
inline int send_fd(int over, int fd, int flags = 0) {
    FdMessage m;
    cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return ::sendmsg(over, &m.msg, flags) == 1 ? 0 : -1;
}

// The descriptor that came over `over`; -1 with errno set when none did
// (EPROTO: a message without one).
inline int receive_fd(int over, int flags = 0) {
    FdMessage m;
    if (::recvmsg(over, &m.msg, flags) != 1) return -1;
    cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
    if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) {
        errno = EPROTO;
        return -1;
    }
    int fd;
    std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

}  // namespace cordon
