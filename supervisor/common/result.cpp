// SPDX-License-Identifier: Apache-2.0
#include "cordon/result.h"

#include <cstring>

namespace cordon {

std::string Error::message() const {
    std::string m = what;
    if (err != 0) m += ": " + std::string(std::strerror(err));
    if (!hint.empty()) m += " (" + hint + ")";
    return m;
}

Error errno_error(std::string what, std::string hint) {
    return Error{errno, std::move(what), std::move(hint)};
}

Error neg_errno_error(int neg_err, std::string what, std::string hint) {
    return Error{neg_err < 0 ? -neg_err : neg_err, std::move(what), std::move(hint)};
}

Error plain_error(std::string what, std::string hint) {
    return Error{0, std::move(what), std::move(hint)};
}

}  // namespace cordon
