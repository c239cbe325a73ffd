// Audit lines: JSON escaping of hostile names, field order, file appends and reopen.
#include "server/audit.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdio>

#include "support/temp_dir.h"

namespace pyrun::server {
namespace {

TEST(Audit, EscapesQuotesControlsAndInvalidUtf8) {
  EXPECT_EQ(jsonEscape("plain"), "plain");
  EXPECT_EQ(jsonEscape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(jsonEscape("line\nbreak\r\t"), "line\\nbreak\\r\\t");
  EXPECT_EQ(jsonEscape(std::string("nul\0x", 5)), "nul\\u0000x");
  EXPECT_EQ(jsonEscape("\x1b[31m"), "\\u001b[31m");
  EXPECT_EQ(jsonEscape("caf\xc3\xa9"), "caf\xc3\xa9");  // valid UTF-8 kept
  EXPECT_EQ(jsonEscape("bad\xff\xc3"), "bad\\u00ff\\u00c3");
  EXPECT_EQ(jsonEscape("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080");  // a surrogate is not UTF-8
}

TEST(Audit, LineHasTimeEventAndFieldsInOrder) {
  auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764154815123));
  AuditLine line("job_end", when);
  line.str("identity", "al\"ice").num("job_id", 7).sint("exit_code", -1);
  EXPECT_EQ(line.text(),
            "{\"time\":\"2025-11-26T11:00:15.123Z\",\"event\":\"job_end\",\"identity\":\"al\\\"ice\","
            "\"job_id\":7,\"exit_code\":-1}\n");
}

TEST(Audit, Sha256OfKnownInput) {
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Audit, AppendsLinesAndReopensAfterRotation) {
  test::TempDir dir("audit");
  auto log = AuditLog::open(dir / "audit.log");
  ASSERT_TRUE(log.has_value()) << log.error().detail();
  log->write(AuditLine("connect"));
  ASSERT_EQ(std::rename((dir / "audit.log").c_str(), (dir / "audit.log.1").c_str()), 0);
  log->write(AuditLine("job_start"));  // still the old file until the reopen
  ASSERT_TRUE(log->reopen().has_value());
  log->write(AuditLine("job_end"));
  std::string old = test::readFileOrEmpty(dir / "audit.log.1");
  std::string now = test::readFileOrEmpty(dir / "audit.log");
  EXPECT_NE(old.find("\"event\":\"connect\""), std::string::npos);
  EXPECT_NE(old.find("\"event\":\"job_start\""), std::string::npos);
  EXPECT_EQ(now.find("\"event\":\"connect\""), std::string::npos);
  EXPECT_NE(now.find("\"event\":\"job_end\""), std::string::npos);
  struct stat st{};
  ASSERT_EQ(::stat((dir / "audit.log").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST(Audit, RefusesALinkWhereTheLogBelongs) {
  test::TempDir dir("audit");
  ASSERT_EQ(::symlink("/etc/passwd", (dir / "audit.log").c_str()), 0);
  auto log = AuditLog::open(dir / "audit.log");
  ASSERT_FALSE(log.has_value());
  EXPECT_NE(log.error().detail().find(dir / "audit.log"), std::string::npos);
}

}  // namespace
}  // namespace pyrun::server
