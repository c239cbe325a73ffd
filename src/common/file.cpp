// File helpers: exclusive creation, atomic replacement and permission checks.
#include "common/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/fd.h"

namespace pyrun {
namespace {

Result<void> writeAndSync(int fd, std::string_view data, const std::string& path) {
  if (auto r = writeAll(fd, std::span<const char>(data.data(), data.size()), path); !r) return r;
  if (::fsync(fd) != 0) return errnoError("fsync " + path, errno);
  return {};
}

}  // namespace

Result<std::string> readFile(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errnoError(path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errnoError(path, errno);
  if (!S_ISREG(st.st_mode)) return Error(Errc::kInvalidArgument, path + ": not a regular file");
  return readAll(fd.get(), path, max_bytes);
}

Result<void> writeNewFile(const std::string& path, std::string_view data, mode_t mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return errnoError(path, errno);
  // The umask can only narrow the mode; fchmod makes it exact (e.g. 0644 for a certificate).
  if (::fchmod(fd.get(), mode) != 0) return errnoError("chmod " + path, errno);
  return writeAndSync(fd.get(), data, path);
}

Result<void> replaceFile(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // a leftover from a crashed run of this same pid
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return errnoError(tmp, errno);
  if (::fchmod(fd.get(), mode) != 0) return errnoError("chmod " + tmp, errno);
  if (auto r = writeAndSync(fd.get(), data, tmp); !r) {
    ::unlink(tmp.c_str());
    return r;
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errnoError("rename " + tmp + " -> " + path, err);
  }
  return {};
}

Result<void> requirePrivateFile(const std::string& path, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errnoError(path, errno);
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return Error(Errc::kPermission,
                 std::string(what) + " " + path + " has mode " + mode +
                     ": it must not be accessible by group or others (chmod 600 " + path + ")");
  }
  return {};
}

}  // namespace pyrun
