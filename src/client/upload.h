// What pyrun sends besides the script: the importable modules beside it and the -f files, planned
// on this machine before connecting (docs/pyrun.md, "Files").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "client/options.h"
#include "common/error.h"

namespace pyrun::client {

// Bounds of what is sent by default (the modules beside the script).
inline constexpr size_t kMaxModuleFiles = 1000;
inline constexpr uint64_t kMaxModuleBytes = 16ull << 20;

struct UploadEntry {
  std::string local;  // path on this machine
  std::string name;   // path in the job's working directory
  uint32_t mode = 0644;
  uint64_t size = 0;
  bool follow = false;  // a path the user named with -f: its own symlink is followed
  bool module = false;  // found beside the script (not named with -f)
};

struct UploadPlan {
  std::vector<UploadEntry> entries;
  uint64_t bytes = 0;
};

// The files to send for these options, in the order they go: -f entries first (a directory
// recursively, all entries but symlinks and special files), then unless options.modules is off
// the modules beside the script: its sibling *.py files and the package directories (those with
// an __init__.py), recursively with their *.py files, leaving out hidden entries, __pycache__,
// anything not a regular file or directory, and names already sent with -f. Symlinks are never
// followed inside a directory. Errors (kInvalidArgument, naming the path): a name breaking
// PROTOCOL.md's rules, the script's own name, a name given twice, unreadable paths, and modules
// beyond kMaxModuleFiles or kMaxModuleBytes (the message says what to do).
Result<UploadPlan> planUpload(const Options& options);

}  // namespace pyrun::client
