// Staging of streamed uploads (see transfer.h). Runs in the unprivileged front: it writes only
// below its own .uploads directory, which the spawner created for it.
#include "server/transfer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/dir.h"
#include "common/file.h"
#include "common/log.h"
#include "sandbox/workdir.h"

namespace pyrun::server {

std::string formatSize(uint64_t bytes) {
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  double v = static_cast<double>(bytes) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (v == static_cast<double>(static_cast<uint64_t>(v))) {
    std::snprintf(buf, sizeof buf, "%llu %s", static_cast<unsigned long long>(v), units[u]);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

Upload::Upload(std::string jobs_dir, UploadQuota quota)
    : jobs_dir_(std::move(jobs_dir)), quota_(std::move(quota)) {}

Upload::~Upload() {
  file_fd_.reset();
  top_fd_.reset();
  if (released_ || name_.empty() || !uploads_fd_) return;
  if (auto r = sandbox::removeTree(uploads_fd_.get(), name_); !r) {
    PYRUN_LOG(kError) << "cannot remove the upload " << name_ << ": " << r.error().detail();
  }
}

Result<void> Upload::open() {
  if (top_fd_) return {};
  const std::string dir = jobs_dir_ + "/" + sandbox::kUploadsDir;
  uploads_fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!uploads_fd_) return errnoError("open " + dir, errno);
  std::string name = sandbox::randomSuffix();
  if (::mkdirat(uploads_fd_.get(), name.c_str(), 0700) != 0) {
    return errnoError("create " + dir + "/" + name, errno);
  }
  name_ = name;
  top_fd_.reset(
      ::openat(uploads_fd_.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!top_fd_) return errnoError("open " + dir + "/" + name, errno);
  return {};
}

Result<void> Upload::overQuota(const std::string& what, uint64_t bytes, uint64_t files) const {
  if (bytes > quota_.bytes) {
    return Error(Errc::kLimit, what + " takes the job's files to " + formatSize(bytes) +
                                   ", above the working directory limit (workdir) of " +
                                   formatSize(quota_.bytes) + " of policy \"" + quota_.policy +
                                   "\"");
  }
  if (files > quota_.files) {
    return Error(Errc::kLimit,
                 what + " takes the job's files and directories to " + std::to_string(files) +
                     ", above the working directory's limit (workdir_files) of " +
                     std::to_string(quota_.files) + " of policy \"" + quota_.policy + "\"");
  }
  return {};
}

Result<void> Upload::begin(const proto::FileHeader& h) {
  if (owed()) return Error(Errc::kInvalidArgument, "FILE before the last file's bytes arrived");
  if (auto r = names_.add(h.name); !r) return r;
  // Announced sizes are judged before a byte is received; checked without overflow.
  if (h.size > quota_.bytes || bytes_ > quota_.bytes - h.size) {
    return overQuota("file \"" + h.name + "\" (" + formatSize(h.size) + ")",
                     h.size > quota_.bytes ? h.size : bytes_ + h.size, 0);
  }
  if (auto r = overQuota("file \"" + h.name + "\"", bytes_ + h.size,
                         names_.size() + names_.directories());
      !r) {
    return r;
  }
  if (auto r = open(); !r) return r;
  // Parents first, each opened without following a link; the names passed validateFileName, so
  // no component is empty, "." or "..".
  UniqueFd dir(::fcntl(top_fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!dir) return errnoError("dup", errno);
  size_t begin = 0;
  for (size_t slash = h.name.find('/'); slash != std::string::npos;
       slash = h.name.find('/', begin)) {
    const std::string part = h.name.substr(begin, slash - begin);
    if (::mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
      return errnoError("create directory " + h.name.substr(0, slash), errno);
    }
    UniqueFd sub(
        ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) return errnoError("open directory " + h.name.substr(0, slash), errno);
    dir = std::move(sub);
    begin = slash + 1;
  }
  const std::string leaf = h.name.substr(begin);
  file_fd_.reset(::openat(dir.get(), leaf.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!file_fd_) return errnoError("create " + h.name, errno);
  bytes_ += h.size;
  file_name_ = h.name;
  file_mode_ = h.mode;
  remaining_ = h.size;
  if (remaining_ == 0) finishFile();
  return {};
}

Result<void> Upload::data(std::span<const uint8_t> bytes) {
  if (!file_fd_) return Error(Errc::kInvalidArgument, "FILE_DATA without a FILE");
  if (bytes.size() > remaining_) {
    return Error(Errc::kInvalidArgument, "FILE_DATA beyond the " + std::to_string(remaining_) +
                                             " bytes still owed for \"" + file_name_ + "\"");
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(file_fd_.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("write " + file_name_, errno);
    done += static_cast<size_t>(n);
  }
  remaining_ -= bytes.size();
  if (remaining_ == 0) finishFile();
  return {};
}

void Upload::finishFile() {
  // The mode last: a file made read-only (0444) is still written above.
  if (::fchmod(file_fd_.get(), file_mode_) != 0) {
    PYRUN_PLOG(kWarning) << "chmod of the uploaded " << file_name_;
  }
  file_fd_.reset();
}

Result<void> Upload::checkRun(const proto::RunRequest& run) {
  if (owed()) return Error(Errc::kInvalidArgument, "RUN before the last file's bytes arrived");
  auto clash = [&](const std::string& name) -> Result<void> {
    if (auto r = names_.add(name); !r) {
      return Error(Errc::kInvalidArgument,
                   "\"" + name + "\" of RUN clashes with an uploaded file: " + r.error().detail());
    }
    return {};
  };
  uint64_t total = bytes_ + run.script.size();
  if (auto r = clash(run.script_name); !r) return r;
  for (const auto& f : run.files) {
    if (auto r = clash(f.name); !r) return r;
    total += f.data.size();
  }
  return overQuota("the request", total, names_.size() + names_.directories());
}

std::string Upload::release() {
  released_ = true;
  top_fd_.reset();
  file_fd_.reset();
  return name_;
}

ResultFiles::ResultFiles(std::string jobs_dir, std::string name)
    : jobs_dir_(std::move(jobs_dir)), name_(std::move(name)) {}

ResultFiles::~ResultFiles() {
  top_fd_.reset();
  if (!uploads_fd_) {
    const std::string dir = jobs_dir_ + "/" + sandbox::kUploadsDir;
    uploads_fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!uploads_fd_) return;
  if (auto r = sandbox::removeTree(uploads_fd_.get(), name_); !r) {
    PYRUN_LOG(kError) << "cannot remove the results " << name_ << ": " << r.error().detail();
  }
}

Result<void> ResultFiles::list(int dir, const std::string& rel, int depth) {
  if (depth > 64) return {};
  auto listed = listNames(dir, "results " + rel);
  if (!listed) return listed.error();
  const std::vector<std::string>& names = *listed;
  for (const auto& n : names) {
    const std::string path = rel.empty() ? n : rel + "/" + n;
    struct stat st {};
    if (::fstatat(dir, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(dir, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub) {
        if (auto r = list(sub.get(), path, depth + 1); !r) return r;
      }
    } else if (S_ISREG(st.st_mode) && proto::validateFileName(path, st.st_mode & 0777)) {
      files_.push_back(path);
    }
  }
  return {};
}

Result<std::optional<ResultFiles::Next>> ResultFiles::next() {
  if (!listed_) {
    listed_ = true;
    const std::string dir = jobs_dir_ + "/" + sandbox::kUploadsDir;
    uploads_fd_.reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!uploads_fd_) return errnoError("open " + dir, errno);
    top_fd_.reset(::openat(uploads_fd_.get(), name_.c_str(),
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!top_fd_) return errnoError("open " + dir + "/" + name_, errno);
    if (auto r = list(top_fd_.get(), "", 0); !r) return r.error();
  }
  while (at_ < files_.size()) {
    const std::string& path = files_[at_++];
    // One component at a time, never through a link.
    UniqueFd dir(::fcntl(top_fd_.get(), F_DUPFD_CLOEXEC, 0));
    size_t begin = 0;
    for (size_t slash = path.find('/'); slash != std::string::npos && dir;
         slash = path.find('/', begin)) {
      dir.reset(::openat(dir.get(), path.substr(begin, slash - begin).c_str(),
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      begin = slash + 1;
    }
    if (!dir) continue;
    UniqueFd fd(::openat(dir.get(), path.substr(begin).c_str(),
                         O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    Next n;
    n.header = proto::FileHeader{path, static_cast<uint32_t>(st.st_mode & 0777),
                                 static_cast<uint64_t>(st.st_size)};
    n.fd = std::move(fd);
    return std::optional<Next>(std::move(n));
  }
  return std::optional<Next>();
}

}  // namespace pyrun::server
