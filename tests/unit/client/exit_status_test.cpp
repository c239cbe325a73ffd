// Exit status mapping, verdict lines and --stats formatting.
#include "client/exit_status.h"

#include <gtest/gtest.h>

namespace pyrun::client {
namespace {

using proto::Exit;
using proto::ExitKind;
using proto::Verdict;

Exit exited(int code, Verdict v = Verdict::kOk) {
  Exit e;
  e.kind = ExitKind::kExited;
  e.code = code;
  e.verdict = v;
  return e;
}

Exit signaled(int sig, Verdict v = Verdict::kOk) {
  Exit e = exited(sig, v);
  e.kind = ExitKind::kSignaled;
  return e;
}

TEST(ExitStatus, ProgramsOwnCode) {
  EXPECT_EQ(exitStatusFor(exited(0)), 0);
  EXPECT_EQ(exitStatusFor(exited(3)), 3);
  EXPECT_EQ(exitStatusFor(exited(254)), 254);
}

TEST(ExitStatus, SignalDeathIs128PlusN) {
  EXPECT_EQ(exitStatusFor(signaled(2)), 130);
  EXPECT_EQ(exitStatusFor(signaled(9)), 137);
  EXPECT_EQ(exitStatusFor(signaled(15)), 143);
}

TEST(ExitStatus, LimitKillKeepsTheSignalStatus) {
  EXPECT_EQ(exitStatusFor(signaled(9, Verdict::kWallLimit)), 137);
  EXPECT_EQ(exitStatusFor(signaled(24, Verdict::kCpuLimit)), 152);
  EXPECT_EQ(exitStatusFor(exited(1, Verdict::kMemoryLimit)), 1);
}

TEST(ExitStatus, StoppedJobNeverReportsSuccess) {
  EXPECT_EQ(exitStatusFor(exited(0, Verdict::kOutputLimit)), kFailureStatus);
  EXPECT_EQ(exitStatusFor(exited(0, Verdict::kCancelled)), kFailureStatus);
}

TEST(ExitStatus, OutOfRangeValuesAreFailures) {
  EXPECT_EQ(exitStatusFor(exited(-1)), kFailureStatus);
  EXPECT_EQ(exitStatusFor(exited(255)), kFailureStatus);
  EXPECT_EQ(exitStatusFor(exited(300)), kFailureStatus);
  EXPECT_EQ(exitStatusFor(signaled(0)), kFailureStatus);
  EXPECT_EQ(exitStatusFor(signaled(200)), kFailureStatus);
}

TEST(VerdictLine, NoneWhenTheProgramEndedByItself) {
  EXPECT_FALSE(verdictLine(exited(3), {}));
  EXPECT_FALSE(verdictLine(signaled(11), {}));
}

TEST(VerdictLine, ServerDetailWins) {
  Exit e = signaled(9, Verdict::kWallLimit);
  e.detail = "wall-clock limit of 60 s exceeded";
  EXPECT_EQ(verdictLine(e, {}), "wall-clock limit of 60 s exceeded");
}

TEST(VerdictLine, SaysADetailBesideOkWhenResultsWereLeftOut) {
  Exit e = exited(0);
  e.detail = "results incomplete: big.bin: over the limit of 1 files and 10 bytes, left out";
  EXPECT_EQ(verdictLine(e, {}), e.detail);
  e.output_truncated = 1;
  e.stdout_bytes = 2048;
  EXPECT_EQ(verdictLine(e, {}), e.detail + "; output truncated after 2.0 KiB");
}

TEST(VerdictLine, BuiltFromLimitsWithoutDetail) {
  proto::Limits l;
  l.wall_seconds = 5;
  l.cpu_seconds = 2;
  l.memory_bytes = 256ull << 20;
  EXPECT_EQ(verdictLine(signaled(9, Verdict::kWallLimit), l), "wall-clock limit of 5 s exceeded");
  EXPECT_EQ(verdictLine(signaled(9, Verdict::kCpuLimit), l), "CPU time limit of 2 s exceeded");
  EXPECT_EQ(verdictLine(signaled(9, Verdict::kMemoryLimit), l), "memory limit of 256 MiB exceeded");
  EXPECT_EQ(verdictLine(signaled(9, Verdict::kCancelled), l), "cancelled by the client");
  // A limit pyrun did not learn is left out of the sentence.
  EXPECT_EQ(verdictLine(signaled(9, Verdict::kCpuLimit), {}), "CPU time limit exceeded");
}

TEST(VerdictLine, TruncationIsAlwaysSaid) {
  Exit e = signaled(9, Verdict::kOutputLimit);
  e.output_truncated = 1;
  e.stdout_bytes = 1000;
  // The output limit's verdict says it: its sentence, the server's or pyrun's own, is not read.
  e.detail = "output limit of 1000 bytes reached; output truncated and the job killed";
  EXPECT_EQ(verdictLine(e, {}), e.detail);
  e.detail.clear();
  EXPECT_EQ(verdictLine(e, {}), "output limit reached; output truncated and the job killed");

  // Truncated although the verdict is about something else (or none): still said.
  Exit ok = exited(0);
  ok.output_truncated = 1;
  ok.stdout_bytes = 10;
  EXPECT_EQ(verdictLine(ok, {}), "output truncated after 10 bytes");
}

TEST(Stats, FormatsEveryField) {
  Exit e = exited(0);
  e.cpu_us = 1234567;
  e.wall_us = 2000000;
  e.peak_memory_bytes = 12ull << 20;
  e.stdout_bytes = 1000;
  e.stderr_bytes = 234;
  EXPECT_EQ(statsLine(e),
            "cpu 1.235 s, wall 2.000 s, peak memory 12.0 MiB, output 1234 bytes (stdout 1000, "
            "stderr 234)");
}

TEST(FormatBytes, Units) {
  EXPECT_EQ(formatBytes(17), "17 bytes");
  EXPECT_EQ(formatBytes(2048), "2.0 KiB");
  EXPECT_EQ(formatBytes(3ull << 30), "3.0 GiB");
}

}  // namespace
}  // namespace pyrun::client
