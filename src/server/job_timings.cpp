// Turns a job's monotonic stamps into offsets from its accept.
#include "server/job_timings.h"

#include <cstdio>

namespace pyrun::server {

proto::Timings timingsOf(const StageTimes& times) {
  proto::Timings out;
  const uint64_t accept = times.at(JobStage::kAccept);
  if (accept == 0) return out;
  for (size_t i = 0; i < kJobStageCount; ++i) {
    const auto stage = static_cast<JobStage>(i);
    if (!times.has(stage)) continue;
    const uint64_t at = times.at(stage);
    out.stages.push_back({jobStageName(stage), at > accept ? at - accept : 0});
  }
  return out;
}

std::string describeTimings(const proto::Timings& timings) {
  std::string out;
  uint64_t previous = 0;
  for (const auto& t : timings.stages) {
    char buf[96];
    const double ms = static_cast<double>(t.micros) / 1000.0;
    if (out.empty()) {
      std::snprintf(buf, sizeof buf, "%s %.2f ms", t.name.c_str(), ms);
    } else {
      const double step =
          t.micros >= previous ? static_cast<double>(t.micros - previous) / 1000.0 : 0.0;
      std::snprintf(buf, sizeof buf, ", %s %.2f ms (+%.2f)", t.name.c_str(), ms, step);
    }
    out += buf;
    previous = t.micros;
  }
  return out;
}

}  // namespace pyrun::server
