// How a job's EXIT frame becomes pyrun's exit status and the lines it prints about it.
#pragma once

#include <optional>
#include <string>

#include "proto/messages.h"

namespace pyrun::client {

// pyrun's own failures (usage, certificate, connection, server refusals, protocol errors).
inline constexpr int kFailureStatus = 255;

// The exit status for a job that ended:
//   - exited with code C                        -> C (0..254; anything else -> 255)
//   - killed by signal N                        -> 128 + N (e.g. SIGKILL -> 137)
//   - ended by a verdict (limit, cancel, ...) but exited 0 -> 255: a stopped job never reports
//     success.
int exitStatusFor(const proto::Exit& exit);

// The one "pyrun: ..." line (without prefix and newline) that explains a verdict other than kOk,
// or that says the output was truncated; nullopt when the program ended by itself. Uses the
// server's detail when it gave one, else a sentence built from the verdict and the limits in force.
std::optional<std::string> verdictLine(const proto::Exit& exit, const proto::Limits& in_force);

// The --stats line (without prefix and newline):
// "cpu 1.234 s, wall 2.345 s, peak memory 12.3 MiB, output 1234 bytes (stdout 1000, stderr 234)".
std::string statsLine(const proto::Exit& exit);

// "12.3 MiB", "512 KiB", "17 bytes".
std::string formatBytes(uint64_t bytes);

}  // namespace pyrun::client
