// The front's side of a job's terminal: the policy's refusal and the window-size pipe.
#include "server/terminal_window.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace pyrun::server {
namespace {

// Every record in the pipe, as (rows, cols).
std::vector<proto::WindowSize> drain(int fd) {
  std::vector<proto::WindowSize> out;
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  uint16_t record[2];
  while (::read(fd, record, sizeof record) == static_cast<ssize_t>(sizeof record)) {
    out.push_back({record[0], record[1]});
  }
  return out;
}

TEST(TerminalWindow, RefusedByAPolicyWithTerminalFalse) {
  policy::Policy p;
  EXPECT_FALSE(refuseTerminal(p, "default"));
  p.terminal = false;
  auto refused = refuseTerminal(p, "strict");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, proto::ErrorCode::kUnauthorized);
  EXPECT_EQ(refused->message,
            "policy \"strict\" does not allow a terminal (terminal: false); run without -t");
}

TEST(TerminalWindow, JobStartsWithTheLatestSizeAndLaterResizesGoDownThePipe) {
  TerminalWindow w(proto::Terminal{proto::WindowSize{24, 80}, "xterm"});
  w.resize({30, 100});  // while queued: nothing to write to yet
  auto job = w.forJob();
  EXPECT_TRUE(job.enabled);
  EXPECT_EQ(job.rows, 30);
  EXPECT_EQ(job.cols, 100);
  EXPECT_EQ(job.term, "xterm");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  w.attach(UniqueFd(fds[1]));
  EXPECT_TRUE(drain(fds[0]).empty());  // the job already has 30x100
  w.resize({30, 100});
  w.resize({40, 120});
  w.resize({50, 132});
  EXPECT_EQ(drain(fds[0]), (std::vector<proto::WindowSize>{{40, 120}, {50, 132}}));
  ::close(fds[0]);
}

TEST(TerminalWindow, SizeChangedBetweenSpawnAndStartIsSentAtAttach) {
  TerminalWindow w(proto::Terminal{proto::WindowSize{24, 80}, "vt100"});
  (void)w.forJob();
  w.resize({25, 81});
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  w.attach(UniqueFd(fds[1]));
  EXPECT_EQ(drain(fds[0]), (std::vector<proto::WindowSize>{{25, 81}}));
  ::close(fds[0]);
}

TEST(TerminalWindow, AFullPipeNeverBlocksTheFront) {
  TerminalWindow w(proto::Terminal{proto::WindowSize{24, 80}, "vt100"});
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  w.attach(UniqueFd(fds[1]));
  // Far more than a pipe holds: each write either fits or is dropped, never waits.
  for (uint16_t i = 1; i <= 40000; ++i) w.resize({static_cast<uint16_t>(i % 9000 + 1), 80});
  EXPECT_FALSE(drain(fds[0]).empty());
  ::close(fds[0]);
}

}  // namespace
}  // namespace pyrun::server
