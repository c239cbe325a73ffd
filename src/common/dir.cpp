// Directory listing: one owner for the DIR* and its descriptor.
#include "common/dir.h"

#include <dirent.h>
#include <fcntl.h>

#include <algorithm>
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
  // A new open file description, not a dup: it works for O_PATH descriptors too, and it does not
  // share a file offset that an earlier listing left at the end.
  UniqueFd fd(::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errnoError("read directory " + std::string(what), errno);
  return readEntries(std::move(fd), what);
}

Result<std::vector<std::string>> listNames(int dir_fd, std::string_view what) {
  auto entries = listDirectory(dir_fd, what);
  if (!entries) return entries.error();
  std::vector<std::string> names;
  names.reserve(entries->size());
  for (auto& e : *entries) names.push_back(std::move(e.name));
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::vector<DirEntry>> listDirectory(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errnoError("read directory " + path, errno);
  return readEntries(std::move(fd), path);
}

}  // namespace pyrun
