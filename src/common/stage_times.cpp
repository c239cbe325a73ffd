// The names of the job stages and the clock they are stamped with.
#include "common/stage_times.h"

#include <ctime>

namespace pyrun {

const char* jobStageName(JobStage stage) noexcept {
  switch (stage) {
    case JobStage::kAccept:
      return "accept";
    case JobStage::kHandshake:
      return "handshake";
    case JobStage::kRunReceived:
      return "run";
    case JobStage::kSpawnRequest:
      return "spawn";
    case JobStage::kWorkDir:
      return "workdir";
    case JobStage::kCgroup:
      return "cgroup";
    case JobStage::kClone:
      return "clone";
    case JobStage::kRootBuilt:
      return "root";
    case JobStage::kConfined:
      return "confined";
    case JobStage::kExec:
      return "exec";
    case JobStage::kHandoff:
      return "handoff";
    case JobStage::kFirstOutput:
      return "first-output";
    case JobStage::kExit:
      return "exit";
    case JobStage::kCleanup:
      return "cleanup";
    case JobStage::kExitSent:
      return "exit-sent";
  }
  return "unknown";
}

std::optional<JobStage> jobStageFromNumber(uint8_t number) noexcept {
  if (number >= kJobStageCount) return std::nullopt;
  return static_cast<JobStage>(number);
}

uint64_t stageClockMicros() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace pyrun
