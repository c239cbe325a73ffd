// TLS for pyrund and pyrun: hardened OpenSSL contexts, certificate bundles, peer identity, and
// OpenSSL's failure reasons turned into sentences.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun::tls {

// Frees OpenSSL objects.
struct X509Free {
  void operator()(X509* p) const noexcept { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A single-file PEM bundle as written by `pyrun-ca client` / `pyrun-ca server`: the leaf
// certificate first, then the CA certificate, then the leaf's private key (PKCS#8).
struct Bundle {
  X509Ptr certificate;
  X509Ptr ca;  // may be null when the bundle holds no CA certificate
  PkeyPtr key;
};

// Loads a bundle. Errors: unreadable file, mode readable by group/others (kPermission, "chmod 600"
// hint), no certificate, no key, key not matching the certificate (kCrypto), garbage PEM.
Result<Bundle> loadBundle(const std::string& path);
// Same as loadBundle on bytes already in memory (no permission check). Used by the fuzzer.
Result<Bundle> parseBundle(std::string_view pem, const std::string& name);

struct ServerConfig {
  std::string bundle_file;  // server bundle (certificate, CA, key)
  std::string ca_file;      // CA that issues client certificates; empty = the CA in the bundle
  std::string crl_file;     // CRL to check client certificates against; empty = none
};

// Server context: TLS 1.3 only; groups X25519, P-256, P-384; ALPN "pyrun/1" required (others are
// refused with no_application_protocol); client certificate required and verified against only
// ca_file (never the system store), depth 2, CRL checked when configured; no session tickets or
// session cache (a resumed session would skip the revocation check); no compression, no
// renegotiation; max certificate list 16 KiB.
Result<std::shared_ptr<boost::asio::ssl::context>> makeServerContext(const ServerConfig& config);

struct ClientConfig {
  std::string bundle_file;  // me.pem; must not be readable by group or others
  std::string ca_file;      // empty = trust only the CA inside the bundle
  std::string pin;          // optional "sha256//BASE64" of the server's SubjectPublicKeyInfo
};

// Client context: TLS 1.3 only, ALPN "pyrun/1", client certificate and key from the bundle,
// trusts only the bundle's CA (or ca_file), never the system store.
Result<std::shared_ptr<boost::asio::ssl::context>> makeClientContext(const ClientConfig& config);

// Before the handshake on a client connection: sets SNI (DNS names only) and asks OpenSSL to check
// the server certificate against host (DNS name or IP literal), so a mismatch fails the handshake
// with "hostname mismatch".
Result<void> prepareClient(SSL* ssl, const std::string& host);

// After a successful client handshake: Error(kTls, "server key does not match pin ...") if pin is
// set and the server's SPKI pin differs. Also checks the negotiated ALPN is "pyrun/1".
Result<void> checkServer(SSL* ssl, const std::string& pin);

// Parses a pin option: one "sha256//BASE64" (44 base64 characters), or several separated by ';'
// (curl's --pinnedpubkey format; any one matching is enough, which allows key rotation).
// Errors: kInvalidArgument naming the malformed pin. makeClientContext checks config.pin with it.
Result<std::vector<std::string>> parsePins(const std::string& pins);

// Identity of a verified peer certificate.
struct PeerIdentity {
  std::string common_name;         // subject CN
  std::string serial;              // lower-case hex, no leading zeros
  std::string fingerprint_sha256;  // lower-case hex of SHA-256 over the DER certificate
  std::string spki_pin;            // "sha256//BASE64" of SHA-256 over the DER SubjectPublicKeyInfo
};
Result<PeerIdentity> identityOf(X509* certificate);
// The verified peer of an established connection (kTls if there is none).
Result<PeerIdentity> peerIdentity(SSL* ssl);

// Turns a failed handshake into a sentence naming OpenSSL's reason: "certificate revoked",
// "certificate has expired", "unsupported certificate purpose", "hostname mismatch",
// "peer did not return a certificate", "unsupported protocol" — from the verify result, the
// error queue (consumed), the alert received, or ec when nothing better is known.
// Alerts from the peer read like the peer's own verdict ("certificate revoked (reported by the
// server)"). Call it with the ssl of the failed handshake before anything else touches OpenSSL.
Error handshakeError(SSL* ssl, const boost::system::error_code& ec);

// The client's FIRST read after the handshake: a TLS 1.3 client learns that the server refused
// its certificate (revoked, expired, wrong purpose, unknown CA) only here, as an alert. Such an
// alert becomes exactly handshakeError's sentence ("TLS handshake failed: certificate revoked
// (reported by the server)"); anything else becomes connectionError's.
Error firstReadError(SSL* ssl, const boost::system::error_code& ec);

// A failed read or write on an established connection: "TLS connection failed: <reason>".
Error connectionError(SSL* ssl, const boost::system::error_code& ec);

// When a TLS read or handshake failed because the server sent an alert about our certificate
// (TLS 1.3 clients learn of that on their first read), the reason in a few words: "revoked",
// "expired (or not yet valid)", "not issued by the server's CA", ...; nullopt for any other
// failure.
std::optional<std::string> certificateRejection(const boost::system::error_code& ec);

}  // namespace pyrun::tls
