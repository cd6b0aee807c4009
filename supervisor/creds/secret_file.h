// SPDX-License-Identifier: Apache-2.0
// Files that hold secrets at rest: credential sources today, client secrets
// and keys tomorrow. Like ssh with a private key, agent-run reads such a
// file only if nobody but its owner can, and only if that owner is root or
// agent-run's own account; a symbolic link in the last component is refused
// so a link planted there cannot redirect the read.
#pragma once

#include <string>

#include "cordon/result.h"
#include "creds/creds.h"

namespace cordon::creds {

// The file's contents, trailing newlines removed. `what` names the profile
// key the path came from ("credentials.NAME.source.file") and starts every
// error; an empty file is an error too.
Result<Secret> read_secret_file(const std::string& path, const std::string& what);

// A file agent-run trusts but that is no secret, such as a CA bundle: it
// must be a regular file that only root or agent-run's account can change
// (whoever could write it could make agent-run trust their server).
// `what` names the profile key and starts every error.
Status check_trusted_file(const std::string& path, const std::string& what);

}  // namespace cordon::creds
