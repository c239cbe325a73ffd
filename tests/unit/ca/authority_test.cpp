// The CA library: directory layout and modes, certificate contents, revocation, the CRL, locking.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/x509v3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/certificate_authority.h"
#include "common/file.h"
#include "support/temp_dir.h"

namespace pyrun::ca {
namespace {

using pyrun::test::TempDir;

unsigned modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class AuthorityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitOptions o;
    o.dir = dir();
    o.name = "unit CA";
    auto r = initCa(o);
    ASSERT_TRUE(r) << r.error().detail();
  }
  std::string dir() const { return tmp_ / "ca"; }
  CertificateAuthority open(bool lock = true) {
    auto ca = CertificateAuthority::open(dir(), lock);
    EXPECT_TRUE(ca) << ca.error().detail();
    return std::move(*ca);
  }
  Issued issueClient(const std::string& name) {
    IssueOptions o;
    o.kind = Kind::kClient;
    o.names = {name};
    o.out = tmp_ / (name + ".pem");
    auto ca = open();
    auto r = ca.issue(o);
    EXPECT_TRUE(r) << r.error().detail();
    return *r;
  }
  X509Ptr leafOf(const std::string& bundle) {
    auto pem = readFile(bundle);
    EXPECT_TRUE(pem);
    auto cert = parseCertificatePem(*pem, bundle);
    EXPECT_TRUE(cert);
    return std::move(*cert);
  }

  TempDir tmp_{"ca-unit"};
};

TEST_F(AuthorityTest, InitCreatesLayoutWithPrivateModes) {
  EXPECT_EQ(modeOf(dir()), 0755u);
  EXPECT_EQ(modeOf(dir() + "/private"), 0700u);
  EXPECT_EQ(modeOf(dir() + "/private/ca.key"), 0600u);
  EXPECT_EQ(modeOf(dir() + "/ca.pem"), 0644u);
  EXPECT_EQ(modeOf(dir() + "/crl.pem"), 0644u);
  EXPECT_EQ(modeOf(dir() + "/index.txt"), 0644u);
  EXPECT_EQ(modeOf(dir() + "/issued"), 0755u);
}

TEST_F(AuthorityTest, InitRefusesGroupWritableDirectoryBeforeWritingAnything) {
  std::string shared = tmp_ / "shared";
  ASSERT_EQ(::mkdir(shared.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(shared.c_str(), 0775), 0);
  InitOptions o;
  o.dir = shared;
  auto r = initCa(o);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::kPermission));
  EXPECT_EQ(r.error().detail(), "CA directory " + shared +
                                    " has mode 0775: it must not be writable by group or others "
                                    "(chmod 0755 " +
                                    shared + ")");
  EXPECT_NE(::access((shared + "/private").c_str(), F_OK), 0);
}

TEST_F(AuthorityTest, CaCertificateIsPathlenZeroCa) {
  auto ca = open(false);
  X509* cert = ca.certificate();
  EXPECT_EQ(commonName(cert), "unit CA");
  EXPECT_NE(X509_get_extension_flags(cert) & EXFLAG_CA, 0u);
  EXPECT_EQ(X509_get_pathlen(cert), 0);
  EXPECT_EQ(X509_get_key_usage(cert), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_EQ(describeKey(X509_get0_pubkey(cert)), "ECDSA P-256");
  auto nb = toTimeT(X509_get0_notBefore(cert));
  auto na = toTimeT(X509_get0_notAfter(cert));
  EXPECT_NEAR(static_cast<double>(*na - *nb), 3650.0 * 86400 + 300, 5);
}

TEST_F(AuthorityTest, InitRefusesExistingCaAndLeavesItUnchanged) {
  auto before = readFile(dir() + "/private/ca.key");
  InitOptions o;
  o.dir = dir();
  auto r = initCa(o);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::kAlreadyExists));
  EXPECT_EQ(r.error().detail(), "a CA already exists in " + dir() + " (" + dir() +
                                    "/ca.pem); pyrun-ca never overwrites a CA");
  EXPECT_EQ(readFile(dir() + "/private/ca.key").value(), before.value());
}

