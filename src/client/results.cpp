// Writing result files received from an untrusted server (see results.h).
#include "client/results.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace pyrun::client {
namespace {

Error protocol(std::string what) { return Error(Errc::kProtocol, std::move(what)); }

std::string tempName() {
  unsigned char bytes[6] = {};
  if (::getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
    // Uniqueness still comes from O_EXCL; the name only has to be unlikely to be taken.
    for (auto& b : bytes) b = static_cast<unsigned char>(::getpid());
  }
  char name[32];
  std::snprintf(name, sizeof name, ".pyrun-%02x%02x%02x%02x%02x%02x.part", bytes[0], bytes[1],
                bytes[2], bytes[3], bytes[4], bytes[5]);
  return name;
}

}  // namespace

ResultWriter::ResultWriter(UniqueFd dir_fd, uint32_t max_files, uint64_t max_bytes)
    : dir_fd_(std::move(dir_fd)), max_files_(max_files), max_bytes_(max_bytes) {}

ResultWriter::~ResultWriter() {
  if (file_ && parent_) ::unlinkat(parent_.get(), temp_.c_str(), 0);
}

Result<void> ResultWriter::begin(const proto::FileHeader& h) {
  if (owed()) return protocol("RESULT before the last result's bytes arrived");
  // The one check that keeps every write inside the directory: no absolute name, no "..", no
  // empty or "." component, no NUL or control characters.
  if (auto ok = proto::validateFileName(h.name, h.mode); !ok) {
    return protocol("RESULT: " + ok.error().detail());
  }
  if (files_ + 1 > max_files_) {
    return protocol("RESULT: more than the " + std::to_string(max_files_) + " files pyrun accepts");
  }
  if (h.size > max_bytes_ - bytes_) {
    return protocol("RESULT: \"" + h.name + "\" of " + std::to_string(h.size) +
                    " bytes goes beyond the " + std::to_string(max_bytes_) +
                    " bytes pyrun accepts");
  }
  UniqueFd dir(::fcntl(dir_fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!dir) return errnoError("dup", errno);
  size_t begin = 0;
  for (size_t slash = h.name.find('/'); slash != std::string::npos;
       slash = h.name.find('/', begin)) {
    const std::string part = h.name.substr(begin, slash - begin);
    const std::string where = h.name.substr(0, slash);
    if (::mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
      return errnoError("cannot create directory " + where, errno);
    }
    UniqueFd sub(
        ::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) {
      return errnoError("cannot write " + h.name + ": " + where +
                            (errno == ELOOP || errno == ENOTDIR ? " is not a plain directory" : ""),
                        errno);
    }
    dir = std::move(sub);
    begin = slash + 1;
  }
  leaf_ = h.name.substr(begin);
  temp_ = tempName();
  file_.reset(::openat(dir.get(), temp_.c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!file_) return errnoError("cannot create a temporary file for " + h.name, errno);
  parent_ = std::move(dir);
  name_ = h.name;
  mode_ = h.mode;
  remaining_ = h.size;
  ++files_;
  bytes_ += h.size;
  if (remaining_ == 0) return finish();
  return {};
}

Result<void> ResultWriter::data(std::span<const uint8_t> bytes) {
  if (!owed()) return protocol("RESULT_DATA without a RESULT");
  if (bytes.size() > remaining_) {
    return protocol("RESULT_DATA beyond the " + std::to_string(remaining_) +
                    " bytes announced for \"" + name_ + "\"");
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(file_.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("cannot write " + name_, errno);
    done += static_cast<size_t>(n);
  }
  remaining_ -= bytes.size();
  if (remaining_ == 0) return finish();
  return {};
}

Result<void> ResultWriter::finish() {
  if (::fchmod(file_.get(), mode_) != 0) return errnoError("cannot chmod " + name_, errno);
  file_.reset();
  // rename(2) replaces whatever is at the name (a symlink included) without following it.
  if (::renameat(parent_.get(), temp_.c_str(), parent_.get(), leaf_.c_str()) != 0) {
    int err = errno;
    ::unlinkat(parent_.get(), temp_.c_str(), 0);
    parent_.reset();
    return errnoError("cannot write " + name_, err);
  }
  parent_.reset();
  return {};
}

}  // namespace pyrun::client
