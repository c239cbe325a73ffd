// Internal helpers of the TLS layer: owning pointers and the OpenSSL error queue as text.
#pragma once

#include <openssl/bio.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "tls/tls.h"

namespace pyrun::tls::detail {

struct BioFree {
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
struct CrlFree {
  void operator()(X509_CRL* p) const noexcept { X509_CRL_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using CrlPtr = std::unique_ptr<X509_CRL, CrlFree>;

// Drains the calling thread's OpenSSL error queue into "reason; reason" (empty when none).
std::string drainErrors();

// Error(code, what + ": " + reasons from the queue), or what alone when the queue is empty.
Error opensslError(Errc code, std::string what);

// The certificates of a PEM file in file order; kCrypto when it has none or one does not parse.
Result<std::vector<X509Ptr>> loadCertificates(const std::string& path);
// The CRLs of a PEM file; kCrypto when it has none or one does not parse.
Result<std::vector<CrlPtr>> loadCrls(const std::string& path);

}  // namespace pyrun::tls::detail
