// Bundles, pins, identities and context settings of the TLS layer, without a connection.
#include "tls/tls.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <boost/asio/ssl/error.hpp>

#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

// The PEM blocks of a file, in order, each with its BEGIN/END lines.
std::vector<std::string> pemBlocks(const std::string& pem) {
  std::vector<std::string> blocks;
  size_t at = 0;
  while ((at = pem.find("-----BEGIN ", at)) != std::string::npos) {
    size_t end = pem.find("-----END ", at);
    end = pem.find('\n', end);
    blocks.push_back(pem.substr(at, end + 1 - at));
    at = end;
  }
  return blocks;
}

boost::system::error_code sslReason(int reason) {
  return {static_cast<int>(ERR_PACK(ERR_LIB_SSL, 0, reason)),
          boost::asio::error::get_ssl_category()};
}

TEST(CertificateRejection, NamesTheAlert) {
  EXPECT_EQ(tls::certificateRejection(sslReason(SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED)), "revoked");
  EXPECT_EQ(tls::certificateRejection(sslReason(SSL_R_TLSV1_ALERT_UNKNOWN_CA)),
            "not issued by the server's CA");
  EXPECT_EQ(tls::certificateRejection(sslReason(SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED)),
            "expired (or not yet valid)");
  EXPECT_EQ(tls::certificateRejection(sslReason(SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)),
            "no certificate was sent");
}

TEST(CertificateRejection, OtherFailuresAreNotRejections) {
  EXPECT_FALSE(tls::certificateRejection(sslReason(SSL_R_WRONG_VERSION_NUMBER)));
  // An alert, but not about the client's certificate.
  EXPECT_FALSE(tls::certificateRejection(sslReason(SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)));
  EXPECT_FALSE(tls::certificateRejection(
      boost::system::error_code(ECONNRESET, boost::system::system_category())));
}

class TlsTest : public ::testing::Test {
 protected:
  TlsTest() : pki_(dir_.path()) {}

  Result<tls::Bundle> parse(const std::string& pem) { return tls::parseBundle(pem, "test.pem"); }

  TempDir dir_{"tls-unit"};
  Pki pki_;
};