TEST_F(AuthorityTest, ClientCertificateHasClientAuthOnlyAndLinkedKeyIds) {
  Issued issued = issueClient("alice");
  X509Ptr leaf = leafOf(issued.bundle_path);
  auto ca = open(false);
  EXPECT_EQ(commonName(leaf.get()), "alice");
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));
  EXPECT_EQ(X509_get_key_usage(leaf.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extension_flags(leaf.get()) & EXFLAG_CA, 0u);
  EXPECT_EQ(X509_check_issued(ca.certificate(), leaf.get()), X509_V_OK);
  const ASN1_OCTET_STRING* aki = X509_get0_authority_key_id(leaf.get());
  const ASN1_OCTET_STRING* ca_ski = X509_get0_subject_key_id(ca.certificate());
  ASSERT_NE(aki, nullptr);
  ASSERT_NE(ca_ski, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(aki, ca_ski), 0);
  EXPECT_NE(X509_get0_subject_key_id(leaf.get()), nullptr);
  EXPECT_TRUE(subjectAltNames(leaf.get()).empty());
  EXPECT_EQ(issued.entry.names, std::vector<std::string>{"alice"});
}

TEST_F(AuthorityTest, SerialsAreRandomPositiveAndSixteenBytes) {
  X509Ptr a = leafOf(issueClient("a").bundle_path);
  X509Ptr b = leafOf(issueClient("b").bundle_path);
  for (X509* cert : {a.get(), b.get()}) {
    const ASN1_INTEGER* serial = X509_get0_serialNumber(cert);
    std::unique_ptr<BIGNUM, OsslFree<BIGNUM, BN_free>> bn(ASN1_INTEGER_to_BN(serial, nullptr));
    EXPECT_FALSE(BN_is_negative(bn.get()));
    EXPECT_EQ(BN_num_bytes(bn.get()), 16);
    EXPECT_GE(BN_num_bits(bn.get()), 64);
  }
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(a.get()), X509_get0_serialNumber(b.get())), 0);
}

TEST_F(AuthorityTest, BundleIsLeafThenCaThenPkcs8KeyWithMode0600) {
  Issued issued = issueClient("alice");
  EXPECT_EQ(modeOf(issued.bundle_path), 0600u);
  std::string pem = readFile(issued.bundle_path).value();
  size_t first = pem.find("-----BEGIN CERTIFICATE-----");
  size_t second = pem.find("-----BEGIN CERTIFICATE-----", first + 1);
  size_t key = pem.find("-----BEGIN PRIVATE KEY-----");
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(second, std::string::npos);
  ASSERT_NE(key, std::string::npos);
  EXPECT_LT(first, second);
  EXPECT_LT(second, key);
  std::string ca_pem = readFile(dir() + "/ca.pem").value();
  EXPECT_EQ(pem.substr(second, ca_pem.size()), ca_pem);
  auto k = parsePrivateKeyPem(pem.substr(key), "bundle");
  ASSERT_TRUE(k);
  X509Ptr leaf = leafOf(issued.bundle_path);
  EXPECT_EQ(X509_check_private_key(leaf.get(), k->get()), 1);
  // The CA keeps the certificate, never the key.
  std::string kept = readFile(dir() + "/issued/" + issued.entry.serial + ".pem").value();
  EXPECT_EQ(kept.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(pem.substr(0, kept.size()), kept);
}

TEST_F(AuthorityTest, ServerCertificateCarriesTypedSansAndCrlUrlWhenConfigured) {
  TempDir other("ca-unit-url");
  InitOptions o;
  o.dir = other / "ca";
  o.crl_url = "https://pki.example/crl.pem";
  ASSERT_TRUE(initCa(o));
  auto ca = CertificateAuthority::open(other / "ca", true);
  ASSERT_TRUE(ca);
  IssueOptions io;
  io.kind = Kind::kServer;
  io.names = {"Build.Example", "10.0.0.1", "::1", "build.example"};
  io.out = other / "server.pem";
  auto issued = ca->issue(io);
  ASSERT_TRUE(issued) << issued.error().detail();
  X509Ptr leaf = leafOf(io.out);
  EXPECT_EQ(commonName(leaf.get()), "build.example");
  EXPECT_EQ(subjectAltNames(leaf.get()),
            (std::vector<std::string>{"DNS:build.example", "IP:10.0.0.1", "IP:::1"}));
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  auto* dps = static_cast<CRL_DIST_POINTS*>(
      X509_get_ext_d2i(leaf.get(), NID_crl_distribution_points, nullptr, nullptr));
  ASSERT_NE(dps, nullptr);
  ASSERT_EQ(sk_DIST_POINT_num(dps), 1);
  GENERAL_NAMES* full = sk_DIST_POINT_value(dps, 0)->distpoint->name.fullname;
  GENERAL_NAME* uri = sk_GENERAL_NAME_value(full, 0);
  ASSERT_EQ(uri->type, GEN_URI);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(
                ASN1_STRING_get0_data(uri->d.uniformResourceIdentifier))),
            "https://pki.example/crl.pem");
  CRL_DIST_POINTS_free(dps);
}

