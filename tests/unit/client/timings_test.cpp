// The lines pyrun --timings prints.
#include "client/timings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pyrun {
namespace {

TEST(ClientTimings, PrintsTheServerStagesAsTheyCameThenOursFromConnect) {
  proto::Timings server{{{"accept", 0}, {"exec", 12'340}, {"some-new-stage", 20'000}}};
  client::ClientTimes mine;
  mine.set(client::ClientStage::kConnect, 1'000'000);
  mine.set(client::ClientStage::kHandshake, 1'002'000);
  mine.set(client::ClientStage::kExit, 1'030'000);
  auto lines = client::timingsLines(server, mine);
  ASSERT_EQ(lines.size(), 1u + 3u + 3u);
  EXPECT_EQ(lines[1], "  server accept              0.00 ms");
  EXPECT_EQ(lines[2], "  server exec               12.34 ms  +12.34");
  EXPECT_EQ(lines[3], "  server some-new-stage     20.00 ms  +7.66");
  EXPECT_EQ(lines[4], "  client connect             0.00 ms");
  EXPECT_EQ(lines[5], "  client handshake           2.00 ms  +2.00");
  EXPECT_EQ(lines[6], "  client exit               30.00 ms  +28.00");
}

}  // namespace
}  // namespace pyrun
