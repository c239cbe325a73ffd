// pyrun --timings: the client's own stage stamps and the text that shows them beside the server's.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "proto/messages.h"

namespace pyrun::client {

// The client's view of a run, in order.
enum class ClientStage : uint8_t {
  kConnect = 0,  // started connecting (resolving included)
  kConnected,    // TCP connected
  kHandshake,    // TLS handshake done
  kReady,        // READY read
  kStarted,      // STARTED read
  kFirstOutput,  // first STDOUT or STDERR bytes read
  kExit,         // EXIT read
  kTimings,      // TIMINGS read
};
inline constexpr size_t kClientStageCount = static_cast<size_t>(ClientStage::kTimings) + 1;

class ClientTimes {
 public:
  // Records CLOCK_MONOTONIC now for the stage unless it has a time already.
  void stamp(ClientStage stage) noexcept;
  uint64_t at(ClientStage stage) const noexcept { return at_[static_cast<size_t>(stage)]; }
  void set(ClientStage stage, uint64_t micros) noexcept {
    at_[static_cast<size_t>(stage)] = micros;
  }

 private:
  std::array<uint64_t, kClientStageCount> at_{};
};

// The lines pyrun prints (each without the "pyrun: " prefix): a header, then one line per server
// stage ("  server handshake      1.83 ms  +1.83") in the order received, then one per client stage
// reached, from connect. The two clocks are not compared: the server's may be another machine's.
std::vector<std::string> timingsLines(const proto::Timings& server, const ClientTimes& client);

}  // namespace pyrun::client
