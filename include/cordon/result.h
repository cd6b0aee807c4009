// SPDX-License-Identifier: Apache-2.0
// One error model for Cordon's low-level code: a value or an Error that
// carries the errno, the operation that failed and, where one helps, a hint
// of what to do. Exceptions stay at the CLI and configuration boundary.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace cordon {

struct Error {
    int err = 0;       // errno value, 0 when the failure is not a system call's
    std::string what;  // "cannot attach connect4 to /sys/fs/cgroup/cordon"
    std::string hint;  // "run as root or grant CAP_BPF and CAP_NET_ADMIN"

    // "what: strerror(err) (hint)", the form every message takes.
    std::string message() const;
};

// Error from the current errno.
Error errno_error(std::string what, std::string hint = {});
// Error from a negative errno returned by libbpf or libseccomp.
Error neg_errno_error(int neg_err, std::string what, std::string hint = {});
// Error that is not a system call's.
Error plain_error(std::string what, std::string hint = {});

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() & { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    const T& value() const& { return std::get<0>(v_); }
    T* operator->() { return &std::get<0>(v_); }
    T& operator*() & { return std::get<0>(v_); }
    const Error& error() const { return std::get<1>(v_); }

  private:
    std::variant<T, Error> v_;
};

// For operations that return nothing but may fail.
struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() {
    return Ok{};
}

}  // namespace cordon
