// Dropping root in the network front (DESIGN.md, "Processes in pyrund").
#pragma once

#include <string>

#include "common/error.h"

namespace pyrun::server {

// When the process runs as root (any of real, effective or saved uid 0): switches to `user`'s uid
// and primary gid with no supplementary groups, checks that root cannot be regained, and sets
// PR_SET_NO_NEW_PRIVS. Does nothing (and succeeds) for an unprivileged process. Must run while the
// process is single-threaded: set*id calls change only the calling thread at the kernel level.
// Errors: unknown user, a user that is root itself, or any step failing (kPermission).
Result<void> dropPrivileges(const std::string& user);

// True if real, effective or saved uid is 0.
bool runningAsRoot();

}  // namespace pyrun::server
