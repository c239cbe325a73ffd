// Runs one job through a spawner to its end on the caller's thread: one poll() loop over the
// spawner's socket and the job's stdio, with the limits a front enforces itself (wall clock,
// output). pyrun-policy run and the tests use it; pyrund's front drives its jobs asynchronously
// (server/spawner_link.h).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "sandbox/spawner.h"

namespace pyrun::sandbox {

// Why the runner, not the spawner, stopped the job: the verdicts a front imposes.
enum class RunnerStop : uint8_t {
  kNone,
  kWallLimit,    // JobRunOptions::wall_seconds passed since the start
  kOutputLimit,  // the output passed JobRunOptions::output_limit_bytes; the rest was cut
  kCancelled,    // a callback called stop(kCancelled)
};

// What a run's callbacks may do to its job.
class JobRunControl {
 public:
  virtual ~JobRunControl() = default;
  virtual bool started() const = 0;
  // Sends the signal to the job (SignalJob); its init forwards it to the interpreter.
  virtual void signal(int signal) = 0;
  // Kills the job (KillJob). The first reason stays the outcome's.
  virtual void stop(RunnerStop why) = 0;
  // Ends the job's stdin once what was queued for it is written (JobRunOptions::hold_stdin).
  virtual void closeStdin() = 0;
};

struct JobRunOptions {
  // Written to the job's stdin, which is then closed (unless hold_stdin).
  std::string stdin_data;
  // When >= 0: relayed to the job's stdin, from its start to this descriptor's end of file.
  int stdin_fd = -1;
  // Keeps the job's stdin open after stdin_data until a callback calls closeStdin().
  bool hold_stdin = false;
  // Called with each piece of output (stream 1: stdout, 2: stderr). Unset: the output is
  // collected in JobRunOutcome::out and err.
  std::function<void(int stream, std::string_view bytes, JobRunControl&)> on_output;
  // Called once the job has started, before any of its output.
  std::function<void(const JobStarted&, JobRunControl&)> on_started;
  // The output of both streams together past which the rest is cut and the job stopped.
  uint64_t output_limit_bytes = UINT64_MAX;
  // The wall-clock limit from the job's start; 0: none (the spawner's backstop still applies).
  uint32_t wall_seconds = 0;
  // Fails the run (Errc::kLimit) when nothing happens for this long; -1: waits for ever.
  int idle_timeout_ms = -1;
  // Further descriptors to watch while the job runs, each with what to do when it is readable.
  struct Watch {
    int fd = -1;
    std::function<void(JobRunControl&)> on_readable;
  };
  std::vector<Watch> watches;
};

// What became of the job. Exactly one of failed and ended is set.
struct JobRunOutcome {
  std::optional<JobStarted> started;
  std::optional<JobFailed> failed;  // the spawner could not start it
  std::optional<JobEnded> ended;
  RunnerStop stopped = RunnerStop::kNone;
  bool output_truncated = false;
  std::string out, err;  // without JobRunOptions::on_output
};

// Sends SpawnJob{spec} on the spawner socket and runs the job to its end: JobFailed, or JobEnded
// with both output streams at end of file. The socket must carry no other job's messages. The
// caller ignores SIGPIPE: a job may close its stdin before taking all of it.
// Errors: the spawner's socket failed or closed (kClosed), a message about another job or out of
// order (kProtocol), idle_timeout_ms passed (kLimit), poll failed (kIo).
Result<JobRunOutcome> runJobThroughSpawner(int spawner_socket, const JobSpec& spec,
                                           const JobRunOptions& options = {});

}  // namespace pyrun::sandbox
