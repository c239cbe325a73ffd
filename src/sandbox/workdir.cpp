// Job working directories. Every step works on directory descriptors opened with O_NOFOLLOW, so a
// link the job planted can neither redirect our writes nor turn our removal onto a host file.
#include "sandbox/workdir.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/dir.h"
#include "common/log.h"

namespace pyrun::sandbox {
namespace {

constexpr size_t kMaxComponent = 255;
constexpr size_t kMaxPath = 4096;
// Deeper directories are moved up to the top of the tree rather than recursed into: the job
// decides the depth, and each level would cost a stack frame and a descriptor here.
constexpr int kMaxRemoveDepth = 32;

}  // namespace

std::string randomSuffix() {
  uint8_t bytes[8] = {};
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // getrandom cannot fail after boot; the name is still unique via O_EXCL
    got += static_cast<size_t>(n);
  }
  char hex[17];
  for (size_t i = 0; i < sizeof bytes; ++i) std::snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return std::string(hex, 16);
}

namespace {

std::vector<std::string> splitPath(std::string_view name) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string_view::npos) slash = name.size();
    parts.emplace_back(name.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

// Opens a directory entry for reading after making it 0700, never following a link. A job may
// have left a directory 0000; we are root or its owner, so chmod through the O_PATH descriptor's
// /proc/self/fd alias (fchmod does not take O_PATH descriptors) restores access.
UniqueFd openDirForRemoval(int parent_fd, const std::string& name) {
  UniqueFd path_fd(
      ::openat(parent_fd, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!path_fd) return {};
  std::string alias = "/proc/self/fd/" + std::to_string(path_fd.get());
  ::chmod(alias.c_str(), 0700);
  return UniqueFd(::openat(path_fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

struct Remover {
  int top_fd;
  std::string first_error;
  unsigned moved = 0;

  void fail(const std::string& what, int err) {
    if (first_error.empty()) first_error = what + ": " + std::strerror(err);
  }

  // Removes everything inside dir_fd (which stays open); depth counts levels below the top.
  void emptyDir(int dir_fd, int depth, const std::string& where) {
    auto listed = listDirectory(dir_fd, where);
    if (!listed) {
      if (first_error.empty()) first_error = listed.error().detail();
      return;
    }
    std::vector<std::pair<std::string, bool>> entries;
    for (auto& e : *listed) {
      struct stat st {};
      if (::fstatat(dir_fd, e.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      entries.emplace_back(std::move(e.name), S_ISDIR(st.st_mode));
    }
    for (const auto& [n, is_dir] : entries) {
      std::string path = where + "/" + n;
      if (!is_dir) {
        // Unlinking a symlink or a hard link removes the name here only, never the target.
        if (::unlinkat(dir_fd, n.c_str(), 0) != 0 && errno != ENOENT) fail("unlink " + path, errno);
        continue;
      }
      if (depth >= kMaxRemoveDepth) {
        std::string up = ".pyrun-deep-" + std::to_string(moved++) + "-" + randomSuffix();
        if (::renameat(dir_fd, n.c_str(), top_fd, up.c_str()) != 0) fail("move " + path, errno);
        continue;
      }
      UniqueFd sub = openDirForRemoval(dir_fd, n);
      if (!sub) {
        fail("open " + path, errno);
        continue;
      }
      emptyDir(sub.get(), depth + 1, path);
      sub.reset();
      if (::unlinkat(dir_fd, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        fail("remove directory " + path, errno);
      }
    }
  }
};

}  // namespace

Result<UniqueFd> openJobsDir(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return Error(Errc::kInvalidArgument, "jobs directory '" + path + "' is not an absolute path");
  }
  if (::mkdir(path.c_str(), 0711) != 0 && errno != EEXIST) {
    return errnoError("create jobs directory " + path, errno);
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errnoError("open jobs directory " + path, errno);
  return fd;
}

Result<void> checkRelativePath(std::string_view name) {
  auto bad = [&](const char* why) {
    return Error(Errc::kInvalidArgument, "file name '" + std::string(name) + "' " + why);
  };
  if (name.empty()) return bad("is empty");
  if (name.size() > kMaxPath) return bad("is too long");
  if (name.find('\0') != std::string_view::npos) return bad("contains a NUL byte");
  if (name[0] == '/') return bad("is absolute");
  for (const auto& part : splitPath(name)) {
    if (part.empty()) return bad("has an empty component");
    if (part == "." || part == "..") return bad("has a '.' or '..' component");
    if (part.size() > kMaxComponent) return bad("has a component longer than 255 bytes");
  }
  return {};
}

namespace {

Result<void> chownTo(int fd, const Owner* owner, const std::string& what) {
  if (owner != nullptr && ::fchown(fd, owner->uid, owner->gid) != 0) {
    return errnoError("chown " + what, errno);
  }
  return {};
}

Result<void> writeJobFile(int top_fd, const std::string& top_path, const std::string& name,
                          mode_t mode, std::string_view data, const Owner* owner) {
  if (auto r = checkRelativePath(name); !r) return r;
  auto parts = splitPath(name);
  UniqueFd dir(::fcntl(top_fd, F_DUPFD_CLOEXEC, 0));
  if (!dir) return errnoError("dup " + top_path, errno);
  std::string where = top_path;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    where += "/" + parts[i];
    bool created = ::mkdirat(dir.get(), parts[i].c_str(), 0700) == 0;
    if (!created && errno != EEXIST) return errnoError("create directory " + where, errno);
    UniqueFd sub(
        ::openat(dir.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) return errnoError("open directory " + where, errno);
    if (created) {
      if (auto r = chownTo(sub.get(), owner, where); !r) return r;
    }
    dir = std::move(sub);
  }
  where += "/" + parts.back();
  UniqueFd file(::openat(dir.get(), parts.back().c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!file) return errnoError("create " + where, errno);
  if (auto r = writeAll(file.get(), std::span<const char>(data.data(), data.size()), where); !r) {
    return r;
  }
  if (auto r = chownTo(file.get(), owner, where); !r) return r;
  // After the chown: chown clears set-id bits, and the mode is limited to permission bits anyway.
  if (::fchmod(file.get(), mode & 0777) != 0) return errnoError("chmod " + where, errno);
  return {};
}

}  // namespace

Result<UniqueFd> openUploadsDir(int jobs_dir_fd, const std::string& jobs_dir, const Owner* owner) {
  const std::string path = jobs_dir + "/" + kUploadsDir;
  if (::mkdirat(jobs_dir_fd, kUploadsDir, 0700) != 0 && errno != EEXIST) {
    return errnoError("create " + path, errno);
  }
  UniqueFd fd(::openat(jobs_dir_fd, kUploadsDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return errnoError("open " + path, errno);
  if (::fchmod(fd.get(), 0700) != 0) return errnoError("chmod " + path, errno);
  if (auto r = chownTo(fd.get(), owner, path); !r) return r.error();
  return fd;
}

Result<WorkDir> createWorkDir(int jobs_dir_fd, const std::string& jobs_dir, const JobSpec& spec,
                              const Owner* owner, int uploads_fd) {
  if (auto r = checkRelativePath(spec.script_name); !r) return r.error();
  if (spec.script_name.find('/') != std::string::npos) {
    return Error(Errc::kInvalidArgument,
                 "script name '" + spec.script_name + "' must be a base name, not a path");
  }
  WorkDir wd;
  wd.name = std::to_string(spec.job_id) + "-" + randomSuffix();
  wd.path = jobs_dir + "/" + wd.name;
  if (!spec.upload.empty()) {
    // One plain name inside .uploads: the front names its own upload, nothing else.
    if (spec.upload.find('/') != std::string::npos || spec.upload == "." || spec.upload == ".." ||
        spec.upload.size() > 255 || uploads_fd < 0) {
      return Error(Errc::kInvalidArgument, "upload name '" + spec.upload + "' is not valid");
    }
    // rename() moves a symlink itself, never its target; the O_NOFOLLOW|O_DIRECTORY open in
    // fill() then refuses anything that is not a directory.
    if (::renameat(uploads_fd, spec.upload.c_str(), jobs_dir_fd, wd.name.c_str()) != 0) {
      return errnoError("move the upload " + spec.upload + " to " + wd.path, errno);
    }
  } else if (::mkdirat(jobs_dir_fd, wd.name.c_str(), 0700) != 0) {
    return errnoError("create working directory " + wd.path, errno);
  }
  auto fill = [&]() -> Result<void> {
    wd.fd.reset(
        ::openat(jobs_dir_fd, wd.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!wd.fd) return errnoError("open working directory " + wd.path, errno);
    if (::fchmod(wd.fd.get(), 0700) != 0) return errnoError("chmod " + wd.path, errno);
    if (auto r = chownTo(wd.fd.get(), owner, wd.path); !r) return r;
    if (auto r = writeJobFile(wd.fd.get(), wd.path, spec.script_name, 0644, spec.script, owner);
        !r) {
      return r;
    }
    for (const auto& f : spec.files) {
      if (auto r = writeJobFile(wd.fd.get(), wd.path, f.name, f.mode, f.data, owner); !r) return r;
    }
    return {};
  };
  if (auto r = fill(); !r) {
    wd.fd.reset();
    if (auto removed = removeTree(jobs_dir_fd, wd.name); !removed) {
      PYRUN_LOG(kError) << removed.error().detail();
    }
    return r.error();
  }
  return wd;
}

Result<void> removeTree(int parent_fd, const std::string& name) {
  UniqueFd top = openDirForRemoval(parent_fd, name);
  if (!top) {
    if (errno == ENOENT) return {};
    if (errno == ENOTDIR || errno == ELOOP) {
      if (::unlinkat(parent_fd, name.c_str(), 0) == 0 || errno == ENOENT) return {};
    }
    return errnoError("open " + name + " for removal", errno);
  }
  Remover remover{top.get(), {}, 0};
  // Each pass removes everything within kMaxRemoveDepth levels and moves deeper directories to the
  // top, so the passes end; the bound only guards against a bug looping for ever.
  for (int pass = 0; pass < 100000; ++pass) {
    unsigned moved_before = remover.moved;
    remover.emptyDir(top.get(), 0, name);
    if (!remover.first_error.empty() || remover.moved == moved_before) break;
  }
  top.reset();
  if (!remover.first_error.empty()) return Error(Errc::kIo, remover.first_error);
  if (::unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return errnoError("remove directory " + name, errno);
  }
  return {};
}

}  // namespace pyrun::sandbox
