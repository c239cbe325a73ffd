// Wire frames of protocol pyrun/1: a 5-byte header (type, payload length) and a payload.
// Pure functions over bytes: no sockets, no Asio, no OpenSSL (unit-tested and fuzzed as such).
// docs/PROTOCOL.md is the normative description; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun::proto {

inline constexpr std::string_view kAlpn = "pyrun/1";
inline constexpr uint16_t kProtocolVersion = 1;

// Header: u8 type, u32 big-endian payload length.
inline constexpr size_t kFrameHeaderSize = 5;
// Largest payload of any frame; checked on the header, before anything is allocated.
inline constexpr uint32_t kMaxFramePayload = 1u << 20;
// Largest payload a sender puts in one STDIN/STDOUT/STDERR data frame.
inline constexpr uint32_t kMaxDataChunk = 64u << 10;

enum class FrameType : uint8_t {
  // server -> client
  kReady = 0x01,       // handshake accepted; client may send RUN
  kQueued = 0x02,      // job waits for a slot; position in queue
  kStarted = 0x03,     // job runs; job id and limits in force
  kStdout = 0x04,      // raw bytes the program wrote to stdout
  kStderr = 0x05,      // raw bytes the program wrote to stderr
  kExit = 0x06,        // the job ended; last frame of a session
  kError = 0x07,       // the request failed; last frame of a session
  kResult = 0x08,      // after the job, before EXIT: a result file follows (name, mode, size)
  kResultData = 0x09,  // the next bytes of the result file RESULT announced
  kTimings = 0x0a,     // after EXIT, when RUN asked for it: the job's stage times
  // client -> server
  kRun = 0x10,       // script, argv, files, requested limits
  kStdin = 0x11,     // raw bytes for the program's stdin
  kStdinEnd = 0x12,  // end of stdin (the program reads EOF)
  kSignal = 0x13,    // deliver a signal to the program
  kCancel = 0x14,    // kill the job
  kFile = 0x15,      // before RUN: a file of the job's working directory follows (name, mode, size)
  kFileData = 0x16,  // before RUN: the next bytes of the file announced by FILE
  kGet = 0x17,       // before RUN: result patterns wanted back, and the client's limits
  kTerminal = 0x18,  // before RUN: run the job on a pseudo-terminal (size, TERM)
  kWindow = 0x19,    // the client's terminal changed size (after TERMINAL only)
};

// Name for logs and errors ("STDOUT"); "0xNN" for unknown values.
std::string frameTypeName(uint8_t type);
bool isKnownFrameType(uint8_t type) noexcept;
// Largest payload a frame of this type may carry (0 for STDIN_END and CANCEL, 1 for SIGNAL,
// kMaxDataChunk for data frames, kMaxFramePayload for RUN); the table in docs/PROTOCOL.md.
uint32_t maxPayload(FrameType type) noexcept;

struct FrameHeader {
  FrameType type;
  uint32_t length;
};

// Decodes a header. Errors (kProtocol): unknown type, length above kMaxFramePayload, or above the
// per-type maximum (e.g. a non-empty STDIN_END, a data frame above kMaxDataChunk).
Result<FrameHeader> decodeHeader(std::span<const uint8_t, kFrameHeaderSize> bytes);

// Header followed by payload. Precondition: payload.size() <= maxPayload(type); a violation is a
// bug of the caller and throws std::length_error rather than put a frame the peer must reject on
// the wire.
std::vector<uint8_t> encodeFrame(FrameType type, std::span<const uint8_t> payload);

// A whole frame as received.
struct Frame {
  FrameType type;
  std::vector<uint8_t> payload;
};

// Incremental splitter for a byte stream: feed() what arrived, then next() until it yields nothing.
// Holds only the bytes fed and not yet returned, and validates each header as soon as its 5 bytes
// are in, so a caller that feeds one read() at a time and drains next() holds at most its read
// buffer plus one maximal frame, and an oversize length fails before its payload is waited for.
class FrameReader {
 public:
  // Appends bytes. Returns an error (and stays failed) on an invalid header.
  Result<void> feed(std::span<const uint8_t> bytes);
  // A complete frame, or nullopt when more bytes are needed.
  std::optional<Frame> next();
  // Bytes held that next() has not returned yet (0 at a frame boundary once every complete frame
  // has been taken): non-zero at end of stream means the peer stopped in the middle of a frame.
  size_t pending() const noexcept;

 private:
  std::vector<uint8_t> buffer_;
  // Start of the first frame not yet returned by next(); bytes before it are dropped on feed().
  size_t offset_ = 0;
  // Start of the first header not yet validated (>= offset_; may lie beyond buffer_.size()).
  size_t scan_ = 0;
  // The header at offset_, once validated.
  std::optional<FrameHeader> header_;
  bool failed_ = false;
  Error error_;
};

}  // namespace pyrun::proto
