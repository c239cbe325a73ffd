// Hardened OpenSSL contexts for pyrund (server) and pyrun (client), and per-connection checks.
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <utility>

#include "tls/openssl_util.h"
#include "tls/tls.h"

namespace pyrun::tls {
namespace {

namespace ssl = boost::asio::ssl;
using ContextPtr = std::shared_ptr<ssl::context>;

constexpr char kGroups[] = "X25519:P-256:P-384";
// A client chain is a leaf of a few hundred bytes (the CA is not sent); 16 KiB is ample and
// bounds what an unauthenticated peer can make us parse and buffer.
constexpr long kMaxCertList = 16 * 1024;
// Leaf, CA: pyrun-ca issues with pathlen:0, so nothing legitimate is deeper.
constexpr int kVerifyDepth = 2;
constexpr unsigned char kSessionIdContext[] = "pyrun";

Result<ContextPtr> newContext(ssl::context::method method) {
  try {
    return std::make_shared<ssl::context>(method);
  } catch (const boost::system::system_error& e) {
    return detail::opensslError(Errc::kCrypto, std::string("creating a TLS context: ") + e.what());
  }
}

// Settings both ends share: TLS 1.3 only, modern groups, nothing that resumes or renegotiates.
Result<void> applyCommon(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
    return detail::opensslError(Errc::kCrypto, "cannot restrict the TLS context to TLS 1.3");
  }
  if (SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return detail::opensslError(Errc::kCrypto, std::string("cannot set TLS groups ") + kGroups);
  }
  // Security level 2: at least 112-bit keys; refuses e.g. RSA-1024 or P-192 peers outright.
  SSL_CTX_set_security_level(ctx, 2);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                               SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  // A resumed session skips certificate verification, and with it the CRL check: a client
  // revoked after its first connection could keep resuming. So no cache and no tickets at all.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_max_cert_list(ctx, kMaxCertList);
  return {};
}

// A trust store holding only these CAs (never the system's default paths), verifying to depth 2.
Result<void> installTrust(SSL_CTX* ctx, const std::vector<X509*>& cas, int purpose) {
  X509_STORE* store = X509_STORE_new();
  if (store == nullptr) return detail::opensslError(Errc::kInternal, "X509_STORE_new");
  SSL_CTX_set_cert_store(ctx, store);  // owns it from here
  for (X509* ca : cas) {
    if (X509_STORE_add_cert(store, ca) != 1) {
      return detail::opensslError(Errc::kCrypto,
                                  "cannot add the CA certificate to the trust store");
    }
  }
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_depth(param, kVerifyDepth);
  // Explicit, although OpenSSL picks the same default per side: a client certificate must carry
  // clientAuth, a server certificate serverAuth, so one kind cannot stand in for the other.
  X509_VERIFY_PARAM_set_purpose(param, purpose);
  SSL_CTX_set_verify_depth(ctx, kVerifyDepth);
  return {};
}

Result<void> installIdentity(SSL_CTX* ctx, const Bundle& bundle, const std::string& name) {
  if (SSL_CTX_use_certificate(ctx, bundle.certificate.get()) != 1) {
    return detail::opensslError(Errc::kCrypto, name + ": certificate rejected");
  }
  if (SSL_CTX_use_PrivateKey(ctx, bundle.key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return detail::opensslError(Errc::kCrypto, name + ": private key rejected");
  }
  return {};
}

Result<std::vector<X509Ptr>> trustedCas(const std::string& ca_file, Bundle& bundle,
                                        const std::string& bundle_file) {
  if (!ca_file.empty()) return detail::loadCertificates(ca_file);
  if (!bundle.ca) {
    return Error(Errc::kInvalidArgument,
                 bundle_file + ": the bundle holds no CA certificate; name a CA file");
  }
  std::vector<X509Ptr> cas;
  cas.push_back(std::move(bundle.ca));
  return cas;
}

std::vector<X509*> raw(const std::vector<X509Ptr>& certs) {
  std::vector<X509*> out;
  for (const auto& c : certs) out.push_back(c.get());
  return out;
}

constexpr unsigned char kAlpnWire[] = "\x07pyrun/1";
constexpr size_t kAlpnWireLen = sizeof kAlpnWire - 1;

// Without ALPN in the ClientHello the select callback below is never called and the handshake
// would succeed; pyrun/1 is required, so a hello without the extension is refused here.
int requireAlpnExtension(SSL* ssl, int* alert, void* /*arg*/) {
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                &len) != 1) {
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    ERR_raise_data(ERR_LIB_SSL, SSL_R_NO_APPLICATION_PROTOCOL,
                   "the client offered no ALPN; pyrun/1 is required");
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

int selectAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
               const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAlpnWire, kAlpnWireLen, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    // Fatal rather than NOACK: a client speaking another protocol must not get a session.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Result<std::shared_ptr<ssl::context>> makeServerContext(const ServerConfig& config) {
  // The server's bundle is its own key: the same rule as for a client's me.pem.
  auto bundle = loadBundle(config.bundle_file);
  if (!bundle) return bundle.error();
  auto cas = trustedCas(config.ca_file, *bundle, config.bundle_file);
  if (!cas) return cas.error();

  auto context = newContext(ssl::context::tls_server);
  if (!context) return context.error();
  SSL_CTX* ctx = (*context)->native_handle();
  if (auto r = applyCommon(ctx); !r) return r.error();
  SSL_CTX_set_num_tickets(ctx, 0);
  if (auto r = installIdentity(ctx, *bundle, config.bundle_file); !r) return r.error();
  if (auto r = installTrust(ctx, raw(*cas), X509_PURPOSE_SSL_CLIENT); !r) return r.error();
  // Tells clients (and s_client's "Acceptable client certificate CA names") which CA we trust.
  for (const auto& ca : *cas) SSL_CTX_add_client_CA(ctx, ca.get());

  if (!config.crl_file.empty()) {
    auto crls = detail::loadCrls(config.crl_file);
    if (!crls) return crls.error();
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (const auto& crl : *crls) {
      if (X509_STORE_add_crl(store, crl.get()) != 1) {
        return detail::opensslError(Errc::kCrypto, config.crl_file + ": CRL rejected");
      }
    }
    // The leaf only: the CA is the trust anchor (pathlen:0), and there is no CRL above it.
    // A CRL past its next update fails every handshake ("CRL has expired"): fail closed.
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_CRL_CHECK);
  }

  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_client_hello_cb(ctx, requireAlpnExtension, nullptr);
  SSL_CTX_set_alpn_select_cb(ctx, selectAlpn, nullptr);
  return context;
}

