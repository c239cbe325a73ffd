// pyrun-ca as an admin uses it: commands, output, files, modes, exit codes and error messages.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

unsigned modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

Outcome ca(const std::vector<std::string>& args, const RunOptions& options = {}) {
  std::vector<std::string> argv = {binary("pyrun-ca")};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, options);
}

class CaCli : public ::testing::Test {
 protected:
  TempDir tmp_{"ca-cli"};
  Pki pki_{tmp_.path()};
};

TEST(CaHelp, MainAndEveryCommandHaveHelp) {
  Outcome main_help = ca({"--help"});
  EXPECT_EQ(main_help.exit_code, 0);
  for (const char* c : {"init", "server", "client", "list", "show", "revoke", "crl", "renew"}) {
    EXPECT_NE(main_help.out.find(std::string("  ") + c + " "), std::string::npos) << c;
    Outcome h = ca({c, "--help"});
    EXPECT_EQ(h.exit_code, 0) << c;
    EXPECT_EQ(h.out.rfind(std::string("usage: pyrun-ca ") + c, 0), 0u) << h.out;
    EXPECT_NE(h.out.find("--dir DIR"), std::string::npos) << c;
  }
  EXPECT_NE(ca({"client", "--help"}).out.find("--not-after TIME"), std::string::npos);
  EXPECT_NE(ca({"revoke", "--help"}).out.find("keyCompromise"), std::string::npos);
}

TEST(CaHelp, NoCommandOrUnknownCommandIsAUsageError) {
  Outcome none = ca({});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("usage: pyrun-ca"), std::string::npos);
  Outcome bad = ca({"sign"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err,
            "pyrun-ca: unknown command 'sign' (commands: init, server, client, list, "
            "show, revoke, crl, renew; see `pyrun-ca --help`)\n");
}

