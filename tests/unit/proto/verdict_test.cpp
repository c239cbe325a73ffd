// The one sentence of each verdict (proto/verdict.h), shared by pyrund, pyrun-policy and pyrun.
#include "proto/verdict.h"

#include <gtest/gtest.h>

namespace pyrun::proto {
namespace {

TEST(VerdictSentence, NamesTheLimitWhenKnownAndLeavesItOutOtherwise) {
  Limits l;
  l.cpu_seconds = 10;
  l.wall_seconds = 60;
  l.memory_bytes = 512ull << 20;
  l.output_bytes = 1000;
  EXPECT_EQ(verdictSentence(Verdict::kCpuLimit, l), "CPU time limit of 10 s exceeded");
  EXPECT_EQ(verdictSentence(Verdict::kWallLimit, l), "wall-clock limit of 60 s exceeded");
  EXPECT_EQ(verdictSentence(Verdict::kMemoryLimit, l), "memory limit of 512 MiB exceeded");
  EXPECT_EQ(verdictSentence(Verdict::kOutputLimit, l),
            "output limit of 1000 bytes reached; output truncated and the job killed");
  const Limits unknown{};
  EXPECT_EQ(verdictSentence(Verdict::kCpuLimit, unknown), "CPU time limit exceeded");
  EXPECT_EQ(verdictSentence(Verdict::kMemoryLimit, unknown), "memory limit exceeded");
  EXPECT_EQ(verdictSentence(Verdict::kOutputLimit, unknown),
            "output limit reached; output truncated and the job killed");
  EXPECT_EQ(verdictSentence(Verdict::kOk, l), "");
}

TEST(VerdictSentence, ForbiddenCallAndProcessLimitTakeTheSpawnersCause) {
  EXPECT_EQ(verdictSentence(Verdict::kSyscall, {}, {"socket", true}),
            "forbidden system call: socket");
  EXPECT_EQ(verdictSentence(Verdict::kSyscall, {}, {"forbidden system call (name unknown)", false}),
            "forbidden system call (name unknown)");
  EXPECT_EQ(verdictSentence(Verdict::kSyscall, {}), "the program made a forbidden system call");
  EXPECT_EQ(verdictSentence(Verdict::kProcessLimit, {}, {"fork failed", false}),
            "process limit exceeded: fork failed");
}

TEST(HumanBytes, WholeUnitsExactlyOthersToOneDecimal) {
  EXPECT_EQ(humanBytes(0), "0 bytes");
  EXPECT_EQ(humanBytes(1000), "1000 bytes");
  EXPECT_EQ(humanBytes(64 << 10), "64 KiB");
  EXPECT_EQ(humanBytes(3ull << 30), "3 GiB");
  EXPECT_EQ(humanBytes(1536), "1.5 KiB");
  EXPECT_EQ(humanBytes((5ull << 20) + (1ull << 19)), "5632 KiB");  // whole KiB: exact
  EXPECT_EQ(humanBytes((5ull << 20) + (1ull << 19) + 1), "5.5 MiB");
}

}  // namespace
}  // namespace pyrun::proto
