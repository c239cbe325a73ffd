// File descriptor helpers.
#include "common/fd.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace pyrun {

void UniqueFd::reset(int fd) noexcept {
  // close(2) on Linux releases the descriptor even when it fails with EINTR: never retry.
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Result<void> writeAll(int fd, std::span<const char> data, std::string_view what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(std::string("write ") + std::string(what), errno);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::string> readAll(int fd, std::string_view what, size_t max_bytes) {
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(std::string("read ") + std::string(what), errno);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      return Error(Errc::kLimit,
                   std::string(what) + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<std::pair<UniqueFd, UniqueFd>> makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errnoError("pipe2", errno);
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Result<std::pair<UniqueFd, UniqueFd>> makeSocketPair(int type) {
  int fds[2];
  if (::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) != 0)
    return errnoError("socketpair", errno);
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace pyrun