TEST_F(AuthorityTest, RejectsCrlUrlsThatCouldInjectOtherValues) {
  for (const char* url : {"ftp://x/crl", "http://a,URI:http://b", "http://a b", "crl.pem"}) {
    InitOptions o;
    o.dir = tmp_ / "other";
    o.crl_url = url;
    auto r = initCa(o);
    ASSERT_FALSE(r) << url;
    EXPECT_EQ(r.error().detail(), std::string("--crl-url '") + url +
                                      "' must be an http:// or https:// URL without spaces or "
                                      "commas");
  }
}

TEST_F(AuthorityTest, Ed25519CaIssuesEd25519Leaves) {
  TempDir other("ca-unit-ed");
  InitOptions o;
  o.dir = other / "ca";
  o.key_type = KeyType::kEd25519;
  ASSERT_TRUE(initCa(o));
  auto ca = CertificateAuthority::open(other / "ca", true);
  ASSERT_TRUE(ca) << ca.error().detail();
  EXPECT_EQ(describeKey(X509_get0_pubkey(ca->certificate())), "Ed25519");
  IssueOptions io;
  io.names = {"eve"};
  io.out = other / "eve.pem";
  ASSERT_TRUE(ca->issue(io));
  X509Ptr leaf = leafOf(io.out);
  EXPECT_EQ(describeKey(X509_get0_pubkey(leaf.get())), "Ed25519");
  EXPECT_EQ(X509_verify(leaf.get(), X509_get0_pubkey(ca->certificate())), 1);
}

TEST_F(AuthorityTest, LeafValidityDefaultsToDaysAndHonoursExplicitTimes) {
  auto ca = open();
  IssueOptions o;
  o.names = {"d30"};
  o.days = 30;
  o.out = tmp_ / "d30.pem";
  auto issued = ca.issue(o);
  ASSERT_TRUE(issued);
  EXPECT_NEAR(static_cast<double>(issued->entry.not_after - issued->entry.not_before),
              30.0 * 86400 + 300, 5);
  IssueOptions fixed;
  fixed.names = {"fixed"};
  fixed.not_before = parseTime("2020-01-01T00:00:00Z", "x").value();
  fixed.not_after = parseTime("2020-02-01T00:00:00Z", "x").value();
  fixed.out = tmp_ / "fixed.pem";
  ASSERT_TRUE(ca.issue(fixed));
  X509Ptr leaf = leafOf(fixed.out);
  EXPECT_EQ(toTimeT(X509_get0_notBefore(leaf.get())).value(), *fixed.not_before);
  EXPECT_EQ(toTimeT(X509_get0_notAfter(leaf.get())).value(), *fixed.not_after);
}

TEST_F(AuthorityTest, RefusesValidityOutsideTheCaOrBackwards) {
  auto ca = open();
  IssueOptions o;
  o.names = {"long"};
  o.days = 36500;
  o.out = tmp_ / "long.pem";
  auto r = ca.issue(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("after the CA itself expires"), std::string::npos);
  IssueOptions back;
  back.names = {"back"};
  back.not_before = parseTime("2021-01-01T00:00:00Z", "x").value();
  back.not_after = parseTime("2020-01-01T00:00:00Z", "x").value();
  back.out = tmp_ / "back.pem";
  auto b = ca.issue(back);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().detail(),
            "--not-after 2020-01-01T00:00:00Z is not later than --not-before "
            "2021-01-01T00:00:00Z");
  EXPECT_TRUE(ca.entries().empty());
}

TEST_F(AuthorityTest, RefusesSecondActiveClientWithSameName) {
  issueClient("alice");
  auto ca = open();
  IssueOptions o;
  o.names = {"alice"};
  o.out = tmp_ / "alice2.pem";
  auto r = ca.issue(o);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::kAlreadyExists));
  EXPECT_NE(r.error().detail().find("client 'alice' already has an active certificate"),
            std::string::npos);
  EXPECT_EQ(::access(o.out.c_str(), F_OK), -1);
}

