// Whole-file reads and the careful writes that keys, bundles and indexes need.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun {

// Reads a whole regular file (at most max_bytes). Errors name the path.
Result<std::string> readFile(const std::string& path, size_t max_bytes = 64u << 20);

// Creates path with O_CREAT|O_EXCL|O_NOFOLLOW and the given mode (umask does not widen it), writes
// data and fsyncs. Fails with kAlreadyExists if anything exists at path: never overwrites.
Result<void> writeNewFile(const std::string& path, std::string_view data, mode_t mode);

// Replaces path atomically: writes a temporary file beside it (mode), fsyncs, renames over path.
// Readers see the old or the new contents, never a mix.
Result<void> replaceFile(const std::string& path, std::string_view data, mode_t mode);

// Fails with kPermission if the file at path is readable, writable or executable by group or
// others (like ssh refusing an open private key). `what` names the file in the message.
Result<void> requirePrivateFile(const std::string& path, std::string_view what);

}  // namespace pyrun
