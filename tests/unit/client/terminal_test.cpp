// pyrun -t on the client: the `~.` escape, the TERM sent to the job, raw mode and its restoration,
// and the -t / -tt options.
#include "client/terminal.h"

#include <gtest/gtest.h>
#include <pty.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "client/options.h"
#include "client/stdio.h"

namespace pyrun::client {
namespace {

struct Scan {
  std::string sent;
  bool ended = false;
};

Scan scanAll(EscapeScanner& s, std::initializer_list<std::string> chunks) {
  Scan out;
  std::vector<uint8_t> bytes;
  for (const auto& c : chunks) {
    if (s.scan(std::span(reinterpret_cast<const uint8_t*>(c.data()), c.size()), bytes)) {
      out.ended = true;
      break;
    }
  }
  out.sent.assign(bytes.begin(), bytes.end());
  return out;
}

TEST(EscapeScanner, TildeDotAtTheStartEndsTheSession) {
  EscapeScanner s;
  auto r = scanAll(s, {"~."});
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.sent, "");
}

TEST(EscapeScanner, TildeDotAfterEnterEndsTheSessionAndDropsWhatFollows) {
  EscapeScanner s;
  auto r = scanAll(s, {"ls\r~.rest"});
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.sent, "ls\r");
  EscapeScanner lf;
  EXPECT_TRUE(scanAll(lf, {"x\n~."}).ended);
}

TEST(EscapeScanner, TildeDotSplitAcrossReadsStillEnds) {
  EscapeScanner s;
  auto r = scanAll(s, {"a\r", "~", "."});
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.sent, "a\r");
}

TEST(EscapeScanner, TildeInsideALineIsSentAsIs) {
  EscapeScanner s;
  auto r = scanAll(s, {"a~.b"});
  EXPECT_FALSE(r.ended);
  EXPECT_EQ(r.sent, "a~.b");
}

TEST(EscapeScanner, DoubleTildeSendsOneAndOtherBytesFollowTheHeldTilde) {
  EscapeScanner s;
  auto r = scanAll(s, {"~~.", "\r~x"});
  EXPECT_FALSE(r.ended);
  EXPECT_EQ(r.sent, "~.\r~x");
}

TEST(TermForJob, KnownNamesPassOthersAreMapped) {
  EXPECT_EQ(termForJob("xterm-256color"), "xterm-256color");
  EXPECT_EQ(termForJob("tmux-256color"), "tmux-256color");
  EXPECT_EQ(termForJob("screen"), "screen");
  EXPECT_EQ(termForJob("vt100"), "vt100");
  EXPECT_EQ(termForJob("xterm-kitty"), "xterm-256color");
  EXPECT_EQ(termForJob("evil\x1b]0;x\x07"), "xterm-256color");
  EXPECT_EQ(termForJob(""), "dumb");
  EXPECT_EQ(termForJob(nullptr), "dumb");
}

TEST(RawMode, EntersRawModeAndRestoresTheExactSettings) {
  int master = -1, slave = -1;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  termios before{};
  ASSERT_EQ(::tcgetattr(slave, &before), 0);
  {
    RawMode raw;
    ASSERT_TRUE(raw.enter(slave));
    termios during{};
    ASSERT_EQ(::tcgetattr(slave, &during), 0);
    EXPECT_EQ(during.c_lflag & (ECHO | ICANON | ISIG), 0u);
    EXPECT_EQ(during.c_oflag & OPOST, 0u);
  }  // the destructor restores
  termios after{};
  ASSERT_EQ(::tcgetattr(slave, &after), 0);
  EXPECT_EQ(std::memcmp(&before, &after, sizeof before), 0);
  ::close(master);
  ::close(slave);
}

// What printLine writes to fd 2, captured through a pipe.
std::string printed(std::string_view sentence) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  int saved = ::dup(2);
  ::dup2(fds[1], 2);
  printLine(sentence);
  ::dup2(saved, 2);
  ::close(saved);
  ::close(fds[1]);
  char buf[256];
  ssize_t n = ::read(fds[0], buf, sizeof buf);
  ::close(fds[0]);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST(RawMode, PyrunsOwnLinesEndWithCrLfWhileRaw) {
  int master = -1, slave = -1;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  EXPECT_EQ(printed("before"), "pyrun: before\n");
  {
    RawMode raw;
    ASSERT_TRUE(raw.enter(slave));
    EXPECT_EQ(printed("during"), "pyrun: during\r\n");
  }
  EXPECT_EQ(printed("after"), "pyrun: after\n");
  ::close(master);
  ::close(slave);
}

TEST(RawMode, RefusesANonTerminal) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  RawMode raw;
  EXPECT_FALSE(raw.enter(fds[0]));
  EXPECT_FALSE(raw.active());
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(TerminalSize, ReadsThePtysSize) {
  int master = -1, slave = -1;
  winsize ws{};
  ws.ws_row = 33;
  ws.ws_col = 111;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, &ws), 0);
  auto size = terminalSize(slave);
  ASSERT_TRUE(size);
  EXPECT_EQ(*size, (proto::WindowSize{33, 111}));
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  EXPECT_FALSE(terminalSize(fds[0]));
  for (int fd : {master, slave, fds[0], fds[1]}) ::close(fd);
}

TEST(TerminalOption, CountsTs) {
  Environment env{std::nullopt, "/home/u"};
  auto parse = [&](std::vector<std::string> args) { return parseCommandLine(args, env); };
  EXPECT_EQ(parse({"host", "x.py"})->options.terminal, 0);
  EXPECT_EQ(parse({"-t", "host", "x.py"})->options.terminal, 1);
  EXPECT_EQ(parse({"--tty", "host", "x.py"})->options.terminal, 1);
  EXPECT_EQ(parse({"-tt", "host", "x.py"})->options.terminal, 2);
  EXPECT_EQ(parse({"-t", "-t", "host", "x.py"})->options.terminal, 2);
  // After SCRIPT, -t belongs to the program.
  auto c = parse({"host", "x.py", "-t"});
  EXPECT_EQ(c->options.terminal, 0);
  EXPECT_EQ(c->options.args, std::vector<std::string>{"-t"});
  EXPECT_FALSE(parse({"--tty=1", "host", "x.py"}));
}

}  // namespace
}  // namespace pyrun::client
