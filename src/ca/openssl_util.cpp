// OpenSSL helpers for the CA. Every OpenSSL failure is converted here into a sentence.
#include "ca/openssl_util.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "common/hex.h"

namespace pyrun::ca {
namespace {

using BioPtr = std::unique_ptr<BIO, OsslFree<BIO, BIO_free_all>>;

std::string bioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

BioPtr readBio(std::string_view pem) {
  // BIO_new_mem_buf takes an int length; PEM inputs are read with a 64 MiB cap well below that.
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

}  // namespace

Result<KeyType> parseKeyType(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "p256" || lower == "p-256") return KeyType::kP256;
  if (lower == "ed25519") return KeyType::kEd25519;
  return Error(Errc::kInvalidArgument,
               "unknown key type '" + std::string(text) + "': use p256 or ed25519");
}

std::string describeKey(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "ED25519")) return "Ed25519";
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &len) == 1) {
      std::string g(group, len);
      if (g == "prime256v1" || g == "P-256") return "ECDSA P-256";
      return "ECDSA " + g;
    }
    return "ECDSA";
  }
  const char* name = EVP_PKEY_get0_type_name(key);
  return name != nullptr ? name : "unknown";
}

Result<KeyType> keyTypeOf(EVP_PKEY* key) {
  std::string d = describeKey(key);
  if (d == "ECDSA P-256") return KeyType::kP256;
  if (d == "Ed25519") return KeyType::kEd25519;
  return Error(Errc::kCrypto, "unsupported CA key type " + d + ": pyrun-ca uses P-256 or Ed25519");
}

Error opensslError(std::string_view what) {
  std::string detail(what);
  bool first = true;
  unsigned long code;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    const char* reason = ERR_reason_error_string(code);
    detail += first ? ": " : "; ";
    detail += reason != nullptr ? reason : buf;
    first = false;
  }
  if (first) detail += ": unknown OpenSSL error";
  return Error(Errc::kCrypto, std::move(detail));
}

Result<PkeyPtr> generateKey(KeyType type) {
  EVP_PKEY* key = type == KeyType::kP256 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                                         : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key == nullptr) return opensslError("generating a key");
  return PkeyPtr(key);
}

Result<std::string> privateKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return opensslError("encoding a private key");
  }
  return bioContents(bio.get());
}

Result<PkeyPtr> parsePrivateKeyPem(std::string_view pem, const std::string& name) {
  BioPtr bio = readBio(pem);
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (key == nullptr) return opensslError(name + ": no readable private key");
  return PkeyPtr(key);
}

Result<std::string> certificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return opensslError("encoding a certificate");
  }
  return bioContents(bio.get());
}

Result<X509Ptr> parseCertificatePem(std::string_view pem, const std::string& name) {
  BioPtr bio = readBio(pem);
  X509* cert = bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (cert == nullptr) {
    ERR_clear_error();
    return Error(Errc::kInvalidArgument, name + ": no PEM certificate in it");
  }
  return X509Ptr(cert);
}

Result<std::string> crlPem(X509_CRL* crl) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl) != 1) return opensslError("encoding the CRL");
  return bioContents(bio.get());
}

Result<X509CrlPtr> parseCrlPem(std::string_view pem, const std::string& name) {
  BioPtr bio = readBio(pem);
  X509_CRL* crl = bio ? PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (crl == nullptr) {
    ERR_clear_error();
    return Error(Errc::kInvalidArgument, name + ": no PEM certificate revocation list in it");
  }
  return X509CrlPtr(crl);
}

Result<std::time_t> parseTime(std::string_view text, std::string_view option) {
  auto bad = [&] {
    return Error(Errc::kInvalidArgument, std::string(option) + " '" + std::string(text) +
                                             "' is not a time like 2030-01-31T12:00:00Z (UTC)");
  };
  // Exactly YYYY-MM-DDTHH:MM:SSZ: sscanf alone would accept signs, spaces and short fields.
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:ddZ";
  if (text.size() != kShape.size()) return bad();
  for (size_t i = 0; i < kShape.size(); ++i) {
    bool digit = std::isdigit(static_cast<unsigned char>(text[i])) != 0;
    if (kShape[i] == 'd' ? !digit : text[i] != kShape[i]) return bad();
  }
  auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) v = v * 10 + (text[i] - '0');
    return v;
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(5, 2) - 1;
  tm.tm_mday = num(8, 2);
  tm.tm_hour = num(11, 2);
  tm.tm_min = num(14, 2);
  tm.tm_sec = num(17, 2);
  std::tm copy = tm;
  std::time_t t = timegm(&copy);
  // timegm normalises 2030-02-31 into March; a round trip catches impossible dates.
  std::tm back{};
  if (t == -1 || gmtime_r(&t, &back) == nullptr || back.tm_year != tm.tm_year ||
      back.tm_mon != tm.tm_mon || back.tm_mday != tm.tm_mday || back.tm_hour != tm.tm_hour ||
      back.tm_min != tm.tm_min || back.tm_sec != tm.tm_sec || num(0, 4) < 1950) {
    return bad();
  }
  return t;
}

std::string formatTime(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<std::time_t> toTimeT(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return opensslError("reading a time");
  return timegm(&tm);
}

Result<std::string> serialHex(const ASN1_INTEGER* serial) {
  std::unique_ptr<BIGNUM, OsslFree<BIGNUM, BN_free>> bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return opensslError("reading a serial number");
  char* h = BN_bn2hex(bn.get());
  if (h == nullptr) return opensslError("printing a serial number");
  std::string out = serialText(h);
  OPENSSL_free(h);
  return out;
}

Result<std::string> fingerprintSha256(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return opensslError("fingerprinting");
  return hexLower(md, len);
}

Result<std::string> spkiPin(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
  if (len <= 0) return opensslError("encoding the public key");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  int ok = EVP_Digest(der, static_cast<size_t>(len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1) return opensslError("hashing the public key");
  unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int b64_len = EVP_EncodeBlock(b64, md, static_cast<int>(md_len));
  return "sha256//" + std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(b64_len));
}

std::string commonName(X509* cert) {
  X509_NAME* subject = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

std::vector<std::string> subjectAltNames(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS) {
      const ASN1_IA5STRING* s = gn->d.dNSName;
      out.push_back("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                         static_cast<size_t>(ASN1_STRING_length(s))));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = gn->d.iPAddress;
      char buf[INET6_ADDRSTRLEN] = {};
      int len = ASN1_STRING_length(ip);
      int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
      if (family != 0 && inet_ntop(family, ASN1_STRING_get0_data(ip), buf, sizeof buf)) {
        out.push_back(std::string("IP:") + buf);
      }
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

}  // namespace pyrun::ca