Result<std::shared_ptr<ssl::context>> makeClientContext(const ClientConfig& config) {
  if (!config.pin.empty()) {
    if (auto r = parsePins(config.pin); !r) return r.error();
  }
  auto bundle = loadBundle(config.bundle_file);
  if (!bundle) return bundle.error();
  auto cas = trustedCas(config.ca_file, *bundle, config.bundle_file);
  if (!cas) return cas.error();

  auto context = newContext(ssl::context::tls_client);
  if (!context) return context.error();
  SSL_CTX* ctx = (*context)->native_handle();
  if (auto r = applyCommon(ctx); !r) return r.error();
  if (auto r = installIdentity(ctx, *bundle, config.bundle_file); !r) return r.error();
  if (auto r = installTrust(ctx, raw(*cas), X509_PURPOSE_SSL_SERVER); !r) return r.error();
  // SSL_CTX_set_alpn_protos returns 0 on success, unlike nearly everything else in OpenSSL.
  if (SSL_CTX_set_alpn_protos(ctx, kAlpnWire, kAlpnWireLen) != 0) {
    return detail::opensslError(Errc::kCrypto, "cannot set ALPN pyrun/1");
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  return context;
}

Result<void> prepareClient(SSL* ssl, const std::string& host) {
  if (host.empty()) return Error(Errc::kInvalidArgument, "empty server host name");
  std::string name = host;
  // "[::1]" as people write it in URLs.
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  unsigned char addr[16];
  const bool is_ip =
      inet_pton(AF_INET, name.c_str(), addr) == 1 || inet_pton(AF_INET6, name.c_str(), addr) == 1;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (is_ip) {
    // An IP must match an IP SAN; OpenSSL never matches it against DNS names or the CN.
    if (X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1) {
      return detail::opensslError(Errc::kInvalidArgument, "bad server address " + host);
    }
    return {};
  }
  // SNI carries DNS names only (RFC 6066 forbids IP literals there). SSL_set_tlsext_host_name
  // is a macro with a C cast; this is what it expands to.
  if (SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(name.c_str())) != 1) {
    return detail::opensslError(Errc::kInvalidArgument, "bad server name " + host);
  }
  // No partial wildcards ("w*.example"), and never fall back to the subject CN.
  SSL_set_hostflags(ssl,
                    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
  if (SSL_set1_host(ssl, name.c_str()) != 1) {
    return detail::opensslError(Errc::kInvalidArgument, "bad server name " + host);
  }
  return {};
}

Result<void> checkServer(SSL* ssl, const std::string& pin) {
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (std::string_view(reinterpret_cast<const char*>(alpn), alpn_len) != "pyrun/1") {
    return Error(Errc::kTls,
                 "the server did not agree to protocol pyrun/1 (ALPN); it is not a "
                 "pyrun server");
  }
  if (pin.empty()) return {};
  auto pins = parsePins(pin);
  if (!pins) return pins.error();
  auto identity = peerIdentity(ssl);
  if (!identity) return identity.error();
  for (const auto& p : *pins) {
    if (p == identity->spki_pin) return {};
  }
  return Error(Errc::kTls, "server key does not match pin " + pin + " (the server's key is " +
                               identity->spki_pin + ")");
}

}  // namespace pyrun::tls
