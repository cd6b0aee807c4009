// SPDX-License-Identifier: Apache-2.0
#include "daemon/audit_tail.h"

#include <sys/stat.h>

#include <fstream>

namespace cordon::daemon {

namespace {

// No more than this per poll: a flood waits for the next one.
constexpr uint64_t kMaxBytesPerPoll = 1 << 20;

uint64_t file_size(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

AuditTail::AuditTail(std::string path) : path_(std::move(path)), offset_(file_size(path_)) {}

void AuditTail::poll(const std::function<void(const std::string&)>& sink) {
    uint64_t size = file_size(path_);
    if (size < offset_) {
        offset_ = 0;
        partial_.clear();
    }
    if (size == offset_) return;
    std::ifstream in(path_, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset_));
    std::string chunk(std::min(size - offset_, kMaxBytesPerPoll), '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    chunk.resize(static_cast<size_t>(in.gcount()));
    offset_ += chunk.size();
    partial_ += chunk;
    size_t start = 0;
    for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1)
        sink(partial_.substr(start, nl - start));
    partial_.erase(0, start);
}

}  // namespace cordon::daemon
