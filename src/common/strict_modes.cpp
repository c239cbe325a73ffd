// StrictModes: the ownership and write bits of a file and of every directory above it.
#include "common/strict_modes.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace pyrun {
namespace {

std::string octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// "/a/b/c" -> {"/", "/a", "/a/b", "/a/b/c"}
std::vector<std::string> prefixes(const std::string& absolute) {
  std::vector<std::string> out{"/"};
  for (size_t i = 1; i <= absolute.size(); ++i) {
    if (i == absolute.size() || absolute[i] == '/') {
      if (absolute[i - 1] != '/') out.push_back(absolute.substr(0, i));
    }
  }
  return out;
}

// Why `path` (one component, examined with lstat) is not trustworthy, or "" when it is.
Result<std::string> faultOf(const std::string& path, bool is_target) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errnoError("stat " + path, errno);
  // A link cannot be changed, only replaced, which its directory's check covers.
  if (S_ISLNK(st.st_mode)) return std::string();
  const uid_t me = ::geteuid();
  if (st.st_uid != 0 && st.st_uid != me) {
    return path + " is owned by uid " + std::to_string(st.st_uid) +
           (me == 0 ? ", not root" : ", neither root nor uid " + std::to_string(me));
  }
  const bool sticky_root_dir =
      S_ISDIR(st.st_mode) && !is_target && st.st_uid == 0 && (st.st_mode & S_ISVTX) != 0;
  if (sticky_root_dir) return std::string();
  if ((st.st_mode & S_IWOTH) != 0) {
    return path + " is writable by everyone (mode " + octal(st.st_mode) + ")";
  }
  if ((st.st_mode & S_IWGRP) != 0) {
    return path + " is writable by its group (mode " + octal(st.st_mode) + ")";
  }
  return std::string();
}

Result<void> checkAll(const std::string& file, const std::string& absolute) {
  auto parts = prefixes(absolute);
  for (size_t i = 0; i < parts.size(); ++i) {
    auto fault = faultOf(parts[i], i + 1 == parts.size());
    if (!fault) return fault.error();
    if (!fault->empty()) {
      return Error(Errc::kPermission,
                   "refusing " + file + ": " + *fault + "; only root may be able to change it");
    }
  }
  return {};
}

}  // namespace

Result<void> checkStrictModes(const std::string& path) {
  std::string absolute = path;
  if (absolute.empty() || absolute[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof cwd) == nullptr) return errnoError("getcwd", errno);
    absolute = std::string(cwd) + "/" + path;
  }
  // The path as written: each directory on it could swap what follows.
  if (auto r = checkAll(path, absolute); !r) return r;
  // And where it leads, when links are on the way.
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(absolute.c_str(), nullptr),
                                                   &std::free);
  if (!real) return errnoError("resolve " + path, errno);
  if (real.get() != absolute) return checkAll(path, real.get());
  return {};
}

}  // namespace pyrun
