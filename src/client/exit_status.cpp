// Exit status mapping and end-of-job lines.
#include "client/exit_status.h"

#include <cstdio>

namespace pyrun::client {
namespace {

std::string seconds(uint64_t us) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f s", static_cast<double>(us) / 1e6);
  return buf;
}

std::string limitSentence(const proto::Exit& exit, const proto::Limits& l) {
  using proto::Verdict;
  switch (exit.verdict) {
    case Verdict::kOk:
      return {};
    case Verdict::kCpuLimit:
      return l.cpu_seconds != 0
                 ? "CPU time limit of " + std::to_string(l.cpu_seconds) + " s exceeded"
                 : "CPU time limit exceeded";
    case Verdict::kWallLimit:
      return l.wall_seconds != 0
                 ? "wall-clock limit of " + std::to_string(l.wall_seconds) + " s exceeded"
                 : "wall-clock limit exceeded";
    case Verdict::kMemoryLimit:
      return l.memory_bytes != 0 ? "memory limit of " + formatBytes(l.memory_bytes) + " exceeded"
                                 : "memory limit exceeded";
    case Verdict::kOutputLimit:
      return l.output_bytes != 0 ? "output limit of " + formatBytes(l.output_bytes) +
                                       " reached: output truncated and the job killed"
                                 : "output limit reached: output truncated and the job killed";
    case Verdict::kCancelled:
      return "job cancelled";
    case Verdict::kSyscall:
      return "the program made a forbidden system call";
    case Verdict::kProcessLimit:
      return "process limit exceeded";
    case Verdict::kFileSizeLimit:
      return "file size limit exceeded";
    case Verdict::kServerShutdown:
      return "the server is shutting down; job stopped";
    case Verdict::kInternalError:
      return "internal server error; job stopped";
    case Verdict::kProtocolError:
      return "the server stopped the job: this client broke the protocol";
  }
  return "job ended with verdict " + std::to_string(static_cast<int>(exit.verdict));
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
    line = exit.detail.empty() ? limitSentence(exit, in_force) : exit.detail;
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
