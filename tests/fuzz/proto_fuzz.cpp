// libFuzzer target for the pyrun/1 codec: the frame splitter over arbitrary streams and every
// message decoder over arbitrary payloads. Besides memory errors (ASan/UBSan) it checks that the
// encoding is canonical: whatever a decoder accepts re-encodes to exactly the bytes it came from.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "proto/frame.h"
#include "proto/messages.h"

namespace {

using namespace pyrun::proto;

template <class Decode>
void roundTrip(FrameType type, std::span<const uint8_t> payload, Decode decode) {
  auto m = decode(payload);
  if (!m) return;
  const std::vector<uint8_t> again = encode(*m);
  if (again.size() != kFrameHeaderSize + payload.size() ||
      !std::equal(payload.begin(), payload.end(), again.begin() + kFrameHeaderSize) ||
      again[0] != static_cast<uint8_t>(type)) {
    __builtin_trap();
  }
}

void decodeAs(FrameType type, std::span<const uint8_t> payload) {
  switch (type) {
    case FrameType::kReady:
      roundTrip(type, payload, decodeReady);
      break;
    case FrameType::kQueued:
      roundTrip(type, payload, decodeQueued);
      break;
    case FrameType::kStarted:
      roundTrip(type, payload, decodeStarted);
      break;
    case FrameType::kExit:
      roundTrip(type, payload, decodeExit);
      break;
    case FrameType::kError:
      roundTrip(type, payload, decodeError);
      break;
    case FrameType::kSignal:
      roundTrip(type, payload, decodeSignal);
      break;
    case FrameType::kRun: {
      roundTrip(type, payload, decodeRunRequest);
      if (auto m = decodeRunRequest(payload)) (void)validateRunRequest(*m);
      break;
    }
    case FrameType::kFile:
    case FrameType::kResult: {
      // FILE and RESULT share a payload: re-encoded as this type it must be the same bytes.
      if (auto m = decodeFileHeader(payload)) {
        (void)validateFileName(m->name, m->mode);
        const std::vector<uint8_t> again = encode(*m, type);
        if (again.size() != kFrameHeaderSize + payload.size() ||
            !std::equal(payload.begin(), payload.end(), again.begin() + kFrameHeaderSize) ||
            again[0] != static_cast<uint8_t>(type)) {
          __builtin_trap();
        }
      }
      break;
    }
    case FrameType::kGet: {
      roundTrip(type, payload, decodeGet);
      if (auto m = decodeGet(payload)) {
        for (const auto& p : m->patterns) (void)resultPatternMatches(p, "out/a/b.png");
      }
      break;
    }
    default:
      break;
  }
}

const FrameType kStructured[] = {FrameType::kReady, FrameType::kQueued, FrameType::kStarted,
                                 FrameType::kExit,  FrameType::kError,  FrameType::kSignal,
                                 FrameType::kRun,   FrameType::kFile,   FrameType::kGet};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);

  // Every decoder on the raw input, so they are reached without a valid header in front.
  for (auto type : kStructured) decodeAs(type, input);

  // The input as a stream, fed in chunks whose sizes the input's own bytes choose, so splits fall
  // everywhere; each complete frame is decoded according to its type and checked against the
  // state tables.
  FrameReader reader;
  size_t pos = 0;
  size_t step = 1;
  while (pos < size) {
    const size_t n = std::min(step, size - pos);
    if (!reader.feed(input.subspan(pos, n))) break;
    pos += n;
    step = 1 + (data[pos - 1] % 64);
    while (auto frame = reader.next()) {
      if (frame->payload.size() > maxPayload(frame->type)) __builtin_trap();
      decodeAs(frame->type, frame->payload);
      (void)serverAccepts(ServerState::kRunning, frame->type);
      (void)clientAccepts(ClientState::kRunning, frame->type);
    }
  }
  while (auto frame = reader.next()) decodeAs(frame->type, frame->payload);
  return 0;
}