TEST_F(TlsTest, ParsesIssuedBundle) {
  auto bundle = tls::loadBundle(pki_.clientBundle("alice"));
  ASSERT_TRUE(bundle) << bundle.error().detail();
  ASSERT_TRUE(bundle->certificate && bundle->ca && bundle->key);
  auto leaf = tls::identityOf(bundle->certificate.get());
  auto ca = tls::identityOf(bundle->ca.get());
  ASSERT_TRUE(leaf && ca);
  EXPECT_EQ(leaf->common_name, "alice");
  EXPECT_EQ(ca->common_name, "pyrun test CA");
  EXPECT_EQ(leaf->spki_pin.substr(0, 8), "sha256//");
  EXPECT_EQ(leaf->spki_pin.size(), 8u + 44u);
  EXPECT_EQ(leaf->serial.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(leaf->serial.front(), '0');
}

TEST_F(TlsTest, LeavesNoOpenSslErrorQueued) {
  // A stale queue entry would be reported as the reason of the next, unrelated TLS failure.
  auto blocks = pemBlocks(readFileOrEmpty(pki_.clientBundle("alice")));
  ERR_clear_error();
  EXPECT_TRUE(parse(blocks[0] + blocks[1] + blocks[2]));
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_FALSE(parse(blocks[0] + blocks[1]));
  EXPECT_EQ(ERR_peek_error(), 0u);
  std::string broken = blocks[2];
  broken[broken.find('\n') + 10] ^= 1;
  EXPECT_FALSE(parse(blocks[0] + blocks[1] + broken));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsTest, RejectsTextWithoutPem) {
  auto bundle = parse("this is not a certificate\n");
  ASSERT_FALSE(bundle);
  EXPECT_EQ(bundle.error().detail(), "test.pem: no certificate");
}

TEST_F(TlsTest, RejectsBundleWithoutKey) {
  auto blocks = pemBlocks(readFileOrEmpty(pki_.clientBundle("alice")));
  ASSERT_EQ(blocks.size(), 3u);
  auto bundle = parse(blocks[0] + blocks[1]);
  ASSERT_FALSE(bundle);
  EXPECT_EQ(bundle.error().detail(), "test.pem: no private key");
}

TEST_F(TlsTest, RejectsKeyOnly) {
  auto blocks = pemBlocks(readFileOrEmpty(pki_.clientBundle("alice")));
  auto bundle = parse(blocks[2]);
  ASSERT_FALSE(bundle);
  EXPECT_EQ(bundle.error().detail(), "test.pem: no certificate");
}

TEST_F(TlsTest, RejectsKeyOfAnotherCertificate) {
  auto alice = pemBlocks(readFileOrEmpty(pki_.clientBundle("alice")));
  auto bob = pemBlocks(readFileOrEmpty(pki_.clientBundle("bob")));
  auto bundle = parse(alice[0] + alice[1] + bob[2]);
  ASSERT_FALSE(bundle);
  EXPECT_TRUE(bundle.error().is(Errc::kCrypto));
  EXPECT_NE(
      bundle.error().detail().find("test.pem: the private key does not match the certificate"),
      std::string::npos)
      << bundle.error().detail();
}

TEST_F(TlsTest, RejectsMoreThanTwoCertificates) {
  auto blocks = pemBlocks(readFileOrEmpty(pki_.clientBundle("alice")));
  auto bundle = parse(blocks[0] + blocks[1] + blocks[1] + blocks[2]);
  ASSERT_FALSE(bundle);
  EXPECT_NE(bundle.error().detail().find("more than two certificates"), std::string::npos);
}

TEST_F(TlsTest, RejectsCorruptBase64) {
  auto blocks = pemBlocks(readFileOrEmpty(pki_.clientBundle("alice")));
  std::string broken = blocks[0];
  broken[broken.find('\n') + 5] = '!';
  auto bundle = parse(broken + blocks[1] + blocks[2]);
  ASSERT_FALSE(bundle);
  EXPECT_TRUE(bundle.error().is(Errc::kCrypto)) << bundle.error().detail();
  EXPECT_EQ(bundle.error().detail().rfind("test.pem: ", 0), 0u) << bundle.error().detail();
}

TEST_F(TlsTest, RejectsEncryptedKey) {
  std::string alice = pki_.clientBundle("alice");
  auto blocks = pemBlocks(readFileOrEmpty(alice));
  Outcome enc = run({"openssl", "pkcs8", "-topk8", "-in", alice, "-passout", "pass:secret"});
  ASSERT_EQ(enc.exit_code, 0) << enc.err;
  auto bundle = parse(blocks[0] + blocks[1] + enc.out);
  ASSERT_FALSE(bundle);
  EXPECT_EQ(bundle.error().detail(), "test.pem: encrypted private keys are not supported");
}

TEST_F(TlsTest, RejectsUnexpectedBlock) {
  auto blocks = pemBlocks(readFileOrEmpty(pki_.clientBundle("alice")));
  auto crl = pemBlocks(readFileOrEmpty(pki_.crl()));
  ASSERT_EQ(crl.size(), 1u);
  auto bundle = parse(blocks[0] + blocks[1] + blocks[2] + crl[0]);
  ASSERT_FALSE(bundle);
  EXPECT_EQ(bundle.error().detail(), "test.pem: unexpected PEM block \"X509 CRL\"");
}

TEST_F(TlsTest, RefusesBundleReadableByGroup) {
  std::string alice = pki_.clientBundle("alice");
  ASSERT_EQ(::chmod(alice.c_str(), 0640), 0);
  auto bundle = tls::loadBundle(alice);
  ASSERT_FALSE(bundle);
  EXPECT_TRUE(bundle.error().is(Errc::kPermission));
  EXPECT_NE(bundle.error().detail().find("has mode 0640"), std::string::npos);
  ASSERT_EQ(::chmod(alice.c_str(), 0600), 0);
  EXPECT_TRUE(tls::loadBundle(alice));
}

TEST_F(TlsTest, ReportsMissingBundle) {
  auto bundle = tls::loadBundle(dir_ / "missing.pem");
  ASSERT_FALSE(bundle);
  EXPECT_TRUE(bundle.error().is(Errc::kNotFound));
  EXPECT_NE(bundle.error().detail().find(dir_ / "missing.pem"), std::string::npos);
}

TEST_F(TlsTest, ParsesPins) {
  auto alice = tls::loadBundle(pki_.clientBundle("alice"));
  ASSERT_TRUE(alice);
  std::string pin = tls::identityOf(alice->certificate.get())->spki_pin;
  std::string other = tls::identityOf(alice->ca.get())->spki_pin;
  auto one = tls::parsePins(pin);
  ASSERT_TRUE(one) << one.error().detail();
  EXPECT_EQ(*one, std::vector<std::string>{pin});
  auto two = tls::parsePins(other + ";" + pin);
  ASSERT_TRUE(two);
  EXPECT_EQ(*two, (std::vector<std::string>{other, pin}));
}

TEST_F(TlsTest, RejectsMalformedPins) {
  const std::string good = "sha256//" + std::string(43, 'A') + "=";
  ASSERT_TRUE(tls::parsePins(good));
  for (const std::string& bad :
       {std::string(""), "sha1//" + std::string(43, 'A') + "=",
        "sha256//" + std::string(42, 'A') + "=", "sha256//" + std::string(43, 'A'),
        "sha256//" + std::string(42, 'A') + "*=",
        "sha256//" + std::string(42, 'A') + "B=",  // not canonical
        good + ";", good + ";junk"}) {
    auto pins = tls::parsePins(bad);
    ASSERT_FALSE(pins) << bad;
    EXPECT_TRUE(pins.error().is(Errc::kInvalidArgument));
    EXPECT_NE(pins.error().detail().find("bad pin"), std::string::npos);
  }
}

TEST_F(TlsTest, ClientContextRefusesMalformedPin) {
  auto context = tls::makeClientContext(
      {.bundle_file = pki_.clientBundle("alice"), .ca_file = "", .pin = "sha256//nope"});
  ASSERT_FALSE(context);
  EXPECT_EQ(context.error().detail().rfind("bad pin \"sha256//nope\"", 0), 0u)
      << context.error().detail();
}

TEST_F(TlsTest, IdentityOfNothingIsAnError) { EXPECT_FALSE(tls::identityOf(nullptr)); }

// pyrun-ca's serials start with a byte of 0x40 or more; another issuer's may start with a zero
// digit, which must not appear in the identity (pyrun-ca lists "a1234", never "0a1234").
TEST_F(TlsTest, SerialHasNoLeadingZeroWhateverItsFirstByte) {
  tls::PkeyPtr key(EVP_EC_gen("P-256"));
  ASSERT_TRUE(key);
  tls::X509Ptr cert(X509_new());
  ASSERT_TRUE(cert);
  ASSERT_EQ(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 0x0a1234), 1);
  X509_NAME* name = X509_get_subject_name(cert.get());
  ASSERT_EQ(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>("serial"), -1, -1, 0),
            1);
  ASSERT_EQ(X509_set_issuer_name(cert.get(), name), 1);
  ASSERT_EQ(X509_set_pubkey(cert.get(), key.get()), 1);
  ASSERT_TRUE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  auto id = tls::identityOf(cert.get());
  ASSERT_TRUE(id) << id.error().detail();
  EXPECT_EQ(id->serial, "a1234");
  EXPECT_EQ(id->common_name, "serial");
}