TEST_F(CaCli, UnknownOptionsAndMissingValuesAreUsageErrors) {
  Outcome o = pki_.ca({"client", "alice", "--bogus"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.err, "pyrun-ca: client: unknown option '--bogus' (see `pyrun-ca client --help`)\n");
  Outcome missing = ca({"client", "alice", "--days"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("option --days needs a value"), std::string::npos);
  Outcome two = pki_.ca({"client", "alice", "bob"});
  EXPECT_EQ(two.exit_code, 2);
  EXPECT_NE(two.err.find("unexpected argument 'bob'"), std::string::npos);
  Outcome none = pki_.ca({"server"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("expected at least one name"), std::string::npos);
  Outcome both = pki_.ca({"client", "x", "--days", "3", "--not-after", "2030-01-01T00:00:00Z"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("give either --days or --not-after, not both"), std::string::npos);
}

TEST_F(CaCli, ClientWritesNamePemInCurrentDirectoryWithMode0600) {
  RunOptions in_tmp;
  in_tmp.cwd = tmp_.path();
  Outcome o = ca({"client", "carol", "--dir", pki_.caDir()}, in_tmp);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("wrote carol.pem: client certificate for 'carol', serial "),
            std::string::npos)
      << o.out;
  EXPECT_EQ(modeOf(tmp_ / "carol.pem"), 0600u);
  Outcome s = ca({"server", "build.example", "--dir", pki_.caDir()}, in_tmp);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(modeOf(tmp_ / "server.pem"), 0600u);
}

TEST_F(CaCli, RefusesToOverwriteBundleWithoutForce) {
  std::string out = tmp_ / "dave.pem";
  writeFile(out, "precious", 0600);
  Outcome o = pki_.ca({"client", "dave", "--out", out});
  EXPECT_EQ(o.exit_code, 4);
  EXPECT_EQ(o.err, "pyrun-ca: " + out +
                       " already exists; pass --force to replace it, or --out to write "
                       "somewhere else\n");
  EXPECT_EQ(readFileOrEmpty(out), "precious");
  Outcome forced = pki_.ca({"client", "dave", "--out", out, "--force"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(readFileOrEmpty(out).find("BEGIN PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(modeOf(out), 0600u);
}

TEST_F(CaCli, InitNeverOverwritesAnExistingCa) {
  std::string before = readFileOrEmpty(pki_.caCert());
  Outcome o = ca({"init", "--dir", pki_.caDir()});
  EXPECT_EQ(o.exit_code, 4);
  EXPECT_EQ(o.err, "pyrun-ca: a CA already exists in " + pki_.caDir() + " (" + pki_.caCert() +
                       "); pyrun-ca never overwrites a CA\n");
  EXPECT_EQ(readFileOrEmpty(pki_.caCert()), before);
}

TEST_F(CaCli, InitCreatesPrivateKeyAndDirectoryModes) {
  EXPECT_EQ(modeOf(pki_.caDir() + "/private"), 0700u);
  EXPECT_EQ(modeOf(pki_.caDir() + "/private/ca.key"), 0600u);
  EXPECT_EQ(modeOf(pki_.caCert()), 0644u);
  EXPECT_EQ(modeOf(pki_.crl()), 0644u);
  EXPECT_TRUE(exists(pki_.caDir() + "/index.txt"));
  EXPECT_TRUE(exists(pki_.caDir() + "/issued"));
}

TEST_F(CaCli, DirDefaultsToPyrunCaDirEnvironment) {
  RunOptions env;
  env.env["PYRUN_CA_DIR"] = pki_.caDir();
  env.cwd = tmp_.path();
  Outcome o = ca({"client", "erin"}, env);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(exists(tmp_ / "erin.pem"));
  RunOptions nowhere;
  nowhere.env["PYRUN_CA_DIR"] = tmp_ / "absent";
  Outcome missing = ca({"list"}, nowhere);
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_EQ(missing.err, "pyrun-ca: CA directory " + (tmp_ / "absent") +
                             " does not exist (create one with `pyrun-ca init --dir " +
                             (tmp_ / "absent") + "`, or set --dir or PYRUN_CA_DIR)\n");
}

TEST_F(CaCli, RejectsBadServerNamesWithOneLine) {
  for (const char* name : {"bad_name.example", "999.1.1.1", "x-.example", "a..b"}) {
    Outcome o = pki_.ca({"server", "ok.example", name, "--out", tmp_ / "s.pem"});
    EXPECT_EQ(o.exit_code, 2) << name;
    EXPECT_EQ(
        o.err.rfind(std::string("pyrun-ca: '") + name + "' is not a valid DNS name or IP address: ",
                    0),
        0u)
        << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1);
    EXPECT_FALSE(exists(tmp_ / "s.pem"));
  }
}

TEST_F(CaCli, DoubleDashEndsOptions) {
  Outcome o = ca({"server", "--dir", pki_.caDir(), "--out", tmp_ / "s.pem", "--", "-x.example"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.err,
            "pyrun-ca: '-x.example' is not a valid DNS name or IP address: a label starts "
            "or ends with '-'\n");
}

TEST_F(CaCli, RejectsBadClientNames) {
  Outcome o = pki_.ca({"client", "../etc/x", "--out", tmp_ / "x.pem"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.err,
            "pyrun-ca: client name '../etc/x' must be 1-64 letters, digits, '.', '_', "
            "'@' or '-', starting with a letter or digit\n");
}

TEST_F(CaCli, RejectsNonPositiveDays) {
  for (const char* d : {"0", "-3", "ten"}) {
    Outcome o = pki_.ca({"client", "frank", "--days", d, "--out", tmp_ / "f.pem"});
    EXPECT_EQ(o.exit_code, 2) << d;
    EXPECT_EQ(o.err, std::string("pyrun-ca: --days must be a whole number of days from 1 to "
                                 "36500, not '") +
                         d + "'\n");
  }
  Outcome init = ca({"init", "--dir", tmp_ / "ca2", "--days", "0"});
  EXPECT_EQ(init.exit_code, 2);
  EXPECT_FALSE(exists(tmp_ / "ca2"));
  Outcome crl = pki_.ca({"crl", "--days", "0"});
  EXPECT_EQ(crl.exit_code, 2);
}

TEST_F(CaCli, RejectsDuplicateActiveClientName) {
  pki_.clientBundle("gina");
  Outcome o = pki_.ca({"client", "gina", "--out", tmp_ / "gina2.pem"});
  EXPECT_EQ(o.exit_code, 4);
  EXPECT_NE(o.err.find("pyrun-ca: client 'gina' already has an active certificate (serial "),
            std::string::npos);
  EXPECT_NE(o.err.find("use `pyrun-ca renew gina` or revoke it first"), std::string::npos);
  // After revocation the name is free again.
  pki_.revoke("gina");
  EXPECT_EQ(pki_.ca({"client", "gina", "--out", tmp_ / "gina2.pem"}).exit_code, 0);
}

TEST_F(CaCli, UnknownNameSuggestsCloseMatches) {
  pki_.clientBundle("alice");
  Outcome o = pki_.ca({"revoke", "alcie"});
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_EQ(o.err, "pyrun-ca: no certificate named 'alcie' in " + pki_.caDir() +
                       "; did you mean 'alice'?\n");
  Outcome far = pki_.ca({"show", "zebra"});
  EXPECT_EQ(far.exit_code, 3);
  EXPECT_EQ(far.err, "pyrun-ca: no certificate named 'zebra' in " + pki_.caDir() +
                         " (see `pyrun-ca list --all`)\n");
}

TEST_F(CaCli, RefusesCaDirectoryWithLoosePermissions) {
  ASSERT_EQ(::chmod(pki_.caDir().c_str(), 0777), 0);
  Outcome dir = pki_.ca({"list"});
  EXPECT_EQ(dir.exit_code, 5);
  EXPECT_EQ(dir.err, "pyrun-ca: CA directory " + pki_.caDir() +
                         " has mode 0777: it must not be writable by group or others (chmod "
                         "0755 " +
                         pki_.caDir() + ")\n");
  ASSERT_EQ(::chmod(pki_.caDir().c_str(), 0755), 0);
  std::string key = pki_.caDir() + "/private/ca.key";
  ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
  Outcome k = pki_.ca({"client", "hank", "--out", tmp_ / "hank.pem"});
  EXPECT_EQ(k.exit_code, 5);
  EXPECT_EQ(k.err, "pyrun-ca: CA key " + key +
                       " has mode 0644: it must not be accessible by group or others (chmod 600 " +
                       key + ")\n");
  EXPECT_FALSE(exists(tmp_ / "hank.pem"));
}

TEST_F(CaCli, ReportsUnreadableCaFiles) {
  ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);
  std::vector<std::string> argv = {binary("pyrun-ca"), "list", "--dir", pki_.caDir()};
  if (::getuid() == 0) {
    // root reads everything: run as nobody, who may enter the CA directory but not private/.
    argv.insert(argv.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  } else {
    ASSERT_EQ(::chmod((pki_.caDir() + "/private").c_str(), 0), 0);
  }
  Outcome o = run(argv);
  EXPECT_EQ(o.exit_code, 5) << o.err;
  EXPECT_NE(o.err.find(pki_.caDir() + "/private"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("Permission denied"), std::string::npos) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1);
  ::chmod((pki_.caDir() + "/private").c_str(), 0700);
}

TEST_F(CaCli, ReportsDamagedIndexWithItsLine) {
  std::string index = pki_.caDir() + "/index.txt";
  writeFile(index, readFileOrEmpty(index) + "not an index line\n", 0644);
  Outcome o = pki_.ca({"list"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.err,
            "pyrun-ca: " + index + ":2: expected 8 tab-separated fields (the index is damaged)\n");
}

TEST_F(CaCli, RefusesDirectoryWithoutCa) {
  std::string empty = tmp_ / "empty";
  ASSERT_EQ(::mkdir(empty.c_str(), 0755), 0);
  Outcome o = ca({"client", "ivy", "--dir", empty});
  EXPECT_EQ(o.exit_code, 3);
  EXPECT_NE(o.err.find("holds no CA (no ca.pem)"), std::string::npos) << o.err;
}

TEST_F(CaCli, SecondAdminIsRefusedWhileTheLockIsHeld) {
  std::string lock = pki_.caDir() + "/index.lock";
  int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  Outcome o = pki_.ca({"client", "jack", "--out", tmp_ / "jack.pem"});
  EXPECT_EQ(o.exit_code, 6);
  EXPECT_EQ(o.err, "pyrun-ca: another pyrun-ca is changing the CA in " + pki_.caDir() +
                       " right now (" + lock + " is locked); try again when it has finished\n");
  EXPECT_FALSE(exists(tmp_ / "jack.pem"));
  EXPECT_EQ(pki_.ca({"list"}).exit_code, 0);  // reading needs no lock
  ::close(fd);
  EXPECT_EQ(pki_.ca({"client", "jack", "--out", tmp_ / "jack.pem"}).exit_code, 0);
}

TEST_F(CaCli, ListShowsActiveByDefaultAndEverythingWithAll) {
  pki_.clientBundle("kim");
  pki_.clientBundle("lee");
  pki_.serverBundle();
  pki_.revoke("lee");
  Outcome l = pki_.ca({"list"});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  EXPECT_EQ(l.out.rfind("SERIAL", 0), 0u);
  std::regex kim("[0-9a-f]{32}  client  \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ  valid +kim\n");
  EXPECT_TRUE(std::regex_search(l.out, kim)) << l.out;
  EXPECT_NE(l.out.find("server"), std::string::npos);
  EXPECT_NE(l.out.find("localhost,127.0.0.1,::1\n"), std::string::npos) << l.out;
  EXPECT_EQ(l.out.find("lee"), std::string::npos);
  EXPECT_EQ(l.err, "");  // a fresh CRL: no warning
  Outcome all = pki_.ca({"list", "--all"});
  EXPECT_NE(all.out.find("revoked     lee\n"), std::string::npos) << all.out;
}

TEST_F(CaCli, ListShowsExpiredCertificatesOnlyWithAll) {
  pki_.clientBundle(
      "old", {"--not-before", "2020-01-01T00:00:00Z", "--not-after", "2020-06-01T00:00:00Z"});
  EXPECT_EQ(pki_.ca({"list"}).out.find("old"), std::string::npos);
  Outcome all = pki_.ca({"list", "--all"});
  EXPECT_NE(all.out.find("2020-06-01T00:00:00Z  expired     old\n"), std::string::npos) << all.out;
  // An expired certificate does not block a new one for the same name.
  EXPECT_EQ(pki_.ca({"client", "old", "--out", tmp_ / "old2.pem"}).exit_code, 0);
}

TEST_F(CaCli, ShowByNameSerialAndFileAgree) {
  std::string bundle = pki_.clientBundle("mia");
  Outcome by_name = pki_.ca({"show", "mia"});
  ASSERT_EQ(by_name.exit_code, 0) << by_name.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(by_name.out, m, std::regex("serial:      ([0-9a-f]{32})\n")));
  std::string serial = m[1];
  Outcome by_serial = pki_.ca({"show", serial});
  Outcome by_upper_serial = pki_.ca({"show", [&] {
                                       std::string s = serial;
                                       for (auto& c : s) c = static_cast<char>(std::toupper(c));
                                       return s;
                                     }()});
  Outcome by_file = pki_.ca({"show", bundle});
  EXPECT_EQ(by_serial.out, by_name.out);
  EXPECT_EQ(by_upper_serial.out, by_name.out);
  EXPECT_EQ(by_file.out, by_name.out);
  for (const char* field :
       {"subject:     CN=mia\n", "issuer:      CN=pyrun test CA\n", "kind:        client\n",
        "key:         ECDSA P-256\n", "status:      valid\n", "spki pin:    sha256//"}) {
    EXPECT_NE(by_name.out.find(field), std::string::npos) << field << by_name.out;
  }
  pki_.revoke("mia");
  EXPECT_NE(pki_.ca({"show", bundle}).out.find("status:      revoked on "), std::string::npos);
}

TEST_F(CaCli, ShowPinMatchesOpensslComputation) {
  std::string bundle = pki_.clientBundle("noa");
  Outcome show = pki_.ca({"show", bundle});
  // curl's recipe: DER SubjectPublicKeyInfo, SHA-256, base64.
  Outcome pub = run({"openssl", "x509", "-in", bundle, "-pubkey", "-noout"});
  writeFile(tmp_ / "pub.pem", pub.out);
  Outcome der = run({"sh", "-c",
                     "openssl pkey -pubin -in '" + (tmp_ / "pub.pem") +
                         "' -outform DER | openssl dgst -sha256 -binary | "
                         "openssl base64 -A"});
  ASSERT_EQ(der.exit_code, 0) << der.err;
  EXPECT_NE(show.out.find("spki pin:    sha256//" + der.out + "\n"), std::string::npos)
      << show.out << der.out;
}

TEST_F(CaCli, ShowOfAFileFromAnotherCaWorksWithoutStatus) {
  TempDir other("ca-cli-other");
  Pki foreign(other.path());
  std::string bundle = foreign.clientBundle("olga");
  Outcome o = pki_.ca({"show", bundle});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("subject:     CN=olga"), std::string::npos);
  EXPECT_EQ(o.out.find("status:"), std::string::npos) << o.out;
}

TEST_F(CaCli, RevokeRejectsUnknownReasonAndRepeats) {
  pki_.clientBundle("pat");
  Outcome bad = pki_.ca({"revoke", "pat", "--reason", "lost"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("unknown revocation reason 'lost'"), std::string::npos);
  Outcome ok = pki_.ca({"revoke", "pat", "--reason", "keyCompromise"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("revoked client certificate 'pat'"), std::string::npos);
  Outcome again = pki_.ca({"revoke", "pat"});
  EXPECT_EQ(again.exit_code, 4);
  EXPECT_NE(again.err.find("('pat') is already revoked"), std::string::npos);
}

TEST_F(CaCli, CrlWarnsWhenItExpiresWithinThirtyDays) {
  Outcome fresh = pki_.ca({"crl"});
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_EQ(fresh.err, "");
  Outcome short_crl = pki_.ca({"crl", "--days", "10"});
  ASSERT_EQ(short_crl.exit_code, 0) << short_crl.err;
  std::string warning = "pyrun-ca: warning: the CRL " + pki_.crl() + " expires in ";
  EXPECT_EQ(short_crl.err.rfind(warning, 0), 0u) << short_crl.err;
  EXPECT_NE(short_crl.err.find("run `pyrun-ca crl --dir " + pki_.caDir() + "` to refresh it"),
            std::string::npos);
  Outcome list = pki_.ca({"list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_EQ(list.err.rfind(warning, 0), 0u) << list.err;
  // Revocations keep the configured CRL lifetime, so the warning stays until it is raised.
  EXPECT_EQ(pki_.ca({"crl", "--days", "365"}).err, "");
  EXPECT_EQ(pki_.ca({"list"}).err, "");
}

TEST_F(CaCli, RenewSupersedesAndNeedsForceForTheOldBundle) {
  std::string bundle = pki_.clientBundle("quinn");
  Outcome refused = pki_.ca({"renew", "quinn", "--out", bundle});
  EXPECT_EQ(refused.exit_code, 4);
  EXPECT_EQ(pki_.ca({"list", "--all"}).out.find("superseded"), std::string::npos);
  Outcome renewed = pki_.ca({"renew", "quinn", "--out", bundle, "--force"});
  ASSERT_EQ(renewed.exit_code, 0) << renewed.err;
  EXPECT_NE(renewed.out.find("superseded serial "), std::string::npos);
  Outcome all = pki_.ca({"list", "--all"});
  EXPECT_NE(all.out.find("superseded  quinn\n"), std::string::npos) << all.out;
  EXPECT_NE(all.out.find("valid       quinn\n"), std::string::npos) << all.out;
  Outcome missing = pki_.ca({"renew", "quin", "--out", tmp_ / "q.pem"});
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.err.find("did you mean 'quinn'?"), std::string::npos);
}

TEST_F(CaCli, BadTimesAreRejected) {
  Outcome o =
      pki_.ca({"client", "ray", "--not-after", "2030-02-30T00:00:00Z", "--out", tmp_ / "r.pem"});
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(o.err,
            "pyrun-ca: --not-after '2030-02-30T00:00:00Z' is not a time like "
            "2030-01-31T12:00:00Z (UTC)\n");
  Outcome past_ca = pki_.ca({"client", "ray", "--days", "36500", "--out", tmp_ / "r.pem"});
  EXPECT_EQ(past_ca.exit_code, 2);
  EXPECT_NE(past_ca.err.find("after the CA itself expires"), std::string::npos);
}

}  // namespace
}  // namespace pyrun::test
