// pyrun's side of the program's stdio: stdin read by a thread into a pipe, stdout/stderr written
// with Asio where the descriptor can be polled, and the terminal's flags put back at the end.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "common/error.h"
#include "common/fd.h"

namespace pyrun::client {

// Writes all of data to fd, retrying on EINTR and waiting with poll(2) on EAGAIN (the descriptor
// may share a non-blocking open file description with one that Asio drives).
Result<void> writeFully(int fd, std::span<const char> data);

// Writes "pyrun: <sentence>\n" to stderr in one write ("\r\n" while the terminal is in raw mode,
// see setRawLineEndings).
void printLine(std::string_view sentence);
// pyrun -t: while the local terminal is in raw mode (no output processing), printLine ends its
// lines with "\r\n" so that they start at the left margin.
void setRawLineEndings(bool raw) noexcept;

// Remembers the file status flags of fds 0, 1 and 2 and restores them when destroyed: Asio sets
// O_NONBLOCK on the descriptors it drives, and on a terminal that flag belongs to the open file
// description the shell shares, which would break the shell's next read.
class StdioFlagsGuard {
 public:
  StdioFlagsGuard();
  ~StdioFlagsGuard();
  StdioFlagsGuard(const StdioFlagsGuard&) = delete;
  StdioFlagsGuard& operator=(const StdioFlagsGuard&) = delete;

 private:
  int flags_[3];
};

// Returns the read end of a pipe that a detached thread fills from fd 0, and closes at end of
// input (or at once when fd 0 is not open). A thread, because regular files and /dev/null cannot
// be polled, and because blocking reads never change the terminal's flags. The pipe's 64 KiB are
// the only buffer: the thread blocks while pyrun does not read, so memory stays flat. When pyrun
// closes the read end, the thread's next write fails with EPIPE and it ends.
Result<UniqueFd> startStdinReader();

// Where the program's stdout or stderr bytes go. Asynchronous through a stream_descriptor on a dup
// of fd when the descriptor can be polled (pipes, terminals, sockets); plain blocking writes for
// regular files and /dev/null, which never block for long.
class OutputSink {
 public:
  OutputSink(boost::asio::any_io_executor executor, int fd);
  // Writes all of data. Errors carry errno (EPIPE when the reader went away).
  boost::asio::awaitable<boost::system::error_code> write(std::span<const uint8_t> data);

 private:
  int fd_;
  std::optional<boost::asio::posix::stream_descriptor> stream_;
};

}  // namespace pyrun::client
