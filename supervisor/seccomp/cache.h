// SPDX-License-Identifier: Apache-2.0
// A filter is compiled once per distinct policy and reused. The key is the
// resolved ruleset's canonical text (what the filter does, not where the
// rules came from), and a hit needs that exact text: a hash only names the
// file, so a collision can never hand a session another policy's filter.
//
//   ProgramCache   in memory, for a supervisor that runs many sessions
//   DiskCache      compiled programs under agent-run's run directory,
//                  <dir>/<hash>.bpf, root-only, written atomically
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "cordon/result.h"
#include "seccomp/seccomp.h"

namespace cordon::seccomp {

// Every input of compile(), one line each, in a fixed order: the format,
// the libseccomp version and native architecture, the default action, then
// each syscall with its rules. Rule origins are left out.
std::string canonical_text(const Ruleset& rules);

class ProgramCache {
  public:
    // The program for `rules`, compiled on the first request.
    Result<Program> get(const Ruleset& rules);
    size_t size() const;

  private:
    mutable std::mutex mu_;
    std::map<std::string, Program> programs_;
};

// What a DiskCache lookup did, for logs and tests.
enum class CacheOutcome { hit, miss, replaced };

class DiskCache {
  public:
    // `dir` is created 0700 when missing; it must belong to this user and
    // be closed to everybody else.
    explicit DiskCache(std::string dir) : dir_(std::move(dir)) {}

    // The program for `rules`: read from its file when the file is sound
    // and holds the same canonical text, else compiled and written back.
    // A file that cannot be written is logged, never a failure.
    Result<Program> get(const Ruleset& rules, CacheOutcome* outcome = nullptr);

    // Where the program of `text` lives.
    std::string path_for(const std::string& text) const;

  private:
    std::string dir_;
};

// load_catalog + resolve + the disk cache under `cache_dir`.
Result<Program> build_cached(const profile::SyscallPolicy& policy, const std::string& data_dir,
                             const std::string& cache_dir);

}  // namespace cordon::seccomp
