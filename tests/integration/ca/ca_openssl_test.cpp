// The issued files judged by a third party: openssl verify, x509, and an s_server/s_client mTLS
// handshake with OpenSSL on both sides.
#include <gtest/gtest.h>

#include <regex>

#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

using std::chrono::seconds;

class CaOpenssl : public ::testing::Test {
 protected:
  // openssl verify of a bundle's leaf (the first certificate in it).
  Outcome verify(const std::string& bundle, const std::string& purpose, bool crl = false) {
    std::vector<std::string> argv = {"openssl", "verify",  "-purpose",
                                     purpose,   "-CAfile", pki_.caCert()};
    if (crl) {
      argv.insert(argv.end(), {"-crl_check", "-CRLfile", pki_.crl()});
    }
    argv.push_back(bundle);
    return run(argv);
  }
  std::string text(const std::string& bundle) {
    Outcome o = run({"openssl", "x509", "-in", bundle, "-noout", "-text"});
    EXPECT_EQ(o.exit_code, 0) << o.err;
    return o.out;
  }

  TempDir tmp_{"ca-openssl"};
  Pki pki_{tmp_.path()};
};

TEST_F(CaOpenssl, ClientCertificatePassesSslclientAndFailsSslserver) {
  std::string bundle = pki_.clientBundle("alice");
  Outcome ok = verify(bundle, "sslclient", true);
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find(": OK"), std::string::npos);
  Outcome wrong = verify(bundle, "sslserver");
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE((wrong.out + wrong.err).find("unsuitable certificate purpose"), std::string::npos)
      << wrong.out << wrong.err;
}

TEST_F(CaOpenssl, ServerCertificatePassesSslserverAndFailsSslclient) {
  std::string bundle = pki_.serverBundle();
  Outcome ok = verify(bundle, "sslserver", true);
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  Outcome wrong = verify(bundle, "sslclient");
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE((wrong.out + wrong.err).find("unsuitable certificate purpose"), std::string::npos);
}

TEST_F(CaOpenssl, CertificateFromAnotherCaFailsVerification) {
  TempDir other("ca-openssl-other");
  Pki foreign(other.path());
  Outcome o = verify(foreign.clientBundle("mallory"), "sslclient");
  EXPECT_NE(o.exit_code, 0);
  EXPECT_NE((o.out + o.err).find("unable to get local issuer certificate"), std::string::npos)
      << o.out << o.err;
}

TEST_F(CaOpenssl, RevokedCertificateFailsCrlCheck) {
  std::string bundle = pki_.clientBundle("bob");
  ASSERT_EQ(verify(bundle, "sslclient", true).exit_code, 0);
  pki_.revoke("bob");
  Outcome o = verify(bundle, "sslclient", true);
  EXPECT_NE(o.exit_code, 0);
  EXPECT_NE((o.out + o.err).find("certificate revoked"), std::string::npos) << o.out << o.err;
}

TEST_F(CaOpenssl, RevokeBySerialWorksToo) {
  std::string bundle = pki_.clientBundle("bo");
  Outcome serial = run({"openssl", "x509", "-in", bundle, "-noout", "-serial"});
  std::string hex = serial.out.substr(serial.out.find('=') + 1);
  hex.pop_back();  // newline
  Outcome r = pki_.ca({"revoke", hex});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE((verify(bundle, "sslclient", true).out + verify(bundle, "sslclient", true).err)
                .find("certificate revoked"),
            std::string::npos);
}

TEST_F(CaOpenssl, RenewedCertificateReplacesTheSupersededOne) {
  std::string old_bundle = pki_.clientBundle("cy");
  std::string new_bundle = tmp_ / "cy-new.pem";
  ASSERT_EQ(pki_.ca({"renew", "cy", "--out", new_bundle}).exit_code, 0);
  Outcome old_check = verify(old_bundle, "sslclient", true);
  EXPECT_NE(old_check.exit_code, 0);
  EXPECT_NE((old_check.out + old_check.err).find("certificate revoked"), std::string::npos);
  EXPECT_EQ(verify(new_bundle, "sslclient", true).exit_code, 0);
}