TEST_F(TlsTest, ServerContextIsHardened) {
  auto context = tls::makeServerContext(
      {.bundle_file = pki_.serverBundle(), .ca_file = pki_.caCert(), .crl_file = pki_.crl()});
  ASSERT_TRUE(context) << context.error().detail();
  SSL_CTX* ctx = (*context)->native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
  const uint64_t options = SSL_CTX_get_options(ctx);
  EXPECT_NE(options & SSL_OP_NO_TICKET, 0u);
  EXPECT_NE(options & SSL_OP_NO_COMPRESSION, 0u);
  EXPECT_NE(options & SSL_OP_NO_RENEGOTIATION, 0u);
  EXPECT_EQ(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
  EXPECT_EQ(SSL_CTX_get_num_tickets(ctx), 0u);
  EXPECT_EQ(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
  EXPECT_EQ(SSL_CTX_get_verify_depth(ctx), 2);
  EXPECT_EQ(SSL_CTX_get_max_cert_list(ctx), 16 * 1024);
  EXPECT_NE(X509_VERIFY_PARAM_get_flags(SSL_CTX_get0_param(ctx)) & X509_V_FLAG_CRL_CHECK, 0u);
  // Only our CA is trusted: the store holds exactly one object, the CA certificate (and the CRL).
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
  int certificates = 0;
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objects, i)) == X509_LU_X509) ++certificates;
  }
  EXPECT_EQ(certificates, 1);
}

