// Classifies a failed handshake by the certificate verification result (see handshake_refusal.h).
#include "server/handshake_refusal.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/ssl/error.hpp>

namespace pyrun::server {

Refusal handshakeRefusal(const SSL* ssl, const boost::system::error_code& ec) noexcept {
  if (ssl == nullptr) return Refusal::kTls;
  switch (SSL_get_verify_result(ssl)) {
    case X509_V_OK:
      // Verification passed or never ran: a client without a certificate fails here, with the
      // handshake's own reason saying so.
      if (ec.category() == boost::asio::error::get_ssl_category() &&
          ERR_GET_REASON(static_cast<unsigned long>(ec.value())) ==
              SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        return Refusal::kNoCertificate;
      }
      return Refusal::kTls;
    case X509_V_ERR_CERT_REVOKED:
      return Refusal::kRevoked;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return Refusal::kExpired;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_INVALID_PURPOSE:
      return Refusal::kUntrusted;
    default:
      return Refusal::kTls;
  }
}

}  // namespace pyrun::server