TEST_F(CaOpenssl, ExpiredAndNotYetValidCertificatesFail) {
  std::string expired = pki_.clientBundle(
      "expired", {"--not-before", "2020-01-01T00:00:00Z", "--not-after", "2020-02-01T00:00:00Z"});
  Outcome e = verify(expired, "sslclient");
  EXPECT_NE(e.exit_code, 0);
  EXPECT_NE((e.out + e.err).find("certificate has expired"), std::string::npos) << e.out << e.err;
  std::string future = pki_.clientBundle(
      "future", {"--not-before", "2030-01-01T00:00:00Z", "--not-after", "2030-02-01T00:00:00Z"});
  Outcome f = verify(future, "sslclient");
  EXPECT_NE(f.exit_code, 0);
  EXPECT_NE((f.out + f.err).find("certificate is not yet valid"), std::string::npos);
}

TEST_F(CaOpenssl, ServerSansAreAutoTyped) {
  std::string bundle = tmp_ / "multi.pem";
  Outcome o =
      pki_.ca({"server", "Node1.Example.org", "10.1.2.3", "fe80::1", "localhost", "--out", bundle});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  std::string t = text(bundle);
  EXPECT_NE(t.find("DNS:node1.example.org, IP Address:10.1.2.3, IP Address:FE80:0:0:0:0:0:0:1, "
                   "DNS:localhost"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("Subject: CN = node1.example.org"), std::string::npos);
  Outcome host = run({"openssl", "verify", "-purpose", "sslserver", "-CAfile", pki_.caCert(),
                      "-verify_ip", "10.1.2.3", bundle});
  EXPECT_EQ(host.exit_code, 0) << host.out << host.err;
  Outcome wrong_ip = run({"openssl", "verify", "-purpose", "sslserver", "-CAfile", pki_.caCert(),
                          "-verify_ip", "10.1.2.4", bundle});
  EXPECT_NE(wrong_ip.exit_code, 0);
}

TEST_F(CaOpenssl, DefaultsAreP256NinetyDaysAndOnePurposeExtensions) {
  std::string t = text(pki_.clientBundle("dee"));
  EXPECT_NE(t.find("ASN1 OID: prime256v1"), std::string::npos) << t;
  EXPECT_NE(t.find("Signature Algorithm: ecdsa-with-SHA256"), std::string::npos);
  EXPECT_NE(t.find("X509v3 Basic Constraints: critical\n                CA:FALSE"),
            std::string::npos);
  EXPECT_NE(t.find("X509v3 Key Usage: critical\n                Digital Signature\n"),
            std::string::npos);
  EXPECT_NE(t.find("X509v3 Extended Key Usage: \n                TLS Web Client Authentication\n"),
            std::string::npos);
  EXPECT_EQ(t.find("TLS Web Server Authentication"), std::string::npos);
  EXPECT_NE(t.find("X509v3 Subject Key Identifier"), std::string::npos);
  EXPECT_NE(t.find("X509v3 Authority Key Identifier"), std::string::npos);
  EXPECT_EQ(t.find("CRL Distribution Points"), std::string::npos);
  // Validity: 90 days (and 5 minutes of backdating), read back with openssl.
  Outcome dates = run({"openssl", "x509", "-in", tmp_ / "dee.pem", "-noout", "-startdate",
                       "-enddate", "-dateopt", "iso_8601"});
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(dates.out, m, std::regex("notBefore=(\\S+ \\S+)Z\nnotAfter=(\\S+ \\S+)Z")))
      << dates.out;
  auto parse = [](std::string s) {
    std::tm tm{};
    strptime(s.c_str(), "%Y-%m-%d %H:%M:%S", &tm);
    return timegm(&tm);
  };
  EXPECT_EQ(parse(m[2]) - parse(m[1]), 90 * 86400 + 300);
  std::string ca = run({"openssl", "x509", "-in", pki_.caCert(), "-noout", "-text"}).out;
  EXPECT_NE(ca.find("CA:TRUE, pathlen:0"), std::string::npos) << ca;
  EXPECT_NE(ca.find("Certificate Sign, CRL Sign"), std::string::npos);
}