TEST_F(TlsTest, ClientContextIsTls13Only) {
  auto context =
      tls::makeClientContext({.bundle_file = pki_.clientBundle("alice"), .ca_file = "", .pin = ""});
  ASSERT_TRUE(context) << context.error().detail();
  SSL_CTX* ctx = (*context)->native_handle();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
}

TEST_F(TlsTest, ServerContextReportsBadCrlFile) {
  std::string not_crl = dir_ / "crl.pem";
  writeFile(not_crl, readFileOrEmpty(pki_.caCert()));
  auto context = tls::makeServerContext(
      {.bundle_file = pki_.serverBundle(), .ca_file = pki_.caCert(), .crl_file = not_crl});
  ASSERT_FALSE(context);
  EXPECT_EQ(context.error().detail(), not_crl + ": no CRL in the file");
}

TEST_F(TlsTest, ServerContextReportsMissingCaFile) {
  auto context = tls::makeServerContext(
      {.bundle_file = pki_.serverBundle(), .ca_file = dir_ / "nope.pem", .crl_file = ""});
  ASSERT_FALSE(context);
  EXPECT_TRUE(context.error().is(Errc::kNotFound));
  EXPECT_NE(context.error().detail().find(dir_ / "nope.pem"), std::string::npos);
}

TEST_F(TlsTest, ClientNeedsSomeCa) {
  // A bundle without the CA certificate and no CA file: nothing to trust, so refuse.
  auto blocks = pemBlocks(readFileOrEmpty(pki_.clientBundle("alice")));
  std::string lone = dir_ / "lone.pem";
  writeFile(lone, blocks[0] + blocks[2], 0600);
  auto context = tls::makeClientContext({.bundle_file = lone, .ca_file = "", .pin = ""});
  ASSERT_FALSE(context);
  EXPECT_EQ(context.error().detail(),
            lone + ": the bundle holds no CA certificate; name a CA file");
  auto with_ca = tls::makeClientContext({.bundle_file = lone, .ca_file = pki_.caCert(), .pin = ""});
  EXPECT_TRUE(with_ca) << with_ca.error().detail();
}

TEST_F(TlsTest, PrepareClientRefusesEmptyHost) {
  auto context =
      tls::makeClientContext({.bundle_file = pki_.clientBundle("alice"), .ca_file = "", .pin = ""});
  ASSERT_TRUE(context);
  SSL* ssl = SSL_new((*context)->native_handle());
  ASSERT_NE(ssl, nullptr);
  EXPECT_FALSE(tls::prepareClient(ssl, ""));
  EXPECT_TRUE(tls::prepareClient(ssl, "[::1]"));
  SSL_free(ssl);
}

}  // namespace
}  // namespace pyrun::test
