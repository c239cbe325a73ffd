// The OpenSSL error queue as text, and PEM files of certificates and CRLs.
#include "tls/openssl_util.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include "common/file.h"

namespace pyrun::tls::detail {
namespace {

// Certificate and CRL files are small; a huge one is a mistake, not a trust store.
constexpr size_t kMaxPemFile = 1u << 20;

BioPtr memoryBio(const std::string& data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// True when the queue holds only the "no start line" that PEM readers leave at end of input.
bool onlyEndOfPem() {
  unsigned long e = ERR_peek_last_error();
  return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

}  // namespace

std::string drainErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    std::string text = reason != nullptr ? reason : "error " + std::to_string(ERR_GET_REASON(e));
    if (out.find(text) != std::string::npos) continue;  // the same reason from several layers
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out;
}

Error opensslError(Errc code, std::string what) {
  std::string reasons = drainErrors();
  if (!reasons.empty()) what += ": " + reasons;
  return Error(code, std::move(what));
}

Result<std::vector<X509Ptr>> loadCertificates(const std::string& path) {
  auto data = readFile(path, kMaxPemFile);
  if (!data) return data.error();
  BioPtr bio = memoryBio(*data);
  if (!bio) return opensslError(Errc::kInternal, "BIO_new_mem_buf");
  std::vector<X509Ptr> certs;
  ERR_clear_error();
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  if (!onlyEndOfPem()) return opensslError(Errc::kCrypto, path + ": bad certificate PEM");
  ERR_clear_error();
  if (certs.empty()) return Error(Errc::kCrypto, path + ": no certificate in the file");
  return certs;
}

Result<std::vector<CrlPtr>> loadCrls(const std::string& path) {
  auto data = readFile(path, kMaxPemFile);
  if (!data) return data.error();
  BioPtr bio = memoryBio(*data);
  if (!bio) return opensslError(Errc::kInternal, "BIO_new_mem_buf");
  std::vector<CrlPtr> crls;
  ERR_clear_error();
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)) {
    crls.emplace_back(crl);
  }
  if (!onlyEndOfPem()) return opensslError(Errc::kCrypto, path + ": bad CRL PEM");
  ERR_clear_error();
  if (crls.empty()) return Error(Errc::kCrypto, path + ": no CRL in the file");
  return crls;
}

}  // namespace pyrun::tls::detail