TEST_F(CaOpenssl, SerialIsAtLeastSixtyFourBits) {
  Outcome o = run({"openssl", "x509", "-in", pki_.clientBundle("eli"), "-noout", "-serial"});
  EXPECT_TRUE(std::regex_search(o.out, std::regex("^serial=[0-9A-F]{32}\n$"))) << o.out;
}

TEST_F(CaOpenssl, CrlUrlGoesIntoServerCertificatesOnly) {
  TempDir other("ca-openssl-url");
  Outcome init = run({binary("pyrun-ca"), "init", "--dir", other / "ca", "--crl-url",
                      "http://pki.example/crl.pem"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  ASSERT_EQ(run({binary("pyrun-ca"), "server", "host.example", "--dir", other / "ca", "--out",
                 other / "server.pem"})
                .exit_code,
            0);
  ASSERT_EQ(
      run({binary("pyrun-ca"), "client", "fay", "--dir", other / "ca", "--out", other / "fay.pem"})
          .exit_code,
      0);
  EXPECT_NE(text(other / "server.pem").find("URI:http://pki.example/crl.pem"), std::string::npos);
  EXPECT_EQ(text(other / "fay.pem").find("CRL Distribution Points"), std::string::npos);
  Outcome bad = run({binary("pyrun-ca"), "init", "--dir", other / "ca2", "--crl-url",
                     "http://a,URI:http://evil"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("must be an http:// or https:// URL"), std::string::npos);
}

TEST_F(CaOpenssl, Ed25519PkiIssuesEd25519Certificates) {
  TempDir other("ca-openssl-ed");
  ASSERT_EQ(
      run({binary("pyrun-ca"), "init", "--dir", other / "ca", "--key-type", "ed25519"}).exit_code,
      0);
  ASSERT_EQ(
      run({binary("pyrun-ca"), "client", "gus", "--dir", other / "ca", "--out", other / "gus.pem"})
          .exit_code,
      0);
  std::string t = text(other / "gus.pem");
  EXPECT_NE(t.find("Public Key Algorithm: ED25519"), std::string::npos) << t;
  Outcome v = run({"openssl", "verify", "-purpose", "sslclient", "-CAfile", other / "ca/ca.pem",
                   "-crl_check", "-CRLfile", other / "ca/crl.pem", other / "gus.pem"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  Outcome bad = run({binary("pyrun-ca"), "init", "--dir", other / "ca3", "--key-type", "rsa"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, "pyrun-ca: unknown key type 'rsa': use p256 or ed25519\n");
}

TEST_F(CaOpenssl, BundleKeyIsPkcs8AndMatchesTheLeaf) {
  std::string bundle = pki_.clientBundle("hal");
  std::string pem = readFileOrEmpty(bundle);
  EXPECT_NE(pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  EXPECT_EQ(pem.find("EC PRIVATE KEY"), std::string::npos);
  Outcome cert_pub = run({"openssl", "x509", "-in", bundle, "-noout", "-pubkey"});
  Outcome key_pub = run({"openssl", "pkey", "-in", bundle, "-pubout"});
  ASSERT_EQ(key_pub.exit_code, 0) << key_pub.err;
  EXPECT_EQ(cert_pub.out, key_pub.out);
}

// openssl s_server with the issued server bundle, requiring a client certificate from our CA
// and checking our CRL; it serves one connection and echoes what it receives.
class MtlsHandshake : public CaOpenssl {
 protected:
  struct Result {
    Outcome server;
    Outcome client;
  };
  Result handshake(const std::string& client_bundle) {
    Child server({"openssl", "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-tls1_3",
                  "-cert", pki_.serverBundle(), "-key", pki_.serverBundle(), "-CAfile",
                  pki_.caCert(), "-Verify", "2", "-verify_return_error", "-crl_check", "-CRL",
                  pki_.crl()});
    std::string out = server.readStdoutUntil("ACCEPT", seconds(30));
    std::regex accept("ACCEPT 127\\.0\\.0\\.1:(\\d+)\n");
    std::smatch m;
    Result r;
    for (int i = 0;
         i < 30 && out.find("ACCEPT") != std::string::npos && !std::regex_search(out, m, accept);
         ++i) {
      // s_server writes the line at once; should it arrive in pieces, read on until its end.
      out = server.readStdoutUntil(out.substr(out.find("ACCEPT")) + "\n", seconds(1));
    }
    if (!std::regex_search(out, m, accept)) {
      ADD_FAILURE() << "openssl s_server did not start: " << out;
      return r;
    }
    std::string port = m[1].str();
    RunOptions opts;
    opts.stdin_data = "hello from the client\n";
    opts.timeout = seconds(60);
    r.client = run({"openssl", "s_client", "-connect", "127.0.0.1:" + port, "-tls1_3", "-cert",
                    client_bundle, "-key", client_bundle, "-CAfile", pki_.caCert(),
                    "-verify_return_error", "-verify_hostname", "localhost"},
                   opts);
    r.server = server.wait(seconds(60));
    return r;
  }
};

TEST_F(MtlsHandshake, IssuedFilesCompleteAnMtlsHandshake) {
  Result r = handshake(pki_.clientBundle("ivy"));
  EXPECT_EQ(r.client.exit_code, 0) << r.client.out << r.client.err;
  EXPECT_NE(r.client.out.find("Verify return code: 0 (ok)"), std::string::npos) << r.client.out;
  EXPECT_NE(r.client.out.find("New, TLSv1.3, Cipher is"), std::string::npos) << r.client.out;
  // The server verified the client certificate and received application data over it.
  EXPECT_NE(r.server.err.find("depth=0 CN = ivy\nverify return:1"), std::string::npos)
      << r.server.out << r.server.err;
  EXPECT_NE(r.server.out.find("hello from the client"), std::string::npos) << r.server.out;
}

TEST_F(MtlsHandshake, RevokedClientIsRefusedWithCertificateRevoked) {
  std::string bundle = pki_.clientBundle("jo");
  pki_.revoke("jo");
  Result r = handshake(bundle);
  std::string all = r.server.out + r.server.err;
  EXPECT_NE(all.find("certificate revoked"), std::string::npos) << all;
  EXPECT_EQ(r.server.out.find("hello from the client"), std::string::npos);
}

TEST_F(MtlsHandshake, ServerCertificateIsRefusedAsAClientCertificate) {
  Result r = handshake(pki_.serverBundle());
  std::string all = r.server.out + r.server.err;
  // OpenSSL's verify text; the TLS alert the client sees reads "unsupported certificate".
  EXPECT_NE(all.find("unsuitable certificate purpose"), std::string::npos) << all;
  EXPECT_EQ(r.server.out.find("hello from the client"), std::string::npos);
}

TEST_F(MtlsHandshake, ExpiredClientIsRefused) {
  std::string bundle = pki_.clientBundle(
      "kai", {"--not-before", "2020-01-01T00:00:00Z", "--not-after", "2020-02-01T00:00:00Z"});
  Result r = handshake(bundle);
  std::string all = r.server.out + r.server.err;
  EXPECT_NE(all.find("certificate has expired"), std::string::npos) << all;
  EXPECT_EQ(r.server.out.find("hello from the client"), std::string::npos);
}

}  // namespace
}  // namespace pyrun::test
