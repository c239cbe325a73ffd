// Listing a directory's entries, with the DIR* owned for its whole use.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun {

struct DirEntry {
  std::string name;
  unsigned char type = 0;  // dirent's d_type: DT_DIR, DT_REG, DT_LNK, ... or DT_UNKNOWN
};

// Every entry but "." and ".." of the directory open at dir_fd (any descriptor of it, O_PATH
// included), from its start, in readdir order. dir_fd stays open and its offset is not moved (the
// directory is opened again through it). Nothing is followed.
// Errors (errnoError "read directory <what>: ..."): dup, fdopendir or readdir failed.
Result<std::vector<DirEntry>> listDirectory(int dir_fd, std::string_view what);

// The names alone, sorted (for walks whose order must not depend on the file system).
Result<std::vector<std::string>> listNames(int dir_fd, std::string_view what);

// The same as listDirectory for a path (opened with O_DIRECTORY; a final symbolic link is followed,
// as by opendir).
Result<std::vector<DirEntry>> listDirectory(const std::string& path);

}  // namespace pyrun
