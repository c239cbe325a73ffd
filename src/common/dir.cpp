// Directory listing: one owner for the DIR* and its descriptor.
#include "common/dir.h"

#include <dirent.h>
#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common/fd.h"

namespace pyrun {
namespace {

struct CloseDir {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};

Result<std::vector<DirEntry>> readEntries(UniqueFd fd, std::string_view what) {
  auto fail = [&](int err) { return errnoError("read directory " + std::string(what), err); };
  // fdopendir takes the descriptor only when it succeeds; until then fd owns it.
  std::unique_ptr<DIR, CloseDir> dir(::fdopendir(fd.get()));
  if (!dir) return fail(errno);
  fd.release();
  // A duplicate shares its file offset with the original, which an earlier listing may have left
  // at the end.
  ::rewinddir(dir.get());
  std::vector<DirEntry> entries;
  for (;;) {
    errno = 0;
    dirent* e = ::readdir(dir.get());
    if (e == nullptr) break;
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    entries.push_back({e->d_name, e->d_type});
  }
  if (errno != 0) return fail(errno);
  return entries;
}

}  // namespace

Result<std::vector<DirEntry>> listDirectory(int dir_fd, std::string_view what) {
  UniqueFd dup(::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0));
  if (!dup) return errnoError("read directory " + std::string(what), errno);
  return readEntries(std::move(dup), what);
}

Result<std::vector<DirEntry>> listDirectory(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errnoError("read directory " + path, errno);
  return readEntries(std::move(fd), path);
}

}  // namespace pyrun
