// Copying result files out of a job's working directory (see results.h). Runs in the spawner, as
// root: every open is relative to a directory descriptor, with O_NOFOLLOW, on the job's own
// file system only, so nothing the job planted (symlinks, FIFOs, devices) leads anywhere else.
#include "sandbox/results.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/dir.h"
#include "common/file.h"
#include "common/glob.h"
#include "common/log.h"

namespace pyrun::sandbox {
namespace {

// Deeper trees are not walked (a job could nest directories to make the walk long).
constexpr int kMaxDepth = 64;

bool plainName(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

class Copier {
 public:
  Copier(const std::vector<std::string>& patterns, const Owner* owner, uint64_t max_files,
         uint64_t max_bytes, dev_t dev)
      : patterns_(patterns),
        owner_(owner),
        max_files_(max_files),
        max_bytes_(max_bytes),
        dev_(dev) {}

  bool matches(const std::string& rel) const {
    return std::any_of(patterns_.begin(), patterns_.end(),
                       [&](const std::string& p) { return pathMatches(p, rel); });
  }

  void walk(int dir, const std::string& rel, int dest_top, int depth) {
    if (depth > kMaxDepth) {
      note(rel + ": deeper than " + std::to_string(kMaxDepth) + " levels, left out");
      return;
    }
    auto listed = listNames(dir, rel.empty() ? "." : rel);
    if (!listed) return note(listed.error().detail());
    const std::vector<std::string>& names = *listed;
    for (const auto& n : names) {
      const std::string path = rel.empty() ? n : rel + "/" + n;
      if (!plainName(n) || path.size() > 1024) continue;  // not a name pyrun/1 can carry
      struct stat st {};
      if (::fstatat(dir, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_dev != dev_) continue;
      if (S_ISDIR(st.st_mode)) {
        UniqueFd sub(::openat(dir, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (sub) walk(sub.get(), path, dest_top, depth + 1);
      } else if (S_ISREG(st.st_mode) && matches(path)) {
        copyFile(dir, n, path, dest_top);
      }
    }
  }

  ResultsCopy take() { return std::move(copy_); }

 private:
  void note(const std::string& what) {
    if (copy_.detail.size() < 1024) copy_.detail += (copy_.detail.empty() ? "" : "; ") + what;
  }

  void copyFile(int dir, const std::string& name, const std::string& path, int dest_top) {
    // O_NONBLOCK: should the file have become a FIFO since the stat, the open does not hang.
    UniqueFd in(::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (!in || ::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != dev_) return;
    const auto size = static_cast<uint64_t>(st.st_size);
    if (copy_.files + 1 > max_files_ || size > max_bytes_ - std::min(max_bytes_, copy_.bytes)) {
      ++left_out_;
      note(path + ": over the limit of " + std::to_string(max_files_) + " files and " +
           std::to_string(max_bytes_) + " bytes, left out");
      return;
    }
    UniqueFd parent = makeParents(dest_top, path);
    if (!parent)
      return note("cannot create the directory of " + path + ": " + std::strerror(errno));
    const std::string leaf =
        path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    UniqueFd out(::openat(parent.get(), leaf.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out) return note("cannot create " + path + ": " + std::strerror(errno));
    uint64_t done = 0;
    while (done < size) {
      ssize_t n = ::sendfile(out.get(), in.get(), nullptr, static_cast<size_t>(size - done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // an error, or the file shrank: what was read is what is sent
      done += static_cast<uint64_t>(n);
    }
    ::fchmod(out.get(), (st.st_mode & 0777) | 0600);
    if (owner_ != nullptr && ::fchown(out.get(), owner_->uid, owner_->gid) != 0) {
      return note("cannot chown " + path + ": " + std::strerror(errno));
    }
    ++copy_.files;
    copy_.bytes += done;
  }

  // The directory that holds path below dest_top, created (0700, owned by owner) as needed.
  UniqueFd makeParents(int dest_top, const std::string& path) {
    UniqueFd dir(::fcntl(dest_top, F_DUPFD_CLOEXEC, 0));
    size_t begin = 0;
    for (size_t slash = path.find('/'); slash != std::string::npos && dir;
         slash = path.find('/', begin)) {
      const std::string part = path.substr(begin, slash - begin);
      if (::mkdirat(dir.get(), part.c_str(), 0700) == 0 && owner_ != nullptr) {
        UniqueFd made(
            ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (made && ::fchown(made.get(), owner_->uid, owner_->gid) != 0) return UniqueFd();
      }
      dir.reset(::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      begin = slash + 1;
    }
    return dir;
  }

  const std::vector<std::string>& patterns_;
  const Owner* owner_;
  uint64_t max_files_, max_bytes_;
  dev_t dev_;
  uint64_t left_out_ = 0;
  ResultsCopy copy_;
};

}  // namespace

Result<UniqueFd> openJobWorkdir(pid_t init_pid) {
  const std::string root_path = "/proc/" + std::to_string(init_pid) + "/root";
  // The magic link is followed on purpose: it is the job's root, seen from the host.
  UniqueFd root(::open(root_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return errnoError("open " + root_path, errno);
  // The job's root is a read-only tmpfs the job cannot change, and /job a mount on it: O_NOFOLLOW
  // still refuses a link there.
  UniqueFd job(::openat(root.get(), "job", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!job) return errnoError("open " + root_path + "/job", errno);
  return job;
}

Result<ResultsCopy> copyResults(int job_dir, const std::vector<std::string>& patterns,
                                int dest_parent, const std::string& name, const Owner* owner,
                                uint64_t max_files, uint64_t max_bytes) {
  struct stat top {};
  if (::fstat(job_dir, &top) != 0) return errnoError("stat the job's working directory", errno);
  if (::mkdirat(dest_parent, name.c_str(), 0700) != 0) return errnoError("create " + name, errno);
  UniqueFd dest(
      ::openat(dest_parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dest) return errnoError("open " + name, errno);
  if (owner != nullptr && ::fchown(dest.get(), owner->uid, owner->gid) != 0) {
    return errnoError("chown " + name, errno);
  }
  Copier copier(patterns, owner, max_files, max_bytes, top.st_dev);
  copier.walk(job_dir, "", dest.get(), 0);
  return copier.take();
}

}  // namespace pyrun::sandbox
