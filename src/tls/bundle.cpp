// Single-file PEM bundles (leaf certificate, CA certificate, private key) as pyrun-ca writes them.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstring>

#include "common/file.h"
#include "tls/openssl_util.h"
#include "tls/tls.h"

namespace pyrun::tls {
namespace {

// A bundle is three PEM blocks of a few KiB; anything far larger is not a bundle.
constexpr size_t kMaxBundle = 1u << 20;

struct PemBlock {
  std::string type;
  std::string der;
};

struct OpenSslFree {
  void operator()(void* p) const noexcept { OPENSSL_free(p); }
};

}  // namespace

Result<Bundle> parseBundle(std::string_view pem, const std::string& name) {
  if (pem.size() > kMaxBundle)
    return Error(Errc::kInvalidArgument, name + ": too large for a bundle");
  detail::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return detail::opensslError(Errc::kInternal, "BIO_new_mem_buf");

  std::vector<PemBlock> blocks;
  ERR_clear_error();
  for (;;) {
    char* type = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &type, &header, &data, &len) != 1) break;
    std::unique_ptr<char, OpenSslFree> t(type), h(header);
    std::unique_ptr<unsigned char, OpenSslFree> d(data);
    // Encrypted PEM ("Proc-Type: 4,ENCRYPTED") would need a passphrase prompt; pyrun-ca never
    // writes one, so say so rather than fail later with an opaque decoder error.
    if (header != nullptr && header[0] != '\0') {
      return Error(Errc::kInvalidArgument, name + ": encrypted PEM blocks are not supported");
    }
    blocks.push_back(
        {type, std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(len))});
  }
  unsigned long last = ERR_peek_last_error();
  if (!(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    return detail::opensslError(Errc::kCrypto, name + ": bad PEM");
  }
  ERR_clear_error();

  Bundle bundle;
  size_t certificates = 0;
  for (const PemBlock& block : blocks) {
    const auto* p = reinterpret_cast<const unsigned char*>(block.der.data());
    const long len = static_cast<long>(block.der.size());
    if (block.type == "CERTIFICATE") {
      X509Ptr cert(d2i_X509(nullptr, &p, len));
      if (!cert) return detail::opensslError(Errc::kCrypto, name + ": bad certificate");
      // Leaf first, then the CA; a longer chain is not something pyrun-ca issues, and accepting
      // it silently would hide which certificate is trusted.
      if (++certificates == 1) {
        bundle.certificate = std::move(cert);
      } else if (certificates == 2) {
        bundle.ca = std::move(cert);
      } else {
        return Error(Errc::kInvalidArgument,
                     name + ": more than two certificates (expected the leaf, then the CA)");
      }
    } else if (block.type == "PRIVATE KEY" || block.type == "EC PRIVATE KEY" ||
               block.type == "RSA PRIVATE KEY") {
      if (bundle.key) return Error(Errc::kInvalidArgument, name + ": more than one private key");
      PkeyPtr key(d2i_AutoPrivateKey(nullptr, &p, len));
      if (!key) return detail::opensslError(Errc::kCrypto, name + ": bad private key");
      bundle.key = std::move(key);
    } else if (block.type == "ENCRYPTED PRIVATE KEY") {
      return Error(Errc::kInvalidArgument, name + ": encrypted private keys are not supported");
    } else {
      return Error(Errc::kInvalidArgument, name + ": unexpected PEM block \"" + block.type + "\"");
    }
  }
  if (!bundle.certificate) return Error(Errc::kInvalidArgument, name + ": no certificate");
  if (!bundle.key) return Error(Errc::kInvalidArgument, name + ": no private key");
  if (X509_check_private_key(bundle.certificate.get(), bundle.key.get()) != 1) {
    return detail::opensslError(Errc::kCrypto,
                                name + ": the private key does not match the certificate");
  }
  // Key decoders try several formats and may leave the misses queued even on success; a stale
  // entry would later be blamed on an unrelated TLS failure.
  ERR_clear_error();
  return bundle;
}

Result<Bundle> loadBundle(const std::string& path) {
  // Checked before reading, like ssh refusing an open identity file: a key others can read is
  // already compromised, and refusing early makes the owner fix it.
  if (auto r = requirePrivateFile(path, "bundle"); !r) return r.error();
  auto data = readFile(path, kMaxBundle);
  if (!data) return data.error();
  return parseBundle(*data, path);
}

}  // namespace pyrun::tls
