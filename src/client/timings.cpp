// Formats --timings: the server's stages from its accept, the client's from its connect.
#include "client/timings.h"

#include <cstdio>

#include "common/stage_times.h"

namespace pyrun::client {
namespace {

const char* clientStageName(ClientStage stage) {
  switch (stage) {
    case ClientStage::kConnect:
      return "connect";
    case ClientStage::kConnected:
      return "tcp";
    case ClientStage::kHandshake:
      return "handshake";
    case ClientStage::kReady:
      return "ready";
    case ClientStage::kStarted:
      return "started";
    case ClientStage::kFirstOutput:
      return "first-output";
    case ClientStage::kExit:
      return "exit";
    case ClientStage::kTimings:
      return "timings";
  }
  return "unknown";
}

std::string line(const char* side, const std::string& name, uint64_t micros, uint64_t previous,
                 bool first) {
  char buf[128];
  const double ms = static_cast<double>(micros) / 1000.0;
  if (first) {
    std::snprintf(buf, sizeof buf, "  %s %-14s %9.2f ms", side, name.c_str(), ms);
  } else {
    const double step = micros >= previous ? static_cast<double>(micros - previous) / 1000.0 : 0.0;
    std::snprintf(buf, sizeof buf, "  %s %-14s %9.2f ms  +%.2f", side, name.c_str(), ms, step);
  }
  return buf;
}

}  // namespace

void ClientTimes::stamp(ClientStage stage) noexcept {
  auto& slot = at_[static_cast<size_t>(stage)];
  if (slot == 0) slot = stageClockMicros();
}

std::vector<std::string> timingsLines(const proto::Timings& server, const ClientTimes& client) {
  std::vector<std::string> out;
  out.push_back("timings: server stages in ms from its accept, client stages from its connect");
  uint64_t previous = 0;
  bool first = true;
  for (const auto& t : server.stages) {
    out.push_back(line("server", t.name, t.micros, previous, first));
    previous = t.micros;
    first = false;
  }
  const uint64_t origin = client.at(ClientStage::kConnect);
  previous = 0;
  first = true;
  for (size_t i = 0; i < kClientStageCount; ++i) {
    const auto stage = static_cast<ClientStage>(i);
    const uint64_t at = client.at(stage);
    if (at == 0 || origin == 0) continue;
    const uint64_t offset = at > origin ? at - origin : 0;
    out.push_back(line("client", clientStageName(stage), offset, previous, first));
    previous = offset;
    first = false;
  }
  return out;
}

}  // namespace pyrun::client
