// SPDX-License-Identifier: Apache-2.0
// Passing a descriptor over a Unix socket, both ways, as any process outside Cordon's
// subtree can do for an agent that reaches it (SCM_RIGHTS, unix(7)).
#pragma once

#include <sys/socket.h>

#include <cstring>

namespace cordon::testing {

// Sends fd over the Unix socket `over` (SCM_RIGHTS) with one byte; 0 or -1.
inline int send_fd(int over, int fd) {
    char byte = 'f';
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(over, &msg, 0) == 1 ? 0 : -1;
}

// The descriptor that came over `over` (SCM_RIGHTS) with one byte; -1 if none.
inline int receive_fd(int over) {
    char byte;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    if (recvmsg(over, &msg, 0) != 1) return -1;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

}  // namespace cordon::testing
