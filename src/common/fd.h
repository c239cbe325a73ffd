// File descriptor ownership and whole-buffer reads and writes.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/error.h"

namespace pyrun {

// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  // Gives up ownership without closing.
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// Writes all of data, retrying on EINTR and short writes. Errors name `what`.
Result<void> writeAll(int fd, std::span<const char> data, std::string_view what);
// Reads until end of file (at most max_bytes; more is an error).
Result<std::string> readAll(int fd, std::string_view what, size_t max_bytes = 64u << 20);

// Creates a pipe/socketpair with O_CLOEXEC on both ends.
Result<std::pair<UniqueFd, UniqueFd>> makePipe();
Result<std::pair<UniqueFd, UniqueFd>> makeSocketPair(int type);

}  // namespace pyrun
