// Live revocation (see revocation.h).
#include "server/revocation.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>

#include "common/hex.h"
#include "tls/openssl_util.h"

namespace pyrun::server {
namespace {

std::string serialHex(const ASN1_INTEGER* serial) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  if (bn == nullptr) return "";
  char* hex = BN_bn2hex(bn);
  BN_free(bn);
  if (hex == nullptr) return "";
  // As PeerIdentity::serial spells it (BN_bn2hex prints whole bytes: "0a12" must match "a12").
  std::string out = serialText(hex);
  OPENSSL_free(hex);
  return out;
}

std::string dateText(std::time_t t) {
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M UTC", &tm);
  return buffer;
}

}  // namespace

Result<CrlContents> readCrl(const std::string& path) {
  auto crls = tls::detail::loadCrls(path);
  if (!crls) return crls.error();
  CrlContents out;
  for (const auto& crl : *crls) {
    STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
    for (int i = 0; i < sk_X509_REVOKED_num(revoked); ++i) {
      const X509_REVOKED* r = sk_X509_REVOKED_value(revoked, i);
      out.revoked_serials.insert(serialHex(X509_REVOKED_get0_serialNumber(r)));
    }
    if (const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get()); next != nullptr) {
      std::tm tm{};
      if (ASN1_TIME_to_tm(next, &tm) == 1) {
        std::time_t t = ::timegm(&tm);
        if (!out.next_update || t < *out.next_update) out.next_update = t;
      }
    }
  }
  return out;
}

CrlFreshness crlFreshness(const std::optional<std::time_t>& next_update, std::time_t now) {
  if (!next_update) return CrlFreshness::kNoNextUpdate;
  if (*next_update <= now) return CrlFreshness::kExpired;
  if (*next_update - now < 7 * 24 * 3600) return CrlFreshness::kExpiresSoon;
  return CrlFreshness::kFresh;
}

std::string crlFreshnessMessage(CrlFreshness freshness, const std::string& path,
                                const std::optional<std::time_t>& next_update, std::time_t now) {
  switch (freshness) {
    case CrlFreshness::kFresh:
    case CrlFreshness::kNoNextUpdate:
      return "";
    case CrlFreshness::kExpiresSoon: {
      auto hours = (*next_update - now) / 3600;
      return "the CRL " + path + " expires on " + dateText(*next_update) + " (in " +
             std::to_string(hours / 24) + " days " + std::to_string(hours % 24) +
             " hours); run `pyrun-ca crl` and copy the new file there before then";
    }
    case CrlFreshness::kExpired:
      return "the CRL " + path + " expired on " + dateText(*next_update) +
             ": EVERY CLIENT IS REFUSED until you run `pyrun-ca crl` and copy the new file there";
  }
  return "";
}

Result<void> installCrl(SSL_CTX* ctx, const std::string& path) {
  auto crls = tls::detail::loadCrls(path);
  if (!crls) return crls.error();
  X509_STORE* old_store = SSL_CTX_get_cert_store(ctx);
  X509_STORE* store = X509_STORE_new();
  if (store == nullptr) return tls::detail::opensslError(Errc::kCrypto, "cannot make a store");
  // The trust anchors are taken from the running store, not re-read from disk: the front no
  // longer has the privileges to read the server bundle, and the CA must not change on reload.
  STACK_OF(X509)* anchors = X509_STORE_get1_all_certs(old_store);
  for (int i = 0; i < sk_X509_num(anchors); ++i) {
    if (X509_STORE_add_cert(store, sk_X509_value(anchors, i)) != 1) {
      sk_X509_pop_free(anchors, X509_free);
      X509_STORE_free(store);
      return tls::detail::opensslError(Errc::kCrypto, "cannot copy the trusted CA");
    }
  }
  sk_X509_pop_free(anchors, X509_free);
  for (const auto& crl : *crls) {
    if (X509_STORE_add_crl(store, crl.get()) != 1) {
      X509_STORE_free(store);
      return tls::detail::opensslError(Errc::kCrypto, path + ": CRL rejected");
    }
  }
  // The verify flags (X509_V_FLAG_CRL_CHECK) live in the context's parameters, which stay; the
  // old store is freed here, which is safe because this process handles one handshake step at a
  // time and new SSL objects look the store up from the context.
  SSL_CTX_set_cert_store(ctx, store);
  return {};
}

FileStamp stampOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  FileStamp s;
  s.exists = true;
  s.inode = static_cast<uint64_t>(st.st_ino);
  s.size = static_cast<uint64_t>(st.st_size);
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

}  // namespace pyrun::server
