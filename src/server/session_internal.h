// What the files of server::Session share: its constants and small socket helpers. Internal to
// session*.cpp.
#pragma once

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstring>
#include <exception>
#include <string>

namespace pyrun::server::session_detail {

namespace asio = boost::asio;
using boost::system::error_code;

inline constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
// Output frames queued per connection before the pipe readers stop reading: with 64 KiB chunks at
// most 512 KiB per session, whatever the program writes or however slowly the client reads.
constexpr size_t kMaxQueuedDataFrames = 8;
// Client stdin held for a program that has not read it yet before the session stops reading frames.
constexpr size_t kMaxStdinBuffered = 256u << 10;
// What one buffered stdin frame costs beyond its bytes (its vector, the allocation's header and
// rounding, its place in the queue), counted against kMaxStdinBuffered.
constexpr size_t kStdinFrameCost = 64;
// The most the writer encrypts before one send: four full data frames.
constexpr size_t kWriteBatch = 256u << 10;
// A data frame read from a pipe: 5 header bytes and 65531 payload bytes, exactly four full TLS
// records (16 KiB of plaintext each), so that no short record trails a frame.
constexpr size_t kFrameBufferSize = 4 * 16384;
// The first frame a pipe is read into: one page. A pump takes full frames once a read fills it.
constexpr size_t kFirstFrameSize = 4096;
// Frames one read of the program's pipe may fill (readv): fewer system calls and wake-ups, and
// batches for the writer.
constexpr size_t kFramesPerRead = 4;
// How often the write stall watch looks at a pending write.
constexpr auto kWriteStallTick = std::chrono::seconds(1);
// The pipes of the program's stdout and stderr: room for 1 MiB written before it blocks.
constexpr int kPipeSize = 1 << 20;
// What one recv() of the TLS stream takes in once a job runs (stdin in bulk).
constexpr size_t kJobTlsReadChunk = 64u << 10;
constexpr auto kShutdownTimeout = std::chrono::seconds(5);
// The reader's buffer while the client sends little (an idle session), and once it sends in bulk.
constexpr size_t kIdleReadBuffer = 512;
constexpr size_t kJobReadBuffer = 16u << 10;
// While the reader is parked on a full stdin buffer: how often a silent connection is probed.
constexpr auto kParkedPeerCheck = std::chrono::seconds(1);

inline std::string endpointText(const asio::ip::tcp::socket& socket) {
  error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return "unknown peer";
  if (ep.address().is_v6())
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

inline std::string exceptionText(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}

// Bytes the kernel still holds for the peer (not sent, or sent and not acknowledged); -1 when it
// cannot tell.
inline int unsentBytes(int fd) {
  int n = 0;
  return ::ioctl(fd, SIOCOUTQ, &n) == 0 ? n : -1;
}

inline std::string socketError(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) {
    return "connection closed";
  }
  return std::strerror(err);
}

}  // namespace pyrun::server::session_detail
