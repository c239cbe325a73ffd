// A job's stage times as the front shows them: the TIMINGS frame a client asked for, and the
// debug log line, both as offsets from the connection's accept.
#pragma once

#include <string>

#include "common/stage_times.h"
#include "proto/messages.h"

namespace pyrun::server {

// The stages reached, in stage order, each as microseconds since kAccept (a stage stamped before
// it, which only a clock quirk could cause, counts as 0). Empty without a kAccept stamp.
proto::Timings timingsOf(const StageTimes& times);

// "accept 0.00 ms, handshake 1.83 ms (+1.83), ..., exit-sent 24.90 ms (+0.05)": each stage's
// offset from accept and the time since the stage before it.
std::string describeTimings(const proto::Timings& timings);

}  // namespace pyrun::server
