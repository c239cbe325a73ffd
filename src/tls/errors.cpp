// OpenSSL's failure reasons (verify results, alerts, the error queue) turned into sentences.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include "tls/openssl_util.h"
#include "tls/tls.h"

namespace pyrun::tls {
namespace {

// An alert from the peer arrives as SSL reason SSL_AD_REASON_OFFSET + alert description.
bool isAlertReason(int reason) {
  return reason > SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256;
}

// The alerts pyrun names itself.
struct AlertText {
  int alert;
  // In handshakeError's sentence: chosen to match what the peer itself reports from its verify
  // result, so both ends of a refused connection read the same ("certificate revoked"). Null:
  // OpenSSL's own words.
  const char* words;
  // certificateRejection()'s few words for the client's user; null: not about our certificate.
  const char* rejection;
};

constexpr AlertText kAlerts[] = {
    {SSL_AD_CERTIFICATE_REVOKED, "certificate revoked", "revoked"},
    {SSL_AD_CERTIFICATE_EXPIRED, "certificate has expired", "expired (or not yet valid)"},
    {SSL_AD_UNSUPPORTED_CERTIFICATE, "unsupported certificate purpose",
     "unsupported certificate (is it a client certificate?)"},
    {SSL_AD_UNKNOWN_CA, "unable to get local issuer certificate (unknown CA)",
     "not issued by the server's CA"},
    {SSL_AD_CERTIFICATE_REQUIRED, "peer did not return a certificate", "no certificate was sent"},
    {SSL_AD_BAD_CERTIFICATE, nullptr, "bad certificate"},
    {SSL_AD_CERTIFICATE_UNKNOWN, nullptr, "certificate unknown"},
    {SSL_AD_ACCESS_DENIED, nullptr, "access denied"},
    {SSL_AD_PROTOCOL_VERSION, "unsupported protocol (TLS 1.3 is required)", nullptr},
    {SSL_AD_NO_APPLICATION_PROTOCOL, "no application protocol (pyrun/1 is required)", nullptr},
};

const AlertText* findAlert(int alert) {
  for (const auto& a : kAlerts) {
    if (a.alert == alert) return &a;
  }
  return nullptr;
}

// The words a peer's alert stands for.
std::string alertWords(int alert, unsigned long packed) {
  if (const AlertText* a = findAlert(alert); a != nullptr && a->words != nullptr) return a->words;
  // Strip OpenSSL's "sslv3 alert " / "tlsv1 alert " / "tlsv13 alert " prefixes.
  const char* text = ERR_reason_error_string(packed);
  std::string words = text != nullptr ? text : "alert " + std::to_string(alert);
  auto at = words.find("alert ");
  if (at != std::string::npos) words = words.substr(at + 6);
  return words;
}

// OpenSSL's text for a verify result. OpenSSL 3.0 renamed X509_V_ERR_INVALID_PURPOSE's text to
// "unsuitable certificate purpose"; the words of 1.1 are kept so that both ends, and every
// OpenSSL version, describe a server certificate used as a client certificate the same way.
std::string verifyWords(long verify) {
  if (verify == X509_V_ERR_INVALID_PURPOSE) return "unsupported certificate purpose";
  return X509_verify_cert_error_string(verify);
}

// What went wrong, without a prefix.
std::string describe(SSL* ssl, const boost::system::error_code& ec) {
  const bool server = ssl != nullptr && SSL_is_server(ssl) == 1;
  if (ssl != nullptr) {
    long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
      detail::drainErrors();
      return std::string(server ? "client" : "server") + " certificate: " + verifyWords(verify);
    }
  }
  if (ec.category() == boost::asio::error::get_ssl_category() && ec.value() != 0) {
    const auto packed = static_cast<unsigned long>(static_cast<unsigned int>(ec.value()));
    const int reason = ERR_GET_REASON(packed);
    if (ERR_GET_LIB(packed) == ERR_LIB_SSL && isAlertReason(reason)) {
      detail::drainErrors();
      return alertWords(reason - SSL_AD_REASON_OFFSET, packed) +
             (server ? " (reported by the client)" : " (reported by the server)");
    }
    const char* text = ERR_reason_error_string(packed);
    std::string words = text != nullptr ? text : ec.message();
    std::string more = detail::drainErrors();
    if (!more.empty() && more != words) words += "; " + more;
    return words;
  }
  std::string queued = detail::drainErrors();
  if (!queued.empty()) return queued;
  if (ec == boost::asio::ssl::error::stream_truncated || ec == boost::asio::error::eof) {
    return server ? "the client closed the connection" : "the server closed the connection";
  }
  return ec ? ec.message() : std::string("unknown TLS failure");
}

}  // namespace

Error handshakeError(SSL* ssl, const boost::system::error_code& ec) {
  return Error(Errc::kTls, "TLS handshake failed: " + describe(ssl, ec));
}

Error firstReadError(SSL* ssl, const boost::system::error_code& ec) {
  // In TLS 1.3 the client finishes its handshake before the server has looked at the client's
  // certificate; the server's verdict arrives as an alert on the first read. That alert is a
  // handshake failure for the person reading the message, so it reads exactly like one.
  if (ec.category() == boost::asio::error::get_ssl_category() && ec.value() != 0) {
    const auto packed = static_cast<unsigned long>(static_cast<unsigned int>(ec.value()));
    if (ERR_GET_LIB(packed) == ERR_LIB_SSL && isAlertReason(ERR_GET_REASON(packed))) {
      return handshakeError(ssl, ec);
    }
  }
  return connectionError(ssl, ec);
}

Error connectionError(SSL* ssl, const boost::system::error_code& ec) {
  return Error(Errc::kTls, "TLS connection failed: " + describe(ssl, ec));
}

std::optional<std::string> certificateRejection(const boost::system::error_code& ec) {
  if (ec.category() != boost::asio::error::get_ssl_category()) return std::nullopt;
  const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
  if (!isAlertReason(reason)) return std::nullopt;
  const AlertText* a = findAlert(reason - SSL_AD_REASON_OFFSET);
  if (a == nullptr || a->rejection == nullptr) return std::nullopt;
  return std::string(a->rejection);
}

}  // namespace pyrun::tls
