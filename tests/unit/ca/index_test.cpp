// index.txt and ca.conf formats: round trips and damaged files.
#include "ca/index.h"

#include <gtest/gtest.h>

namespace pyrun::ca {
namespace {

IndexEntry entry(const std::string& serial, Status status) {
  IndexEntry e;
  e.serial = serial;
  e.kind = Kind::kServer;
  e.status = status;
  e.not_before = 1800000000;
  e.not_after = 1900000000;
  e.names = {"localhost", "127.0.0.1", "::1"};
  if (status != Status::kValid) {
    e.revoked_at = 1850000000;
    e.reason = Reason::kKeyCompromise;
  }
  return e;
}

TEST(Index, RoundTripsEntries) {
  std::vector<IndexEntry> in = {entry("4abc", Status::kValid), entry("7def", Status::kRevoked)};
  in[1].kind = Kind::kClient;
  in[1].names = {"alice"};
  auto out = parseIndex(formatIndex(in), "index.txt");
  ASSERT_TRUE(out) << out.error().detail();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[0].serial, "4abc");
  EXPECT_EQ((*out)[0].names, in[0].names);
  EXPECT_EQ((*out)[0].status, Status::kValid);
  EXPECT_EQ((*out)[1].kind, Kind::kClient);
  EXPECT_EQ((*out)[1].status, Status::kRevoked);
  EXPECT_EQ((*out)[1].revoked_at, 1850000000);
  EXPECT_EQ((*out)[1].reason, Reason::kKeyCompromise);
  EXPECT_EQ((*out)[1].not_after, 1900000000);
}

TEST(Index, StatusSaysExpiredOnlyForValidEntriesPastNotAfter) {
  IndexEntry e = entry("1", Status::kValid);
  EXPECT_EQ(e.describeStatus(1899999999), "valid");
  EXPECT_TRUE(e.active(1899999999));
  EXPECT_EQ(e.describeStatus(1900000000), "expired");
  EXPECT_FALSE(e.active(1900000000));
  EXPECT_EQ(entry("2", Status::kRevoked).describeStatus(1950000000), "revoked");
}

TEST(Index, RejectsDamagedLinesNamingTheLine) {
  std::string good = formatIndex({entry("4abc", Status::kValid)});
  struct Case {
    std::string text;
    std::string message;
  };
  std::vector<Case> cases = {
      {good + "garbage\n", "index.txt:3: expected 8 tab-separated fields"},
      {good + "4ABC\tserver\tvalid\t2027-01-01T00:00:00Z\t2028-01-01T00:00:00Z\t-\t-\tx\n",
       "index.txt:3: serial '4ABC' is not lower-case hex"},
      {good + "4\tcar\tvalid\t2027-01-01T00:00:00Z\t2028-01-01T00:00:00Z\t-\t-\tx\n",
       "index.txt:3: unknown kind 'car'"},
      {good + "4\tserver\tgone\t2027-01-01T00:00:00Z\t2028-01-01T00:00:00Z\t-\t-\tx\n",
       "index.txt:3: unknown status 'gone'"},
      {good + "4\tserver\trevoked\t2027-01-01T00:00:00Z\t2028-01-01T00:00:00Z\t-\t-\tx\n",
       "index.txt:3: a revoked certificate has no revocation time"},
      {good + "4\tserver\tvalid\tsoon\t2028-01-01T00:00:00Z\t-\t-\tx\n", "index.txt:3: not_before"},
  };
  for (const auto& c : cases) {
    auto r = parseIndex(c.text, "index.txt");
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().detail().find(c.message), std::string::npos) << r.error().detail();
    EXPECT_NE(r.error().detail().find("(the index is damaged)"), std::string::npos);
  }
}

TEST(Config, RoundTripsSettings) {
  CaConfig c;
  c.crl_url = "http://ca.example/crl.pem";
  c.crl_days = 30;
  c.crl_number = 12;
  auto out = parseConfig(formatConfig(c), "ca.conf");
  ASSERT_TRUE(out) << out.error().detail();
  EXPECT_EQ(out->crl_url, c.crl_url);
  EXPECT_EQ(out->crl_days, 30);
  EXPECT_EQ(out->crl_number, 12);
}

TEST(Config, RejectsUnknownKeysAndBadNumbers) {
  auto typo = parseConfig("crl_dys = 30\n", "ca.conf");
  ASSERT_FALSE(typo);
  EXPECT_EQ(typo.error().detail(), "ca.conf:1: unknown setting 'crl_dys'");
  auto days = parseConfig("# c\ncrl_days = 0\n", "ca.conf");
  ASSERT_FALSE(days);
  EXPECT_NE(days.error().detail().find("ca.conf:2: crl_days must be"), std::string::npos);
  auto number = parseConfig("crl_number = 1x\n", "ca.conf");
  ASSERT_FALSE(number);
  EXPECT_EQ(number.error().detail(), "ca.conf:1: crl_number must be a whole number");
  EXPECT_FALSE(parseConfig("just words\n", "ca.conf"));
}

}  // namespace
}  // namespace pyrun::ca
