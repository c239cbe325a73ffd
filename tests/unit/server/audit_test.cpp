// Audit lines: JSON escaping of hostile names, field order, file appends and reopen.
#include "server/audit.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/json/parse.hpp>
#include <cstdio>

#include "support/temp_dir.h"

namespace pyrun::server {
namespace {

TEST(Audit, InvalidUtf8BecomesTheCharactersOfItsBytes) {
  EXPECT_EQ(validUtf8("plain"), "plain");
  EXPECT_EQ(validUtf8("caf\xc3\xa9"), "caf\xc3\xa9");          // valid UTF-8 kept
  EXPECT_EQ(validUtf8("bad\xff\xc3"), "bad\xc3\xbf\xc3\x83");  // U+00FF, U+00C3
  // A surrogate is not UTF-8: U+00ED, U+00A0, U+0080.
  EXPECT_EQ(validUtf8("\xed\xa0\x80"), "\xc3\xad\xc2\xa0\xc2\x80");
}

TEST(Audit, HostileStringsNeitherBreakTheLineNorTheJson) {
  auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764154815123));
  AuditLine line("connect", when);
  line.str("a", "a\"b\\c").str("b", "line\nbreak\r\t").str("c", std::string("nul\0x", 5));
  line.str("d", "\x1b[31m").str("e", "bad\xff").str("f\"", "key");
  EXPECT_EQ(line.text(),
            "{\"time\":\"2025-11-26T11:00:15.123Z\",\"event\":\"connect\",\"a\":\"a\\\"b\\\\c\","
            "\"b\":\"line\\nbreak\\r\\t\",\"c\":\"nul\\u0000x\",\"d\":\"\\u001b[31m\","
            "\"e\":\"bad\xc3\xbf\",\"f\\\"\":\"key\"}\n");
  auto parsed = boost::json::parse(line.text());
  EXPECT_EQ(parsed.as_object().at("c").as_string(), std::string_view("nul\0x", 5));
  EXPECT_EQ(parsed.as_object().at("e").as_string(), "bad\xc3\xbf");
}

TEST(Audit, LineHasTimeEventAndFieldsInOrder) {
  auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764154815123));
  AuditLine line("job_end", when);
  line.str("identity", "al\"ice").num("job_id", 7).sint("exit_code", -1);
  EXPECT_EQ(
      line.text(),
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
  struct stat st {};
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
