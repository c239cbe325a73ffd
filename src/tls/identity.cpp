// Peer identity from a certificate (CN, serial, fingerprint, SPKI pin) and pin parsing.
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <cctype>

#include "common/hex.h"
#include "tls/openssl_util.h"
#include "tls/tls.h"

namespace pyrun::tls {
namespace {

constexpr std::string_view kPinPrefix = "sha256//";
// Base64 of a 32-byte SHA-256: 44 characters, ending in one '='.
constexpr size_t kPinBase64Len = 44;

std::string base64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

bool isBase64Char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '/';
}

// "sha256//" + base64 of 32 bytes, in the canonical form that base64() produces.
bool isPin(std::string_view pin) {
  if (pin.substr(0, kPinPrefix.size()) != kPinPrefix) return false;
  std::string_view b64 = pin.substr(kPinPrefix.size());
  if (b64.size() != kPinBase64Len || b64.back() != '=') return false;
  for (size_t i = 0; i + 1 < b64.size(); ++i) {
    if (!isBase64Char(b64[i])) return false;
  }
  // 32 bytes leave two unused low bits in the last symbol; a non-zero one is not canonical and
  // could never equal a computed pin.
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  return (kAlphabet.find(b64[kPinBase64Len - 2]) & 0x3) == 0;
}

}  // namespace

Result<std::vector<std::string>> parsePins(const std::string& pins) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = pins.find(';', start);
    std::string pin =
        pins.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!isPin(pin)) {
      return Error(Errc::kInvalidArgument, "bad pin \"" + pin +
                                               "\": expected sha256// and the base64 of a SHA-256 "
                                               "(44 characters), as `pyrun-ca show` prints it");
    }
    out.push_back(std::move(pin));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

Result<PeerIdentity> identityOf(X509* certificate) {
  if (certificate == nullptr) return Error(Errc::kTls, "no certificate");
  PeerIdentity id;

  X509_NAME* subject = X509_get_subject_name(certificate);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index >= 0) {
    ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, cn);
    if (len < 0) return detail::opensslError(Errc::kCrypto, "certificate common name is not text");
    id.common_name.assign(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }

  BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr);
  if (serial == nullptr) return detail::opensslError(Errc::kCrypto, "certificate serial");
  char* serial_hex = BN_bn2hex(serial);
  BN_free(serial);
  if (serial_hex == nullptr) return detail::opensslError(Errc::kInternal, "BN_bn2hex");
  // As pyrun-ca lists it: the audit log's serial must be found there.
  id.serial = serialText(serial_hex);
  OPENSSL_free(serial_hex);

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (X509_digest(certificate, EVP_sha256(), digest, &digest_len) != 1) {
    return detail::opensslError(Errc::kCrypto, "certificate fingerprint");
  }
  id.fingerprint_sha256 = hexLower(digest, digest_len);

  unsigned char* spki = nullptr;
  int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(certificate), &spki);
  if (spki_len <= 0) return detail::opensslError(Errc::kCrypto, "certificate public key");
  unsigned char spki_digest[SHA256_DIGEST_LENGTH];
  SHA256(spki, static_cast<size_t>(spki_len), spki_digest);
  OPENSSL_free(spki);
  id.spki_pin = std::string(kPinPrefix) + base64(spki_digest, sizeof spki_digest);
  return id;
}

Result<PeerIdentity> peerIdentity(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return Error(Errc::kTls, "the peer presented no certificate");
  // Defence in depth: with SSL_VERIFY_PEER a failed verification already ended the handshake.
  long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    return Error(Errc::kTls, std::string("the peer's certificate is not verified (") +
                                 X509_verify_cert_error_string(verify) + ")");
  }
  return identityOf(peer);
}

}  // namespace pyrun::tls
