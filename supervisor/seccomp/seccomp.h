// SPDX-License-Identifier: Apache-2.0
// The session's seccomp filter, built with libseccomp from reviewed data:
// named syscall groups and baselines in profiles/seccomp/, plus the
// profile's own additions. The filter is compiled to a classic BPF program
// in the supervisor, so the child only has to install it (no allocation
// between clone and exec).
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "cordon/result.h"
#include "profile/profile.h"

namespace cordon::seccomp {

// A compiled filter, ready for seccomp(SECCOMP_SET_MODE_FILTER).
class Program {
  public:
    Program() = default;
    explicit Program(std::vector<sock_filter> insns) : insns_(std::move(insns)) {}
    // Valid as long as this Program lives.
    sock_fprog fprog() const {
        return sock_fprog{static_cast<unsigned short>(insns_.size()),
                          const_cast<sock_filter*>(insns_.data())};
    }
    size_t size() const { return insns_.size(); }

  private:
    std::vector<sock_filter> insns_;
};

// Builds the filter for `policy` from the baseline files under data_dir
// (profiles/seccomp/). Unknown baselines, groups or syscall names are
// errors that name the file or profile key at fault.
Result<Program> build(const profile::SyscallPolicy& policy, const std::string& data_dir);

// Installs `prog` on the calling thread. Async-signal-safe: for the child
// between clone3 and execve. Returns 0 or -errno.
int install(const Program& prog);

}  // namespace cordon::seccomp
