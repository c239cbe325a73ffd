// Exit status mapping and end-of-job lines.
#include "client/exit_status.h"

#include <cstdio>

#include "proto/verdict.h"

namespace pyrun::client {
namespace {

std::string seconds(uint64_t us) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(us) / 1e6);
  return buf;
}

}  // namespace

int exitStatusFor(const proto::Exit& exit) {
  if (exit.kind == proto::ExitKind::kSignaled) {
    if (exit.code <= 0 || exit.code > 126) return kFailureStatus;
    return 128 + exit.code;
  }
  if (exit.code < 0 || exit.code > 254) return kFailureStatus;
  if (exit.code == 0 && exit.verdict != proto::Verdict::kOk) return kFailureStatus;
  return exit.code;
}

std::optional<std::string> verdictLine(const proto::Exit& exit, const proto::Limits& in_force) {
  std::string line;
  if (exit.verdict != proto::Verdict::kOk) {
    line = exit.detail.empty() ? proto::verdictSentence(exit.verdict, in_force) : exit.detail;
  } else {
    line = exit.detail;  // beside ok: what did not come back of --get's results
  }
  // Truncation is always said, even when the verdict's sentence is about something else. The
  // output limit's verdict is the truncation's own sentence (the server's, or ours above).
  if (exit.output_truncated != 0 && exit.verdict != proto::Verdict::kOutputLimit) {
    std::string t = "output truncated after " + formatBytes(exit.stdout_bytes + exit.stderr_bytes);
    line = line.empty() ? t : line + "; " + t;
  }
  if (line.empty()) return std::nullopt;
  return line;
}

std::string formatBytes(uint64_t bytes) {
  char buf[64];
  if (bytes >= (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
  } else if (bytes >= (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1ull << 20));
  } else if (bytes >= (1ull << 10)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / (1ull << 10));
  } else {
    std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
  }
  return buf;
}

std::string statsLine(const proto::Exit& exit) {
  uint64_t total = exit.stdout_bytes + exit.stderr_bytes;
  return "cpu " + seconds(exit.cpu_us) + ", wall " + seconds(exit.wall_us) + ", peak memory " +
         formatBytes(exit.peak_memory_bytes) + ", output " + std::to_string(total) +
         " bytes (stdout " + std::to_string(exit.stdout_bytes) + ", stderr " +
         std::to_string(exit.stderr_bytes) + ")";
}

}  // namespace pyrun::client