TEST_F(AuthorityTest, NeverOverwritesABundleWithoutForce) {
  writeNewFile(tmp_ / "alice.pem", "keep me", 0600).value();
  auto ca = open();
  IssueOptions o;
  o.names = {"alice"};
  o.out = tmp_ / "alice.pem";
  auto r = ca.issue(o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail(), o.out +
                                    " already exists; pass --force to replace it, or --out "
                                    "to write somewhere else");
  EXPECT_EQ(readFile(o.out).value(), "keep me");
  EXPECT_TRUE(ca.entries().empty());
  o.force = true;
  ASSERT_TRUE(ca.issue(o));
  EXPECT_NE(readFile(o.out).value().find("BEGIN PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(modeOf(o.out), 0600u);
}

TEST_F(AuthorityTest, UndoesTheRecordWhenTheBundleCannotBeWritten) {
  auto ca = open();
  IssueOptions o;
  o.names = {"alice"};
  o.out = tmp_ / "no-such-dir/alice.pem";
  auto r = ca.issue(o);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::kNotFound)) << r.error().detail();
  EXPECT_TRUE(ca.entries().empty());
  auto reopened = open(false);
  EXPECT_TRUE(reopened.entries().empty());
  // The name is free again.
  o.out = tmp_ / "alice.pem";
  EXPECT_TRUE(ca.issue(o));
}

TEST_F(AuthorityTest, RevokeWritesReasonIntoCrlAndUnknownNamesSuggestMatches) {
  Issued alice = issueClient("alice");
  auto ca = open();
  auto missing = ca.revoke("alcie", Reason::kUnspecified);
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(Errc::kNotFound));
  EXPECT_EQ(missing.error().detail(),
            "no certificate named 'alcie' in " + dir() + "; did you mean 'alice'?");
  auto revoked = ca.revoke("alice", Reason::kKeyCompromise);
  ASSERT_TRUE(revoked) << revoked.error().detail();
  EXPECT_EQ(revoked->status, Status::kRevoked);
  auto crl = parseCrlPem(readFile(dir() + "/crl.pem").value(), "crl.pem").value();
  EXPECT_EQ(X509_CRL_verify(crl.get(), X509_get0_pubkey(ca.certificate())), 1);
  X509Ptr leaf = leafOf(alice.bundle_path);
  X509_REVOKED* entry = nullptr;
  ASSERT_EQ(X509_CRL_get0_by_cert(crl.get(), &entry, leaf.get()), 1);
  auto* reason = static_cast<ASN1_ENUMERATED*>(
      X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, nullptr, nullptr));
  ASSERT_NE(reason, nullptr);
  EXPECT_EQ(ASN1_ENUMERATED_get(reason), 1);  // keyCompromise
  ASN1_ENUMERATED_free(reason);
  auto again = ca.revoke(alice.entry.serial, Reason::kUnspecified);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().detail().find("is already revoked"), std::string::npos);
}

TEST_F(AuthorityTest, RenewSupersedesOldCertificateInTheSameStep) {
  Issued old = issueClient("bob");
  auto ca = open();
  IssueOptions o;
  o.out = tmp_ / "bob-new.pem";
  auto renewed = ca.renew("bob", o);
  ASSERT_TRUE(renewed) << renewed.error().detail();
  EXPECT_NE(renewed->entry.serial, old.entry.serial);
  EXPECT_EQ(renewed->entry.kind, Kind::kClient);
  EXPECT_EQ(ca.bySerial(old.entry.serial)->status, Status::kSuperseded);
  EXPECT_EQ(ca.bySerial(old.entry.serial)->reason, Reason::kSuperseded);
  auto crl = parseCrlPem(readFile(dir() + "/crl.pem").value(), "crl.pem").value();
  X509_REVOKED* entry = nullptr;
  EXPECT_EQ(X509_CRL_get0_by_cert(crl.get(), &entry, leafOf(old.bundle_path).get()), 1);
  EXPECT_EQ(X509_CRL_get0_by_cert(crl.get(), &entry, leafOf(o.out).get()), 0);
  auto found = ca.find("bob");
  ASSERT_TRUE(found);
  EXPECT_EQ(found->serial, renewed->entry.serial);
}

