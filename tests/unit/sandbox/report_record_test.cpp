// The spawner's reading of a job's report socket: a record with its sender's credentials is
// taken; a datagram longer than a record, or one carrying descriptors, is no record (MSG_TRUNC,
// MSG_CTRUNC) and its credentials are not believed; descriptors that came along are closed.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "sandbox/spawner_process.h"

namespace pyrun::sandbox::detail {
namespace {

int openDescriptors() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

class ReportRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds_), 0);
    int on = 1;
    ASSERT_EQ(::setsockopt(fds_[0], SOL_SOCKET, SO_PASSCRED, &on, sizeof on), 0);
  }
  void TearDown() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  int fds_[2] = {-1, -1};
};

TEST_F(ReportRecordTest, ARecordComesWithItsSendersPid) {
  ReportRecord sent{static_cast<int32_t>(ReportKind::kExited), 0, 7, 0};
  ASSERT_EQ(::send(fds_[1], &sent, sizeof sent, 0), static_cast<ssize_t>(sizeof sent));
  ReportRecord got{};
  ReportRead read = readReportRecord(fds_[0], got);
  EXPECT_EQ(read.n, static_cast<ssize_t>(sizeof got));
  EXPECT_FALSE(read.truncated);
  EXPECT_EQ(read.sender_pid, ::getpid());
  EXPECT_EQ(got.value, 7);
}

// The init's end closed with the spawner's release byte unread: the kernel makes the spawner's
// next read fail with ECONNRESET ahead of the records still queued. They must still be read (a
// lost kExited record turned a job's CPU-limit death into "exit 152").
TEST_F(ReportRecordTest, RecordsQueuedBeforeTheInitClosedWithUnreadDataAreRead) {
  ReportRecord sent{static_cast<int32_t>(ReportKind::kExited), 0, 24, 0};
  ASSERT_EQ(::send(fds_[1], &sent, sizeof sent, 0), static_cast<ssize_t>(sizeof sent));
  const char release = 1;
  ASSERT_EQ(::send(fds_[0], &release, 1, 0), 1);
  ASSERT_EQ(::close(fds_[1]), 0);                       // with the release unread
  fds_[1] = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // for TearDown
  ReportRecord got{};
  ReportRead read = readReportRecord(fds_[0], got);
  EXPECT_EQ(read.n, static_cast<ssize_t>(sizeof got)) << std::strerror(errno);
  EXPECT_EQ(got.kind, static_cast<int32_t>(ReportKind::kExited));
  EXPECT_EQ(got.value, 24);
  EXPECT_EQ(readReportRecord(fds_[0], got).n, 0);  // then the end of file
}

TEST_F(ReportRecordTest, ALongerDatagramIsNoRecord) {
  char bytes[sizeof(ReportRecord) + 8] = {};
  ASSERT_EQ(::send(fds_[1], bytes, sizeof bytes, 0), static_cast<ssize_t>(sizeof bytes));
  ReportRecord got{};
  ReportRead read = readReportRecord(fds_[0], got);
  EXPECT_TRUE(read.truncated);
  EXPECT_EQ(read.sender_pid, 0);
}

TEST_F(ReportRecordTest, DescriptorsAlongARecordAreClosedAndTheRecordDropped) {
  const int before = openDescriptors();
  int passed[4];
  for (int& p : passed) p = ::dup(0);
  ReportRecord sent{static_cast<int32_t>(ReportKind::kStarted), 0, 0, 0};
  iovec iov{&sent, sizeof sent};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof passed)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof passed);
  std::memcpy(CMSG_DATA(c), passed, sizeof passed);
  ASSERT_EQ(::sendmsg(fds_[1], &msg, 0), static_cast<ssize_t>(sizeof sent));
  for (int p : passed) ::close(p);
  ReportRecord got{};
  ReportRead read = readReportRecord(fds_[0], got);
  EXPECT_TRUE(read.truncated);
  EXPECT_EQ(read.sender_pid, 0);
  EXPECT_EQ(openDescriptors(), before);
}

}  // namespace
}  // namespace pyrun::sandbox::detail
