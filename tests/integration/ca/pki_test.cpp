// tests/support/pki.h, which every other test's PKI comes from.
#include "support/pki.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

TEST(PkiHelper, MakesCaServerAndClientFilesWithTheAgreedPaths) {
  TempDir tmp("pki-helper");
  Pki pki(tmp.path());
  EXPECT_EQ(pki.caDir(), tmp / "ca");
  EXPECT_EQ(pki.caCert(), tmp / "ca/ca.pem");
  EXPECT_EQ(pki.crl(), tmp / "ca/crl.pem");
  EXPECT_EQ(::access(pki.caCert().c_str(), R_OK), 0);
  EXPECT_EQ(::access(pki.crl().c_str(), R_OK), 0);
  std::string server = pki.serverBundle();
  EXPECT_EQ(server, tmp / "server.pem");
  std::string first = readFileOrEmpty(server);
  EXPECT_EQ(pki.serverBundle(), server);  // made once
  EXPECT_EQ(readFileOrEmpty(server), first);
  EXPECT_EQ(pki.clientBundle("alice"), tmp / "alice.pem");
  struct stat st {};
  ASSERT_EQ(::stat((tmp / "alice.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  Outcome show = pki.ca({"show", "alice"});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  pki.revoke("alice");
  EXPECT_NE(pki.ca({"show", "alice"}).out.find("status:      revoked"), std::string::npos);
  Outcome fail = pki.ca({"revoke", "alice"});
  EXPECT_NE(fail.exit_code, 0);
}

TEST(PkiHelper, ClientBundlePassesExtraArguments) {
  TempDir tmp("pki-helper-extra");
  Pki pki(tmp.path());
  std::string bundle = pki.clientBundle(
      "old", {"--not-after", "2020-02-01T00:00:00Z", "--not-before", "2020-01-01T00:00:00Z"});
  Outcome show = pki.ca({"show", bundle});
  EXPECT_NE(show.out.find("not after:   2020-02-01T00:00:00Z"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("status:      expired"), std::string::npos);
}

TEST(PkiHelperDeathTest, AbortsWithPyrunCaMessageWhenACommandFails) {
  TempDir tmp("pki-helper-death");
  Pki pki(tmp.path());
  EXPECT_DEATH(pki.clientBundle("bad name"), "client name 'bad name' must be");
}

}  // namespace
}  // namespace pyrun::test
