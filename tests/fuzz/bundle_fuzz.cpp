// libFuzzer target for the certificate bundle loader (the PEM file behind `pyrun --cert` and
// pyrund's server bundle): arbitrary bytes to pyrun::tls::parseBundle. Besides memory errors and
// leaks (ASan/UBSan), it checks the loader's contract: an accepted bundle has a certificate and a
// key that matches it, an identity can be taken from each certificate, and a refusal says why.
#include <openssl/err.h>
#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "tls/tls.h"

namespace {

void checkIdentity(X509* certificate) {
  pyrun::Result<pyrun::tls::PeerIdentity> id = pyrun::tls::identityOf(certificate);
  if (!id) return;  // e.g. a common name that is not text: refused with a reason, not a crash
  if (id->fingerprint_sha256.size() != 64 || id->spki_pin.rfind("sha256//", 0) != 0) {
    __builtin_trap();
  }
  // tls.h promises lower-case hex without leading zeros: the form pyrun-ca writes in index.txt and
  // `pyrun-ca list`, so that an audit line's serial can be looked up there. (A negative serial,
  // which RFC 5280 forbids but OpenSSL parses, keeps its sign.)
  std::string_view serial = id->serial;
  if (serial.rfind('-', 0) == 0) serial.remove_prefix(1);
  if (serial.empty() || (serial.size() > 1 && serial[0] == '0') ||
      serial.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    std::fprintf(stderr, "bundle_fuzz: identityOf gave serial \"%s\"\n", id->serial.c_str());
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view pem(reinterpret_cast<const char*>(data), size);
  ERR_clear_error();
  pyrun::Result<pyrun::tls::Bundle> bundle = pyrun::tls::parseBundle(pem, "fuzz.pem");
  // handshakeError() reads OpenSSL's thread-local error queue to name a handshake failure; a
  // reason left behind by loading the bundle would be blamed on the next handshake instead.
  if (ERR_peek_error() != 0) {
    std::fprintf(stderr, "bundle_fuzz: parseBundle left an OpenSSL error queued\n");
    ERR_print_errors_fp(stderr);
    __builtin_trap();
  }
  if (!bundle) {
    if (bundle.error().detail().empty()) __builtin_trap();
  } else {
    if (!bundle->certificate || !bundle->key) __builtin_trap();
    if (X509_check_private_key(bundle->certificate.get(), bundle->key.get()) != 1) __builtin_trap();
    checkIdentity(bundle->certificate.get());
    if (bundle->ca) checkIdentity(bundle->ca.get());
  }
  ERR_clear_error();
  return 0;
}
