// pyrund over loopback against wire_client.py, a minimal client that can send what pyrun never
// would. Each test starts a real pyrund (port 0, temporary jobs directory, a PKI made by pyrun-ca).
#include <dirent.h>

#include "pyrund_fixture.h"

namespace pyrun::test {
namespace {

TEST_F(PyrundTest, StreamsOutputForwardsStdinAndReportsExitCode) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("streams_and_exits");
}

TEST_F(PyrundTest, TimingsFollowExitOnlyWhenRunAsksForThem) {
  startServer("");
  expectScenario("timings_after_exit");
  // A RUN without the flags field (every client before it) gets EXIT as its last frame.
  expectScenario("streams_and_exits");
}

TEST_F(PyrundTest, UnknownRunFlagIsABadFrame) {
  startServer("");
  expectScenario("unknown_run_flag");
}

TEST_F(PyrundTest, UnexpectedFrameGetsErrorAndClose) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("unexpected_frame");
}

TEST_F(PyrundTest, SecondRunWhileRunningGetsErrorAndClose) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("second_run_is_unexpected");
}

TEST_F(PyrundTest, OversizeHeaderGetsBadFrameAndClose) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("oversize_header");
}

TEST_F(PyrundTest, UnknownFrameTypeGetsBadFrame) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("unknown_type");
}

TEST_F(PyrundTest, InvalidScriptNameIsABadRequest) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("bad_request");
}

TEST_F(PyrundTest, RequestedLimitAboveServersIsRefused) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("limit_too_high");
}

TEST_F(PyrundTest, OutputIsCutExactlyAtTheCapAndTheJobKilled) {
  ASSERT_NO_FATAL_FAILURE(
      startServer("policies:\n  default: " + policy("capped", "  output: 1000\n") + "\n", false));
  expectScenario("output_cap");
}

TEST_F(PyrundTest, WallClockLimitKillsTheJob) {
  ASSERT_NO_FATAL_FAILURE(
      startServer("policies:\n  default: " + policy("short", "  wall_seconds: 1\n") + "\n", false));
  expectScenario("wall_limit");
}

TEST_F(PyrundTest, CancelKillsTheJob) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("cancel");
}

TEST_F(PyrundTest, QueuesWithPositionsThenSaysBusy) {
  ASSERT_NO_FATAL_FAILURE(startServer("max_jobs: 1\nqueue: 1\n"));
  expectScenario("queue_and_busy");
}

TEST_F(PyrundTest, CtrlCWhileQueuedLeavesTheQueue) {
  ASSERT_NO_FATAL_FAILURE(startServer("max_jobs: 1\nqueue: 1\n"));
  expectScenario("cancel_while_queued");
}

TEST_F(PyrundTest, StopsCleanlyOnSigterm) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
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
  writeFile(dir / "empty.yaml", "policies:\n  default: " PYRUN_SOURCE_DIR "/policy/default.yaml\n");
  auto out = run({binary("pyrund"), "--config", dir / "empty.yaml", "--cert", dir / "missing.pem",
                  "--port", "0", "--listen", "127.0.0.1", "--jobs-dir", dir / "jobs"});
  EXPECT_EQ(out.exit_code, 1) << out.err;
  EXPECT_NE(out.err.find("missing.pem"), std::string::npos) << out.err;
}

// The state rules of docs/PROTOCOL.md section 6.1 for stdin and the upload frames.
TEST_F(PyrundTest, StdinOrStdinEndAfterStdinEndIsUnexpected) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("stdin_after_stdin_end");
}

TEST_F(PyrundTest, FilesBeforeRunLandInTheWorkingDirectory) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("file_then_run");
}

TEST_F(PyrundTest, UploadFramesOutOfOrderAreUnexpected) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("file_data_without_file");
  expectScenario("run_while_file_owed");
  expectScenario("file_after_run");
}

TEST_F(PyrundTest, BadUploadsAreBadRequests) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("file_data_beyond_size");
  expectScenario("file_bad_name");
  expectScenario("file_twice");
  expectScenario("file_clashes_with_script");
  expectScenario("get_twice");
}

TEST_F(PyrundTest, AnAbandonedUploadLeavesNothing) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  expectScenario("upload_abandoned");
  EXPECT_TRUE(eventually([&] {
    DIR* d = ::opendir((dir_ / "jobs/.uploads").c_str());
    if (d == nullptr) return false;
    int n = 0;
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
    return n == 0;
  }));
}

}  // namespace
}  // namespace pyrun::test
