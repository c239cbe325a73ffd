// Frame headers and the incremental frame splitter of pyrun/1.
#include "proto/frame.h"

#include <cstdio>
#include <stdexcept>

#include "proto/messages.h"

namespace pyrun::proto {
namespace {

// Fixed parts of the structured payloads (docs/PROTOCOL.md, "Frames").
constexpr uint32_t kLimitsSize = 4 + 4 + 8 + 8;
constexpr uint32_t kReadyMax = 2 + 4 + 4 + kMaxServerName;
constexpr uint32_t kStartedMax = 4 + kMaxJobId + kLimitsSize;
constexpr uint32_t kExitMax = 1 + 4 + 1 + 5 * 8 + 1 + 4 + kMaxText;
constexpr uint32_t kErrorMax = 2 + 4 + kMaxText;
constexpr uint32_t kFileMax = 4 + kMaxPathLength + 4 + 8;
constexpr uint32_t kGetMax = 4 + kMaxGetPatterns * (4 + kMaxPathLength) + 4 + 8;
constexpr uint32_t kTimingsMax = 4 + kMaxTimings * (4 + kMaxTimingName + 8);
constexpr uint32_t kWindowSize = 2 + 2;
constexpr uint32_t kTerminalMax = kWindowSize + 4 + kMaxTermName;

}  // namespace

std::string frameTypeName(uint8_t type) {
  if (isKnownFrameType(type)) {
    switch (static_cast<FrameType>(type)) {
      case FrameType::kReady:
        return "READY";
      case FrameType::kQueued:
        return "QUEUED";
      case FrameType::kStarted:
        return "STARTED";
      case FrameType::kStdout:
        return "STDOUT";
      case FrameType::kStderr:
        return "STDERR";
      case FrameType::kExit:
        return "EXIT";
      case FrameType::kError:
        return "ERROR";
      case FrameType::kRun:
        return "RUN";
      case FrameType::kStdin:
        return "STDIN";
      case FrameType::kStdinEnd:
        return "STDIN_END";
      case FrameType::kSignal:
        return "SIGNAL";
      case FrameType::kCancel:
        return "CANCEL";
      case FrameType::kFile:
        return "FILE";
      case FrameType::kFileData:
        return "FILE_DATA";
      case FrameType::kGet:
        return "GET";
      case FrameType::kResult:
        return "RESULT";
      case FrameType::kResultData:
        return "RESULT_DATA";
      case FrameType::kTimings:
        return "TIMINGS";
      case FrameType::kTerminal:
        return "TERMINAL";
      case FrameType::kWindow:
        return "WINDOW";
    }
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned>(type));
  return buf;
}

bool isKnownFrameType(uint8_t type) noexcept {
  return (type >= 0x01 && type <= 0x0a) || (type >= 0x10 && type <= 0x19);
}

uint32_t maxPayload(FrameType type) noexcept {
  switch (type) {
    case FrameType::kReady:
      return kReadyMax;
    case FrameType::kQueued:
      return 4;
    case FrameType::kStarted:
      return kStartedMax;
    case FrameType::kStdout:
    case FrameType::kStderr:
    case FrameType::kStdin:
    case FrameType::kFileData:
    case FrameType::kResultData:
      return kMaxDataChunk;
    case FrameType::kFile:
    case FrameType::kResult:
      return kFileMax;
    case FrameType::kGet:
      return kGetMax;
    case FrameType::kTimings:
      return kTimingsMax;
    case FrameType::kTerminal:
      return kTerminalMax;
    case FrameType::kWindow:
      return kWindowSize;
    case FrameType::kExit:
      return kExitMax;
    case FrameType::kError:
      return kErrorMax;
    case FrameType::kRun:
      return kMaxFramePayload;
    case FrameType::kSignal:
      return 1;
    case FrameType::kStdinEnd:
    case FrameType::kCancel:
      return 0;
  }
  return 0;
}

Result<FrameHeader> decodeHeader(std::span<const uint8_t, kFrameHeaderSize> bytes) {
  const uint8_t type = bytes[0];
  const uint32_t length = (uint32_t{bytes[1]} << 24) | (uint32_t{bytes[2]} << 16) |
                          (uint32_t{bytes[3]} << 8) | uint32_t{bytes[4]};
  if (!isKnownFrameType(type)) {
    return Error(Errc::kProtocol, "unknown frame type " + frameTypeName(type));
  }
  // The length is judged here, on 5 bytes, so that a peer cannot make us reserve or wait for
  // more than the largest legitimate frame of that type.
  if (length > kMaxFramePayload) {
    return Error(Errc::kProtocol, frameTypeName(type) + " frame of " + std::to_string(length) +
                                      " bytes exceeds the maximum frame payload of " +
                                      std::to_string(kMaxFramePayload) + " bytes");
  }
  const auto frame_type = static_cast<FrameType>(type);
  const uint32_t max = maxPayload(frame_type);
  if (length > max) {
    return Error(Errc::kProtocol, frameTypeName(type) + " frame of " + std::to_string(length) +
                                      " bytes exceeds the maximum of " + std::to_string(max) +
                                      " bytes for this type");
  }
  return FrameHeader{frame_type, length};
}

std::vector<uint8_t> encodeFrame(FrameType type, std::span<const uint8_t> payload) {
  if (payload.size() > maxPayload(type)) {
    throw std::length_error(frameTypeName(static_cast<uint8_t>(type)) + " payload of " +
                            std::to_string(payload.size()) + " bytes exceeds the maximum of " +
                            std::to_string(maxPayload(type)));
  }
  const auto length = static_cast<uint32_t>(payload.size());
  std::vector<uint8_t> out;
  out.reserve(kFrameHeaderSize + payload.size());
  out.push_back(static_cast<uint8_t>(type));
  out.push_back(static_cast<uint8_t>(length >> 24));
  out.push_back(static_cast<uint8_t>(length >> 16));
  out.push_back(static_cast<uint8_t>(length >> 8));
  out.push_back(static_cast<uint8_t>(length));
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

Result<void> FrameReader::feed(std::span<const uint8_t> bytes) {
  if (failed_) return error_;
  // Drop what next() already returned before growing, so the buffer holds only unreturned bytes.
  if (offset_ > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(offset_));
    scan_ -= offset_;
    offset_ = 0;
  }
  buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  // Validate every header that is now complete, including those of frames queued behind the
  // first: a bad header anywhere fails the stream now, before its payload is waited for.
  while (buffer_.size() >= kFrameHeaderSize && scan_ <= buffer_.size() - kFrameHeaderSize) {
    std::span<const uint8_t, kFrameHeaderSize> header(buffer_.data() + scan_, kFrameHeaderSize);
    auto decoded = decodeHeader(header);
    if (!decoded) {
      failed_ = true;
      error_ = decoded.error();
      // Frames before the bad header stay available to next(); nothing after it is.
      buffer_.resize(scan_);
      return error_;
    }
    scan_ += kFrameHeaderSize + decoded->length;
  }
  return {};
}

std::optional<Frame> FrameReader::next() {
  const size_t available = buffer_.size() - offset_;
  if (available < kFrameHeaderSize) return std::nullopt;
  // feed() validated this header already; decoding again is cheap and keeps next() self-contained.
  if (!header_) {
    std::span<const uint8_t, kFrameHeaderSize> header(buffer_.data() + offset_, kFrameHeaderSize);
    auto decoded = decodeHeader(header);
    if (!decoded) return std::nullopt;
    header_ = *decoded;
  }
  if (available - kFrameHeaderSize < header_->length) return std::nullopt;
  const auto begin = buffer_.begin() + static_cast<std::ptrdiff_t>(offset_ + kFrameHeaderSize);
  Frame frame{header_->type, std::vector<uint8_t>(begin, begin + header_->length)};
  offset_ += kFrameHeaderSize + header_->length;
  header_.reset();
  return frame;
}

size_t FrameReader::pending() const noexcept { return buffer_.size() - offset_; }

}  // namespace pyrun::proto