TEST_F(AuthorityTest, CrlNumberIncreasesWithEveryCrl) {
  auto ca = open();
  auto number = [&] {
    auto crl = parseCrlPem(readFile(dir() + "/crl.pem").value(), "crl.pem").value();
    auto* n = static_cast<ASN1_INTEGER*>(
        X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr));
    long v = ASN1_INTEGER_get(n);
    ASN1_INTEGER_free(n);
    return v;
  };
  long first = number();
  ASSERT_TRUE(ca.refreshCrl(365));
  EXPECT_EQ(number(), first + 1);
}

TEST_F(AuthorityTest, WarnsWhenCrlExpiresWithinThirtyDays) {
  auto ca = open();
  std::time_t now = std::time(nullptr);
  EXPECT_EQ(ca.crlWarning(now).value(), "");
  ASSERT_TRUE(ca.refreshCrl(10));
  std::string soon = ca.crlWarning(now).value();
  EXPECT_NE(soon.find("warning: the CRL " + dir() + "/crl.pem expires in"), std::string::npos);
  EXPECT_NE(soon.find("run `pyrun-ca crl --dir " + dir() + "` to refresh it"), std::string::npos);
  std::string expired = ca.crlWarning(now + 11 * 86400).value();
  EXPECT_NE(expired.find("expired on"), std::string::npos);
  EXPECT_NE(expired.find("pyrund refuses every client"), std::string::npos);
  ASSERT_TRUE(ca.refreshCrl(31));
  EXPECT_EQ(ca.crlWarning(now).value(), "");
}

TEST_F(AuthorityTest, OpenReportsMissingDirectory) {
  auto r = CertificateAuthority::open(tmp_ / "nope", false);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::kNotFound));
  EXPECT_NE(r.error().detail().find("CA directory " + (tmp_ / "nope") + " does not exist"),
            std::string::npos);
}

TEST_F(AuthorityTest, OpenRefusesLoosePermissions) {
  struct Case {
    std::string path;
    mode_t loose, fixed;
    std::string message;
  };
  std::vector<Case> cases = {
      {dir(), 0777, 0755, "CA directory " + dir() + " has mode 0777"},
      {dir() + "/private", 0750, 0700, "private key directory " + dir() + "/private has mode 0750"},
      {dir() + "/private/ca.key", 0640, 0600, "CA key " + dir() + "/private/ca.key has mode 0640"},
  };
  for (const auto& c : cases) {
    ASSERT_EQ(::chmod(c.path.c_str(), c.loose), 0);
    auto r = CertificateAuthority::open(dir(), false);
    ASSERT_FALSE(r) << c.path;
    EXPECT_TRUE(r.error().is(Errc::kPermission));
    EXPECT_NE(r.error().detail().find(c.message), std::string::npos) << r.error().detail();
    ASSERT_EQ(::chmod(c.path.c_str(), c.fixed), 0);
    EXPECT_TRUE(CertificateAuthority::open(dir(), false));
  }
}

TEST_F(AuthorityTest, SecondWriterIsToldTheCaIsLocked) {
  auto holder = open(true);
  auto second = CertificateAuthority::open(dir(), true);
  ASSERT_FALSE(second);
  EXPECT_TRUE(second.error().is(Errc::kBusy));
  EXPECT_NE(second.error().detail().find("another pyrun-ca is changing the CA in " + dir()),
            std::string::npos);
  // Readers (list, show) do not need the lock.
  EXPECT_TRUE(CertificateAuthority::open(dir(), false));
}

TEST_F(AuthorityTest, DescribeShowsPinAndStatus) {
  Issued alice = issueClient("alice");
  X509Ptr leaf = leafOf(alice.bundle_path);
  std::string text = describeCertificate(leaf.get(), &alice.entry, std::time(nullptr)).value();
  EXPECT_NE(text.find("subject:     CN=alice\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kind:        client\n"), std::string::npos);
  EXPECT_NE(text.find("key:         ECDSA P-256\n"), std::string::npos);
  EXPECT_NE(text.find("status:      valid\n"), std::string::npos);
  EXPECT_NE(text.find("spki pin:    " + spkiPin(leaf.get()).value()), std::string::npos);
  EXPECT_EQ(spkiPin(leaf.get()).value().rfind("sha256//", 0), 0u);
  EXPECT_EQ(spkiPin(leaf.get()).value().size(), 8u + 44u);
}

}  // namespace
}  // namespace pyrun::ca
