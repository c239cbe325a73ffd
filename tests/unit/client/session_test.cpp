// Parts of a run that need no server: the RUN request.
#include "client/session.h"

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace pyrun::client {
namespace {

TEST(BuildRunRequest, UsesBaseNameAndArguments) {
  test::TempDir dir("client");
  test::writeFile(dir / "fib.py", "print(1)\n");
  Options o;
  o.script = dir / "fib.py";
  o.args = {"30", "-x"};
  auto r = buildRunRequest(o);
  ASSERT_TRUE(r) << r.error().detail();
  EXPECT_EQ(r->script_name, "fib.py");
  EXPECT_EQ(r->script, "print(1)\n");
  EXPECT_EQ(r->args, o.args);
  EXPECT_EQ(r->limits, proto::Limits{});
}

TEST(BuildRunRequest, MissingScriptNamesTheFile) {
  Options o;
  o.script = "/nonexistent/dir/x.py";
  auto r = buildRunRequest(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("/nonexistent/dir/x.py"), std::string::npos)
      << r.error().detail();
}

TEST(BuildRunRequest, RefusesRequestAboveTheFrameLimit) {
  test::TempDir dir("client");
  test::writeFile(dir / "big.py", std::string(proto::kMaxFramePayload - 100, '#'));
  Options o;
  o.script = dir / "big.py";
  o.args = {std::string(200, 'a')};
  auto r = buildRunRequest(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("big.py"), std::string::npos) << r.error().detail();
  EXPECT_NE(r.error().detail().find("1048576"), std::string::npos) << r.error().detail();
}

}  // namespace
}  // namespace pyrun::client
