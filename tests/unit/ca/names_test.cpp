// Names, days, reasons and times as pyrun-ca accepts them.
#include "ca/names.h"

#include <gtest/gtest.h>

#include "ca/openssl_util.h"

namespace pyrun::ca {
namespace {

TEST(ServerName, AutoTypesIpv4AndIpv6Literals) {
  auto v4 = parseServerName("127.0.0.1");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->type, SubjectName::Type::kIp);
  EXPECT_EQ(v4->value, "127.0.0.1");
  auto v6 = parseServerName("0:0:0:0:0:0:0:1");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->type, SubjectName::Type::kIp);
  EXPECT_EQ(v6->value, "::1");  // canonical form
}

TEST(ServerName, AutoTypesDnsNamesLowerCased) {
  auto n = parseServerName("Build-01.Example.COM");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->type, SubjectName::Type::kDns);
  EXPECT_EQ(n->value, "build-01.example.com");
  auto wildcard = parseServerName("*.example.com");
  ASSERT_TRUE(wildcard);
  EXPECT_EQ(wildcard->type, SubjectName::Type::kDns);
}

TEST(ServerName, RejectsNamesThatAreNeitherDnsNorIp) {
  struct Case {
    std::string name;
    std::string why;
  };
  std::vector<Case> cases = {
      {"", "empty"},
      {"a..b", "empty label"},
      {"-a.example", "starts or ends with '-'"},
      {"a-.example", "starts or ends with '-'"},
      {"under_score.example", "contains '_'"},
      {"bad name", "contains ' '"},
      {"999.1.1.1", "looks like an IP address"},
      {"1.2.3", "looks like an IP address"},
      {std::string(64, 'a') + ".example", "longer than 63"},
      {std::string(250, 'a') + ".com", "longer than 253"},
      {"a.*.example", "contains '*'"},
      {"example.com.", "empty label"},
  };
  for (const auto& c : cases) {
    auto r = parseServerName(c.name);
    ASSERT_FALSE(r) << c.name;
    EXPECT_TRUE(r.error().is(Errc::kInvalidArgument));
    EXPECT_NE(r.error().detail().find("is not a valid DNS name or IP address"), std::string::npos)
        << r.error().detail();
    EXPECT_NE(r.error().detail().find(c.why), std::string::npos) << r.error().detail();
  }
}

TEST(ClientName, AcceptsIdentityLikeNames) {
  for (const char* n : {"alice", "bob.smith", "ci_runner-7", "alice@example.com", "A1"}) {
    EXPECT_TRUE(checkClientName(n)) << n;
  }
}

TEST(ClientName, RejectsNamesThatCouldBePathsOrAreTooLong) {
  for (std::string n :
       {std::string(""), std::string("../x"), std::string(".hidden"), std::string("a/b"),
        std::string("a b"), std::string("-rf"), std::string(65, 'a'), std::string("tab\there")}) {
    auto r = checkClientName(n);
    ASSERT_FALSE(r) << n;
    EXPECT_NE(r.error().detail().find("client name '" + n + "' must be"), std::string::npos);
  }
  EXPECT_TRUE(checkClientName(std::string(64, 'a')));
}

TEST(Days, AcceptsPositiveWholeNumbers) {
  EXPECT_EQ(parseDays("1", "--days").value(), 1);
  EXPECT_EQ(parseDays("90", "--days").value(), 90);
  EXPECT_EQ(parseDays("36500", "--days").value(), 36500);
}

TEST(Days, RejectsZeroNegativeAndGarbage) {
  for (const char* d : {"0", "-1", "-90", "", "abc", "1e3", "36501", "99999999999", " 5", "5d"}) {
    auto r = parseDays(d, "--days");
    ASSERT_FALSE(r) << d;
    EXPECT_EQ(r.error().detail(), std::string("--days must be a whole number of days from 1 to "
                                              "36500, not '") +
                                      d + "'");
  }
}

TEST(Reason, AcceptsSpellingVariants) {
  EXPECT_EQ(parseReason("keyCompromise").value(), Reason::kKeyCompromise);
  EXPECT_EQ(parseReason("key-compromise").value(), Reason::kKeyCompromise);
  EXPECT_EQ(parseReason("KEY_COMPROMISE").value(), Reason::kKeyCompromise);
  EXPECT_EQ(parseReason("superseded").value(), Reason::kSuperseded);
  EXPECT_EQ(reasonName(Reason::kPrivilegeWithdrawn), "privilegeWithdrawn");
}

TEST(Reason, RejectsUnknownReasonListingTheValidOnes) {
  auto r = parseReason("lost");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("unknown revocation reason 'lost': use one of unspecified, "
                                    "keyCompromise"),
            std::string::npos);
  // certificateHold is deliberately not offered: a hold can be lifted, a pyrun revocation cannot.
  EXPECT_FALSE(parseReason("certificateHold"));
}

TEST(CloseMatches, SuggestsTyposClosestFirst) {
  std::vector<std::string> known = {"alice", "alicia", "bob", "carol"};
  auto m = closeMatches("alcie", known);
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m.front(), "alice");
  EXPECT_TRUE(closeMatches("zzzzzz", known).empty());
  EXPECT_EQ(closeMatches("Bob", known), std::vector<std::string>{"bob"});
}

TEST(Time, ParsesUtcTimestamps) {
  EXPECT_EQ(parseTime("1970-01-02T00:00:00Z", "--x").value(), 86400);
  EXPECT_EQ(parseTime("2030-01-31T12:00:00Z", "--x").value(), 1896091200);
  EXPECT_EQ(formatTime(1896091200), "2030-01-31T12:00:00Z");
}

TEST(Time, RejectsMalformedAndImpossibleTimes) {
  for (const char* t :
       {"2030-02-31T00:00:00Z", "2030-01-31T12:00:00", "2030-01-31 12:00:00Z",
        "2030-1-31T12:00:00Z", "2030-01-31T25:00:00Z", "+030-01-31T12:00:00Z", "tomorrow", ""}) {
    auto r = parseTime(t, "--not-after");
    ASSERT_FALSE(r) << t;
    EXPECT_EQ(r.error().detail(),
              std::string("--not-after '") + t + "' is not a time like 2030-01-31T12:00:00Z (UTC)");
  }
}

TEST(KeyType, ParsesBothSupportedTypes) {
  EXPECT_EQ(parseKeyType("p256").value(), KeyType::kP256);
  EXPECT_EQ(parseKeyType("Ed25519").value(), KeyType::kEd25519);
  auto r = parseKeyType("rsa");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail(), "unknown key type 'rsa': use p256 or ed25519");
}

}  // namespace
}  // namespace pyrun::ca
