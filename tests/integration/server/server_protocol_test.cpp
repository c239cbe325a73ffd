// pyrund over loopback against wire_client.py, a minimal client that can send what pyrun never
// would. Each test starts a real pyrund (port 0, temporary jobs directory, a PKI made by pyrun-ca).
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

using namespace std::chrono_literals;

class PyrundTest : public ::testing::Test {
 protected:
  // Starts pyrund with extra YAML config lines; waits for its port file.
  void startServer(const std::string& extra_yaml) {
    // Jobs run under their own uids when the test runs as root: they must reach their working
    // directory below this one.
    ::chmod(dir_.path().c_str(), 0711);
    writeFile(dir_ / "pyrund.yaml",
              "listen: 127.0.0.1\nport: 0\nport_file: " + (dir_ / "port") + "\ncert: " +
                  pki_.serverBundle() + "\njobs_dir: " + (dir_ / "jobs") + "\n" + extra_yaml);
    server_ = std::make_unique<Child>(
        std::vector<std::string>{binary("pyrund"), "--config", dir_ / "pyrund.yaml"});
    ASSERT_TRUE(eventually([&] { return !readFileOrEmpty(dir_ / "port").empty(); }, 30s))
        << server_->wait(1s).err;
    port_ = std::stoi(readFileOrEmpty(dir_ / "port"));
  }

  void expectScenario(const std::string& scenario) {
    RunOptions options;
    options.timeout = 120s;
    auto out = run({"python3", WIRE_CLIENT, std::to_string(port_), client_, pki_.caCert(), scenario},
                   options);
    EXPECT_EQ(out.exit_code, 0) << out.out << out.err;
    EXPECT_EQ(out.out, "OK\n") << out.err;
  }

  TempDir dir_{"pyrund"};
  Pki pki_{dir_.path()};
  std::string client_ = pki_.clientBundle("alice");
  std::unique_ptr<Child> server_;
  int port_ = 0;
};

TEST_F(PyrundTest, StreamsOutputForwardsStdinAndReportsExitCode) {
  startServer("");
  expectScenario("streams_and_exits");
}

TEST_F(PyrundTest, UnexpectedFrameGetsErrorAndClose) {
  startServer("");
  expectScenario("unexpected_frame");
}

TEST_F(PyrundTest, SecondRunWhileRunningGetsErrorAndClose) {
  startServer("");
  expectScenario("second_run_is_unexpected");
}

TEST_F(PyrundTest, OversizeHeaderGetsBadFrameAndClose) {
  startServer("");
  expectScenario("oversize_header");
}

TEST_F(PyrundTest, UnknownFrameTypeGetsBadFrame) {
  startServer("");
  expectScenario("unknown_type");
}

TEST_F(PyrundTest, InvalidScriptNameIsABadRequest) {
  startServer("");
  expectScenario("bad_request");
}

TEST_F(PyrundTest, RequestedLimitAboveServersIsRefused) {
  startServer("");
  expectScenario("limit_too_high");
}

TEST_F(PyrundTest, OutputIsCutExactlyAtTheCapAndTheJobKilled) {
  startServer("limits:\n  output_bytes: 1000\n");
  expectScenario("output_cap");
}

TEST_F(PyrundTest, WallClockLimitKillsTheJob) {
  startServer("limits:\n  wall_seconds: 1\n");
  expectScenario("wall_limit");
}

TEST_F(PyrundTest, CancelKillsTheJob) {
  startServer("");
  expectScenario("cancel");
}

TEST_F(PyrundTest, QueuesWithPositionsThenSaysBusy) {
  startServer("max_jobs: 1\nqueue: 1\n");
  expectScenario("queue_and_busy");
}

TEST_F(PyrundTest, CtrlCWhileQueuedLeavesTheQueue) {
  startServer("max_jobs: 1\nqueue: 1\n");
  expectScenario("cancel_while_queued");
}

TEST_F(PyrundTest, StopsCleanlyOnSigterm) {
  startServer("");
  server_->signal(SIGTERM);
  auto out = server_->wait(30s);
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_NE(out.err.find("listening on 127.0.0.1:" + std::to_string(port_)), std::string::npos)
      << out.err;
}

TEST(PyrundCommandLine, UnknownConfigKeyExitsTwoWithPosition) {
  TempDir dir("pyrund-cfg");
  writeFile(dir / "bad.yaml", "port: 0\nlisten_on: x\n");
  auto out = run({binary("pyrund"), "--config", dir / "bad.yaml"});
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_EQ(out.err, "pyrund: " + (dir / "bad.yaml") + ":2:1: listen_on: unknown key\n");
}

TEST(PyrundCommandLine, UnknownFlagExitsTwo) {
  auto out = run({binary("pyrund"), "--frobnicate"});
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_NE(out.err.find("unknown option --frobnicate"), std::string::npos) << out.err;
}

TEST(PyrundCommandLine, HelpListsOptionsAndExitsZero) {
  auto out = run({binary("pyrund"), "--help"});
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_NE(out.out.find("--max-jobs"), std::string::npos);
}

TEST(PyrundCommandLine, UnreadableCertificateExitsOne) {
  TempDir dir("pyrund-cert");
  writeFile(dir / "empty.yaml", "");
  auto out = run({binary("pyrund"), "--config", dir / "empty.yaml", "--cert", dir / "missing.pem",
                  "--port", "0", "--listen", "127.0.0.1", "--jobs-dir", dir / "jobs"});
  EXPECT_EQ(out.exit_code, 1) << out.err;
  EXPECT_NE(out.err.find("missing.pem"), std::string::npos) << out.err;
}

}  // namespace
}  // namespace pyrun::test
