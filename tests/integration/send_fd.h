// SPDX-License-Identifier: Apache-2.0
// Passing a descriptor over a Unix socket, as any process outside Cordon's
// subtree can do for an agent that reaches it: the supervisor's own
// cordon/fd_passing.h, under the tests' namespace.
#pragma once

#include "cordon/fd_passing.h"

namespace cordon::testing {

using cordon::receive_fd;
using cordon::send_fd;

}  // namespace cordon::testing
