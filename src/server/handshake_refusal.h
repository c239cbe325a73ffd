// Which Refusal label (metrics.h) a failed TLS handshake counts under, from OpenSSL's verify
// result.
#pragma once

#include <openssl/ssl.h>

#include <boost/system/error_code.hpp>

#include "server/metrics.h"

namespace pyrun::server {

// The reason a handshake on `ssl` failed with `ec` (from the handshake): no certificate, untrusted,
// expired, revoked, or kTls for anything else (protocol version, ALPN, a reset, a malformed
// record).
Refusal handshakeRefusal(const SSL* ssl, const boost::system::error_code& ec) noexcept;

}  // namespace pyrun::server
