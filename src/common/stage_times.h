// Monotonic time stamps of the stages of one job, from the connection's accept to its EXIT frame,
// so that the time a job takes can be located (pyrun --timings, pyrund's debug log, tools/bench).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace pyrun {

// The stages in the order a cold job passes them. The numbers travel between the spawner and the
// front (the same binary) and name the stages nowhere else: the wire carries their names.
enum class JobStage : uint8_t {
  kAccept = 0,    // the front accepted the TCP connection
  kHandshake,     // TLS handshake done, identity checked
  kRunReceived,   // RUN decoded and accepted
  kSpawnRequest,  // the front sent SpawnJob (after a queue wait, if any)
  kWorkDir,       // the spawner made the job's working directory with its files
  kCgroup,        // the spawner made the job's cgroup
  kClone,         // the spawner cloned the job's init
  kRootBuilt,     // the init built the job's root and pivoted into it
  kConfined,      // the interpreter process is fully confined (seccomp loaded), before execve
  kExec,          // the init saw the interpreter's execve succeed
  kHandoff,       // a parked interpreter of the warm pool was handed the job (instead of cgroup ..
                  // exec, which it passed while parked, before the job existed)
  kFirstOutput,   // the front read the first bytes of the job's stdout or stderr
  kExit,          // the init reaped the interpreter
  kCleanup,       // the spawner removed the job's cgroup and working directory (after it sent
                  // the job's end: only its log shows this one)
  kExitSent,      // the front wrote the EXIT frame
};
inline constexpr size_t kJobStageCount = static_cast<size_t>(JobStage::kExitSent) + 1;

// "accept", "handshake", "run", "spawn", "workdir", "cgroup", "clone", "root", "confined", "exec",
// "handoff", "first-output", "exit", "cleanup", "exit-sent"; "unknown" outside the enum. No
// allocation.
const char* jobStageName(JobStage stage) noexcept;
// The stage a number names, or nullopt outside the enum.
std::optional<JobStage> jobStageFromNumber(uint8_t number) noexcept;

// CLOCK_MONOTONIC in microseconds: one clock for every process of one machine (the jobs get no
// time namespace). Async-signal-safe and allocation-free (usable between fork and exec).
uint64_t stageClockMicros() noexcept;

// The stamps of one job: 0 means "not reached" (or not measured on this path).
class StageTimes {
 public:
  // Records the clock now for `stage`; a stage already stamped keeps its first time.
  void stamp(JobStage stage) noexcept { set(stage, stageClockMicros()); }
  // Records `micros` (a stageClockMicros value taken elsewhere) unless the stage has one already.
  void set(JobStage stage, uint64_t micros) noexcept {
    auto& slot = at_[static_cast<size_t>(stage)];
    if (slot == 0) slot = micros;
  }
  uint64_t at(JobStage stage) const noexcept { return at_[static_cast<size_t>(stage)]; }
  bool has(JobStage stage) const noexcept { return at(stage) != 0; }
  // Every stamp `other` has that this one lacks.
  void merge(const StageTimes& other) noexcept {
    for (size_t i = 0; i < kJobStageCount; ++i) {
      if (at_[i] == 0) at_[i] = other.at_[i];
    }
  }
  friend bool operator==(const StageTimes&, const StageTimes&) = default;

 private:
  std::array<uint64_t, kJobStageCount> at_{};
};

}  // namespace pyrun
