// SPDX-License-Identifier: Apache-2.0
// The audit log, copied to cordond's own log (the journal under systemd):
// sessions write their events straight to the file, and cordond passes on
// each complete line appended since it last looked.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace cordon::daemon {

class AuditTail {
  public:
    // Starts at the file's current end: what is there is already on record.
    explicit AuditTail(std::string path);

    // Calls sink for each complete line appended since the last call. A file
    // that shrank (rotated with copytruncate) is read again from its start.
    void poll(const std::function<void(const std::string&)>& sink);

  private:
    std::string path_;
    uint64_t offset_ = 0;
    std::string partial_;  // a line not yet complete
};

}  // namespace cordon::daemon
