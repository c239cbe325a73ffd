// pyrun's stdio plumbing.
#include "client/stdio.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <string>
#include <thread>

namespace pyrun::client {

namespace asio = boost::asio;

namespace {

// 0 or the errno of the failed write.
int writeFullyErrno(int fd, std::span<const char> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

Result<void> writeFully(int fd, std::span<const char> data) {
  if (int err = writeFullyErrno(fd, data); err != 0) return errnoError("write", err);
  return {};
}

namespace {
std::atomic<bool> raw_line_endings{false};
}  // namespace

void setRawLineEndings(bool raw) noexcept { raw_line_endings = raw; }

void printLine(std::string_view sentence) {
  std::string line = "pyrun: ";
  line.append(sentence);
  if (raw_line_endings) line.push_back('\r');
  line.push_back('\n');
  (void)writeFully(2, line);
}

StdioFlagsGuard::StdioFlagsGuard() {
  for (int fd = 0; fd < 3; ++fd) flags_[fd] = ::fcntl(fd, F_GETFL);
}

StdioFlagsGuard::~StdioFlagsGuard() {
  for (int fd = 0; fd < 3; ++fd) {
    if (flags_[fd] >= 0) ::fcntl(fd, F_SETFL, flags_[fd]);
  }
}

namespace {

void pumpStdin(int out) {
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // fd 0 shares a terminal's open file description with fd 1 or 2, which Asio made
      // non-blocking: wait for input instead of spinning.
      pollfd p{0, POLLIN, 0};
      ::poll(&p, 1, -1);
      continue;
    }
    if (n <= 0) break;  // end of input, or an error that ends it just the same
    if (!writeAll(out, std::span<const char>(buf, static_cast<size_t>(n)), "stdin pipe")) break;
  }
  ::close(out);
}

}  // namespace

Result<UniqueFd> startStdinReader() {
  auto pipe = makePipe();
  if (!pipe) return pipe.error();
  auto [read_end, write_end] = std::move(*pipe);
  if (::fcntl(0, F_GETFD) < 0) return std::move(read_end);  // no stdin: EOF at once
  int out = write_end.release();
  try {
    std::thread(pumpStdin, out).detach();
  } catch (const std::system_error& e) {
    ::close(out);
    return Error(Errc::kInternal, std::string("cannot start the stdin reader: ") + e.what());
  }
  return std::move(read_end);
}

OutputSink::OutputSink(asio::any_io_executor executor, int fd) : fd_(fd) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return;
  asio::posix::stream_descriptor stream(executor);
  boost::system::error_code ec;
  // epoll refuses regular files and some devices (EPERM): those take the blocking path.
  stream.assign(copy, ec);
  if (ec) {
    ::close(copy);
    return;
  }
  stream_.emplace(std::move(stream));
}

asio::awaitable<boost::system::error_code> OutputSink::write(std::span<const uint8_t> data) {
  if (stream_) {
    auto [ec, n] = co_await asio::async_write(*stream_, asio::buffer(data.data(), data.size()),
                                              asio::as_tuple(asio::use_awaitable));
    co_return ec;
  }
  int err = writeFullyErrno(
      fd_, std::span<const char>(reinterpret_cast<const char*>(data.data()), data.size()));
  co_return boost::system::error_code(err, boost::system::system_category());
}

}  // namespace pyrun::client
