// The stage stamps of a job (common/stage_times.h) and the front's offsets from accept.
#include "server/job_timings.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/stage_times.h"

namespace pyrun {
namespace {

TEST(StageTimes, KeepsTheFirstStampAndMergesOnlyWhatIsMissing) {
  StageTimes t;
  EXPECT_FALSE(t.has(JobStage::kAccept));
  t.set(JobStage::kAccept, 100);
  t.set(JobStage::kAccept, 200);
  EXPECT_EQ(t.at(JobStage::kAccept), 100u);
  StageTimes other;
  other.set(JobStage::kAccept, 50);
  other.set(JobStage::kExec, 300);
  t.merge(other);
  EXPECT_EQ(t.at(JobStage::kAccept), 100u);
  EXPECT_EQ(t.at(JobStage::kExec), 300u);
  t.stamp(JobStage::kExitSent);
  EXPECT_GE(t.at(JobStage::kExitSent), stageClockMicros() - 60'000'000u);
}

TEST(StageTimes, EveryStageHasADistinctName) {
  std::vector<std::string> names;
  for (size_t i = 0; i < kJobStageCount; ++i) {
    auto stage = jobStageFromNumber(static_cast<uint8_t>(i));
    ASSERT_TRUE(stage);
    names.push_back(jobStageName(*stage));
    EXPECT_NE(names.back(), "unknown");
    EXPECT_LE(names.back().size(), 32u);  // TIMINGS name limit
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::unique(names.begin(), names.end()), names.end());
  EXPECT_FALSE(jobStageFromNumber(static_cast<uint8_t>(kJobStageCount)));
  EXPECT_STREQ(jobStageName(JobStage::kExitSent), "exit-sent");
}

TEST(JobTimings, OffsetsFromAcceptInStageOrderLeavingOutUnreachedStages) {
  StageTimes t;
  t.set(JobStage::kExitSent, 5000);
  t.set(JobStage::kAccept, 1000);
  t.set(JobStage::kHandshake, 1500);
  auto timings = server::timingsOf(t);
  ASSERT_EQ(timings.stages.size(), 3u);
  EXPECT_EQ(timings.stages[0], (proto::Timing{"accept", 0}));
  EXPECT_EQ(timings.stages[1], (proto::Timing{"handshake", 500}));
  EXPECT_EQ(timings.stages[2], (proto::Timing{"exit-sent", 4000}));
  EXPECT_EQ(server::describeTimings(timings),
            "accept 0.00 ms, handshake 0.50 ms (+0.50), exit-sent 4.00 ms (+3.50)");
  // Without an accept there is nothing to measure from.
  StageTimes no_accept;
  no_accept.set(JobStage::kExec, 10);
  EXPECT_TRUE(server::timingsOf(no_accept).stages.empty());
}

}  // namespace
}  // namespace pyrun
