// Wire frames of protocol pyrun/1: a 5-byte header (type, payload length) and a payload.
// Pure functions over bytes: no sockets, no Asio, no OpenSSL (unit-tested and fuzzed as such).
// docs/PROTOCOL.md is the normative description; keep the two in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
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
  kReady = 0x01,    // handshake accepted; client may send RUN
  kQueued = 0x02,   // job waits for a slot; position in queue
  kStarted = 0x03,  // job runs; job id and limits in force
  kStdout = 0x04,   // raw bytes the program wrote to stdout
  kStderr = 0x05,   // raw bytes the program wrote to stderr
  kExit = 0x06,     // the job ended; last frame of a session
  kError = 0x07,    // the request failed; last frame of a session
  // client -> server
  kRun = 0x10,       // script, argv, files, requested limits
  kStdin = 0x11,     // raw bytes for the program's stdin
  kStdinEnd = 0x12,  // end of stdin (the program reads EOF)
  kSignal = 0x13,    // deliver a signal to the program
  kCancel = 0x14,    // kill the job
};

// Name for logs and errors ("STDOUT"); "0xNN" for unknown values.
std::string frameTypeName(uint8_t type);
bool isKnownFrameType(uint8_t type) noexcept;

struct FrameHeader {
  FrameType type;
  uint32_t length;
};

// Decodes a header. Errors (kProtocol): unknown type, length above kMaxFramePayload, or above the
// per-type maximum (e.g. a non-empty STDIN_END, a data frame above kMaxDataChunk).
Result<FrameHeader> decodeHeader(std::span<const uint8_t, kFrameHeaderSize> bytes);

// Header followed by payload. Precondition: payload.size() <= kMaxFramePayload.
std::vector<uint8_t> encodeFrame(FrameType type, std::span<const uint8_t> payload);

// A whole frame as received.
struct Frame {
  FrameType type;
  std::vector<uint8_t> payload;
};

// Incremental splitter for a byte stream: feed() what arrived, then next() until it yields nothing.
// Never buffers more than one header plus one maximal payload.
class FrameReader {
 public:
  // Appends bytes. Returns an error (and stays failed) on an invalid header.
  Result<void> feed(std::span<const uint8_t> bytes);
  // A complete frame, or nullopt when more bytes are needed.
  std::optional<Frame> next();
  // Bytes of the incomplete frame currently held (0 at a frame boundary).
  size_t pending() const noexcept;

 private:
  std::vector<uint8_t> buffer_;
  std::optional<FrameHeader> header_;
  bool failed_ = false;
};

}  // namespace pyrun::proto
