// The verdicts' sentences (verdict.h).
#include "proto/verdict.h"

#include <cstdio>

namespace pyrun::proto {

std::string humanBytes(uint64_t bytes) {
  if (bytes != 0 && bytes % (1ull << 30) == 0) return std::to_string(bytes >> 30) + " GiB";
  if (bytes != 0 && bytes % (1ull << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes != 0 && bytes % (1ull << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  if (bytes < (1ull << 10)) return std::to_string(bytes) + " bytes";
  const char* unit = bytes >= (1ull << 30) ? "GiB" : bytes >= (1ull << 20) ? "MiB" : "KiB";
  const uint64_t unit_bytes = bytes >= (1ull << 30)   ? (1ull << 30)
                              : bytes >= (1ull << 20) ? (1ull << 20)
                                                      : (1ull << 10);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f %s",
                static_cast<double>(bytes) / static_cast<double>(unit_bytes), unit);
  return buf;
}

std::string verdictSentence(Verdict verdict, const Limits& limits, const VerdictCause& cause) {
  // "<what> of <figure> <how>", or "<what> <how>" when the figure is not known.
  auto limit = [](const char* what, const std::string& figure, bool known, const char* how) {
    return std::string(what) + (known ? " of " + figure : std::string()) + " " + how;
  };
  switch (verdict) {
    case Verdict::kOk:
      return "";
    case Verdict::kCpuLimit:
      return limit("CPU time limit", std::to_string(limits.cpu_seconds) + " s",
                   limits.cpu_seconds != 0, "exceeded");
    case Verdict::kWallLimit:
      return limit("wall-clock limit", std::to_string(limits.wall_seconds) + " s",
                   limits.wall_seconds != 0, "exceeded");
    case Verdict::kMemoryLimit:
      return limit("memory limit", humanBytes(limits.memory_bytes), limits.memory_bytes != 0,
                   "exceeded");
    case Verdict::kOutputLimit:
      return limit("output limit", humanBytes(limits.output_bytes), limits.output_bytes != 0,
                   "reached; output truncated and the job killed");
    case Verdict::kCancelled:
      return "cancelled by the client";
    case Verdict::kSyscall:
      if (cause.names_the_call) return "forbidden system call: " + cause.text;
      // The spawner's own sentence: "forbidden system call (name unknown: <why>)".
      return cause.text.empty() ? "the program made a forbidden system call" : cause.text;
    case Verdict::kProcessLimit:
      return cause.text.empty() ? "process limit exceeded"
                                : "process limit exceeded: " + cause.text;
    case Verdict::kFileSizeLimit:
      return "file size limit exceeded";
    case Verdict::kServerShutdown:
      return "the server is shutting down";
    case Verdict::kInternalError:
      return "internal server error";
    case Verdict::kProtocolError:
      return "the client broke the protocol";
  }
  return "job ended with verdict " + verdictName(verdict);
}

}  // namespace pyrun::proto
