// SPDX-License-Identifier: Apache-2.0
// One named logger per layer, sharing the default logger's sinks, format and
// level (set once by the program's main). Library code logs at debug and
// returns errors; the caller logs a failure once.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace cordon {

inline std::shared_ptr<spdlog::logger> layer_logger(const std::string& name) {
    if (auto existing = spdlog::get(name)) return existing;
    auto logger = spdlog::default_logger()->clone(name);
    spdlog::register_logger(logger);
    return logger;
}

}  // namespace cordon
