// OpenSSL helpers for the CA: owning pointers, the error queue as text, keys, PEM, times, digests.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun::ca {

template <class T, void (*F)(T*)>
struct OsslFree {
  void operator()(T* p) const noexcept { F(p); }
};
using X509Ptr = std::unique_ptr<X509, OsslFree<X509, X509_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OsslFree<X509_CRL, X509_CRL_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OsslFree<EVP_PKEY, EVP_PKEY_free>>;

// Key algorithms a pyrun PKI can use; leaves use the same algorithm as their CA.
enum class KeyType { kP256, kEd25519 };

// "p256" / "ed25519" (case-insensitive) -> KeyType; kInvalidArgument otherwise.
Result<KeyType> parseKeyType(std::string_view text);
// "ECDSA P-256", "Ed25519", or the OpenSSL name of anything else.
std::string describeKey(EVP_PKEY* key);
Result<KeyType> keyTypeOf(EVP_PKEY* key);

// Drains OpenSSL's error queue into Error(kCrypto, "what: reason; reason").
Error opensslError(std::string_view what);

Result<PkeyPtr> generateKey(KeyType type);
// PKCS#8 PEM ("BEGIN PRIVATE KEY"), unencrypted.
Result<std::string> privateKeyPem(EVP_PKEY* key);
Result<PkeyPtr> parsePrivateKeyPem(std::string_view pem, const std::string& name);
Result<std::string> certificatePem(X509* cert);
// The first certificate in pem; kInvalidArgument naming `name` if there is none.
Result<X509Ptr> parseCertificatePem(std::string_view pem, const std::string& name);
Result<std::string> crlPem(X509_CRL* crl);
Result<X509CrlPtr> parseCrlPem(std::string_view pem, const std::string& name);

// TIME is "YYYY-MM-DDTHH:MM:SSZ" (UTC). kInvalidArgument naming `option` when malformed.
Result<std::time_t> parseTime(std::string_view text, std::string_view option);
std::string formatTime(std::time_t t);
// An ASN1_TIME as seconds since the epoch (kCrypto when it cannot be converted).
Result<std::time_t> toTimeT(const ASN1_TIME* t);

// Lower-case hex without leading zeros, as pyrun::tls::PeerIdentity prints serials.
Result<std::string> serialHex(const ASN1_INTEGER* serial);
// SHA-256 over the DER certificate, lower-case hex.
Result<std::string> fingerprintSha256(X509* cert);
// "sha256//BASE64" of SHA-256 over the DER SubjectPublicKeyInfo (curl's pin format).
Result<std::string> spkiPin(X509* cert);
// The subject's common name ("" if none).
std::string commonName(X509* cert);
// "DNS:name" / "IP:addr" entries of the subjectAltName extension.
std::vector<std::string> subjectAltNames(X509* cert);

}  // namespace pyrun::ca
