// The warm pool's boot module: the Python program a parked job's interpreter runs. It finishes the
// interpreter's start-up, waits for exactly one job on a pipe from the spawner, then runs that
// job's script as __main__ as a cold start would (docs/SANDBOX.md, "The warm pool").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pyrun::sandbox {

// The descriptor on which a parked interpreter reads its job: the read end of a pipe whose write
// end the spawner keeps. The boot module closes it before the job's script runs.
inline constexpr int kHandoffFd = 5;

// Largest hand-off message (the script's path and its arguments); a job whose argv is longer
// starts cold instead.
inline constexpr size_t kMaxHandoffBytes = 60 * 1024;

// The module's source (Python 3), written read-only into every job's root.
const char* bootModuleSource();

// The rlimits a job's interpreter gets at the hand-off (the values confineJob would set in a cold
// start). processes < 0: RLIMIT_NPROC is left as it is.
struct HandoffLimits {
  uint64_t cpu_seconds = 0;  // soft; the hard limit is one second more
  uint64_t file_size_bytes = 0;
  uint64_t open_files = 0;
  uint64_t address_space_bytes = 0;
  int64_t processes = -1;
};

// The message that hands a parked interpreter its job: the limits (five decimal numbers separated
// by spaces, NUL-terminated), then every argv entry of a cold start from the
// script's path on (the path, then the arguments), each terminated by a NUL byte. An argument is
// cut at its first NUL, as execve would cut it.
std::string encodeHandoff(const HandoffLimits& limits, const std::string& script_path,
                          const std::vector<std::string>& args);

}  // namespace pyrun::sandbox
