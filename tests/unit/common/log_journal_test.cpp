// Log lines in journal format (JOURNAL_STREAM) and in the plain format.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/log.h"

namespace pyrun::log {
namespace {

std::string devIno(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

// Writes one line at `level` through a pipe and returns it.
std::string lineAt(Level level, bool journal_format) {
  int p[2];
  EXPECT_EQ(::pipe(p), 0);
  setFd(p[1]);
  setJournal(journal_format);
  write(level, "testFunction", "hello");
  setFd(2);
  setJournal(false);
  ::close(p[1]);
  char buf[512];
  ssize_t n = ::read(p[0], buf, sizeof buf);
  ::close(p[0]);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

TEST(JournalLogTest, RecognisesTheStreamStderrIsConnectedTo) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  EXPECT_TRUE(isJournalStream(devIno(p[1]).c_str(), p[1]));
  // The variable survives a redirection (2>file) under systemd: another file is not the journal.
  int other = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(other, 0);
  EXPECT_FALSE(isJournalStream(devIno(p[1]).c_str(), other));
  ::close(other);
  EXPECT_FALSE(isJournalStream(nullptr, p[1]));
  EXPECT_FALSE(isJournalStream("", p[1]));
  EXPECT_FALSE(isJournalStream("garbage", p[1]));
  EXPECT_FALSE(isJournalStream((devIno(p[1]) + "x").c_str(), p[1]));
  ::close(p[0]);
  ::close(p[1]);
}

TEST(JournalLogTest, JournalLinesCarryPriorityAndNoTimestamp) {
  EXPECT_EQ(lineAt(Level::kError, true).rfind("<3>[E][", 0), 0u) << lineAt(Level::kError, true);
  EXPECT_EQ(lineAt(Level::kWarning, true).rfind("<4>[W][", 0), 0u);
  EXPECT_EQ(lineAt(Level::kInfo, true).rfind("<6>[I][", 0), 0u);
  EXPECT_EQ(lineAt(Level::kDebug, true).rfind("<7>[D][", 0), 0u);
  std::string line = lineAt(Level::kInfo, true);
  EXPECT_EQ(line, "<6>[I][" + std::to_string(::getpid()) + "] testFunction(): hello\n");
}

TEST(JournalLogTest, PlainLinesKeepTheirTimestamp) {
  std::string line = lineAt(Level::kInfo, false);
  ASSERT_EQ(line.rfind("[I][20", 0), 0u) << line;
  EXPECT_NE(line.find("Z][" + std::to_string(::getpid()) + "] testFunction(): hello\n"),
            std::string::npos)
      << line;
}

}  // namespace
}  // namespace pyrun::log
