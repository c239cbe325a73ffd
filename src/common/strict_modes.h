// sshd's StrictModes for the files a privileged process reads: who could have written them.
#pragma once

#include <string>

#include "common/error.h"

namespace pyrun {

// Checks that nobody but root (or, in a process that is not root, the process's own user) can
// have written `path` or can replace it: the file and every directory above it must be owned by
// root or by our effective uid, and carry no group or other write bit. A directory writable by
// everyone is accepted only when it is root's and sticky (like /tmp): nobody else can rename or
// remove what is in it. Symbolic links are followed (each directory on the way as written, and
// on the way to the target, is checked). Errors: kPermission naming the path at fault and why
// ("refusing /etc/pyrun/default.yaml: /etc/pyrun is writable by its group (mode 0775); ...");
// kNotFound or kIo (errnoError) when a path cannot be examined.
Result<void> checkStrictModes(const std::string& path);

}  // namespace pyrun
