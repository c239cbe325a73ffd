// The CA directory and its operations. Private keys are written only with O_EXCL and mode 0600;
// the index and CRL are replaced atomically, under a lock so two admins cannot interleave.
#include "ca/certificate_authority.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "common/file.h"

namespace pyrun::ca {
namespace {

constexpr std::string_view kCaCert = "ca.pem";
constexpr std::string_view kCaKey = "private/ca.key";
constexpr std::string_view kConfig = "ca.conf";
constexpr std::string_view kIndex = "index.txt";
constexpr std::string_view kLock = "index.lock";
constexpr std::string_view kCrl = "crl.pem";
constexpr std::string_view kIssued = "issued";
// Leaves start a little in the past so a client whose clock runs slow still accepts them.
constexpr std::time_t kBackdate = 5 * 60;
constexpr std::time_t kDay = 24 * 60 * 60;
// 16 random bytes: far above the 64 bits CA/B requires, and never negative (see randomSerial).
constexpr size_t kSerialBytes = 16;

using Asn1IntPtr = std::unique_ptr<ASN1_INTEGER, OsslFree<ASN1_INTEGER, ASN1_INTEGER_free>>;
using BnPtr = std::unique_ptr<BIGNUM, OsslFree<BIGNUM, BN_free>>;

std::string modeText(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode & 07777);
  return buf;
}

const EVP_MD* digestFor(EVP_PKEY* key) {
  // Ed25519 signs the message itself and takes no separate digest.
  return EVP_PKEY_is_a(key, "ED25519") ? nullptr : EVP_sha256();
}

Result<void> addExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr) return opensslError(std::string("extension ") + OBJ_nid2sn(nid));
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return opensslError(std::string("adding extension ") + OBJ_nid2sn(nid));
  return {};
}

Result<void> setName(X509_NAME* name, const std::string& cn) {
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return opensslError("common name '" + cn + "'");
  }
  return {};
}

Result<std::string> randomSerial(ASN1_INTEGER* out) {
  unsigned char bytes[kSerialBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return opensslError("random serial");
  // Clear the top bit so the DER INTEGER is positive; set the next one so the serial always has
  // the full 16 bytes (fixed width in listings, 126 random bits).
  bytes[0] = static_cast<unsigned char>((bytes[0] & 0x7f) | 0x40);
  BnPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), out) == nullptr) return opensslError("random serial");
  return serialHex(out);
}

Result<void> checkTimeRange(std::time_t not_before, std::time_t not_after, X509* ca) {
  if (not_after <= not_before) {
    return Error(Errc::kInvalidArgument, "--not-after " + formatTime(not_after) +
                                             " is not later than --not-before " +
                                             formatTime(not_before));
  }
  auto ca_end = toTimeT(X509_get0_notAfter(ca));
  if (!ca_end) return ca_end.error();
  if (not_after > *ca_end) {
    return Error(Errc::kInvalidArgument, "the certificate would be valid until " +
                                             formatTime(not_after) +
                                             ", after the CA itself expires (" +
                                             formatTime(*ca_end) + "); ask for fewer --days");
  }
  return {};
}

Result<void> checkCaName(const std::string& name) {
  bool ok = !name.empty() && name.size() <= 64 &&
            std::none_of(name.begin(), name.end(),
                         [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  if (!ok) {
    return Error(Errc::kInvalidArgument,
                 "CA name '" + name + "' must be 1-64 characters without control characters");
  }
  return {};
}

Result<void> checkCrlUrl(const std::string& url) {
  bool scheme = url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
  // A comma or space would split OpenSSL's extension syntax and put a different URL in the cert.
  bool clean = std::none_of(url.begin(), url.end(), [](char c) {
    return static_cast<unsigned char>(c) <= 0x20 || c == ',' || c == 0x7f;
  });
  if (!scheme || !clean || url.size() > 2048) {
    return Error(Errc::kInvalidArgument,
                 "--crl-url '" + url +
                     "' must be an http:// or https:// URL without spaces or "
                     "commas");
  }
  return {};
}

// mkdir -p: parents 0755, the last one with `mode`. An existing directory is fine.
Result<void> makeDirs(const std::string& dir, mode_t mode) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    bool last = pos == dir.size();
    if (::mkdir(part.c_str(), last ? mode : 0755) != 0 && errno != EEXIST) {
      return errnoError("create directory " + part, errno);
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return errnoError(dir, errno);
  if (!S_ISDIR(st.st_mode)) return Error(Errc::kInvalidArgument, dir + " is not a directory");
  return {};
}

Result<UniqueFd> takeLock(const std::string& dir) {
  std::string lock = dir + "/" + std::string(kLock);
  UniqueFd fd(::open(lock.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return errnoError("open lock " + lock, errno);
  // Non-blocking: a second admin gets told at once instead of a silent hang.
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Error(Errc::kBusy, "another pyrun-ca is changing the CA in " + dir + " right now (" +
                                    lock +
                                    " is locked); try again when it "
                                    "has finished");
    }
    return errnoError("lock " + lock, errno);
  }
  return fd;
}

Result<void> requireDirMode(const std::string& dir, mode_t forbidden, const std::string& what,
                            const std::string& fix) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return errnoError(dir, errno);
  if (!S_ISDIR(st.st_mode)) return Error(Errc::kInvalidArgument, dir + " is not a directory");
  if ((st.st_mode & forbidden) != 0) {
    return Error(Errc::kPermission, what + " " + dir + " has mode " + modeText(st.st_mode) + ": " +
                                        fix + " (chmod " +
                                        modeText(st.st_mode & ~forbidden & 0777) + " " + dir + ")");
  }
  return {};
}

std::string normaliseSerial(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ':') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  size_t nz = out.find_first_not_of('0');
  return nz == std::string::npos ? out : out.substr(nz);
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::string nameText(const X509_NAME* name) {
  std::unique_ptr<BIO, OsslFree<BIO, BIO_free_all>> bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "?";
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace

std::string defaultDir() {
  const char* env = std::getenv("PYRUN_CA_DIR");
  return env != nullptr && *env != '\0' ? env : "/etc/pyrun/ca";
}

Result<void> initCa(const InitOptions& options) {
  if (auto r = checkCaName(options.name); !r) return r;
  if (!options.crl_url.empty()) {
    if (auto r = checkCrlUrl(options.crl_url); !r) return r;
  }
  const std::string& dir = options.dir;
  if (auto r = makeDirs(dir, 0755); !r) return r;
  // Checked before anything is written: open() would refuse this CA later anyway.
  if (auto r =
          requireDirMode(dir, 022, "CA directory", "it must not be writable by group or others");
      !r) {
    return r;
  }
  auto lock = takeLock(dir);
  if (!lock) return lock.error();
  for (auto existing : {kCaCert, kCaKey, kIndex}) {
    std::string p = dir + "/" + std::string(existing);
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0) {
      return Error(Errc::kAlreadyExists, "a CA already exists in " + dir + " (" + p +
                                             "); pyrun-ca never overwrites a CA");
    }
  }
  if (auto r = makeDirs(dir + "/private", 0700); !r) return r;
  if (auto r = requireDirMode(dir + "/private", 077, "private key directory",
                              "it must be accessible by its owner only");
      !r) {
    return r;
  }
  if (auto r = makeDirs(dir + "/" + std::string(kIssued), 0755); !r) return r;

  auto key = generateKey(options.key_type);
  if (!key) return key.error();
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return opensslError("CA cert");
  if (auto s = randomSerial(X509_get_serialNumber(cert.get())); !s) return s.error();
  if (auto r = setName(X509_get_subject_name(cert.get()), options.name); !r) return r;
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1 ||
      X509_set_pubkey(cert.get(), key->get()) != 1) {
    return opensslError("CA certificate");
  }
  std::time_t now = std::time(nullptr);
  if (!ASN1_TIME_set(X509_getm_notBefore(cert.get()), now - kBackdate) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert.get()), now + options.days * kDay)) {
    return opensslError("CA validity");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  // pathlen:0: this CA signs leaves only, so a leaked leaf key can never mint certificates.
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"},
                            std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (auto r = addExtension(cert.get(), &ctx, nid, value); !r) return r;
  }
  if (X509_sign(cert.get(), key->get(), digestFor(key->get())) == 0) {
    return opensslError("signing the CA certificate");
  }
  auto key_pem = privateKeyPem(key->get());
  if (!key_pem) return key_pem.error();
  auto cert_pem = certificatePem(cert.get());
  if (!cert_pem) return cert_pem.error();
  // The key first and exclusively: of two racing inits only one can own it.
  if (auto r = writeNewFile(dir + "/" + std::string(kCaKey), *key_pem, 0600); !r) return r;
  if (auto r = writeNewFile(dir + "/" + std::string(kCaCert), *cert_pem, 0644); !r) return r;
  CaConfig config;
  config.crl_url = options.crl_url;
  if (auto r = replaceFile(dir + "/" + std::string(kConfig), formatConfig(config), 0644); !r) {
    return r;
  }
  if (auto r = writeNewFile(dir + "/" + std::string(kIndex), formatIndex({}), 0644); !r) return r;
  auto ca = CertificateAuthority::open(dir, false);
  if (!ca) return ca.error();
  auto crl = ca->refreshCrl(config.crl_days);
  if (!crl) return crl.error();
  return {};
}

Result<CertificateAuthority> CertificateAuthority::open(const std::string& dir, bool lock) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return Error(Errc::kNotFound, "CA directory " + dir +
                                        " does not exist (create one with `pyrun-ca init --dir " +
                                        dir + "`, or set --dir or PYRUN_CA_DIR)");
    }
    return errnoError("CA directory " + dir, errno);
  }
  if (auto r =
          requireDirMode(dir, 022, "CA directory", "it must not be writable by group or others");
      !r) {
    return r.error();
  }
  if (::access((dir + "/" + std::string(kCaCert)).c_str(), F_OK) != 0 && errno == ENOENT) {
    return Error(Errc::kNotFound, "CA directory " + dir +
                                      " holds no CA (no ca.pem); create one "
                                      "with `pyrun-ca init --dir " +
                                      dir + "`");
  }
  if (auto r = requireDirMode(dir + "/private", 077, "private key directory",
                              "it must be accessible by its owner only");
      !r) {
    return r.error();
  }
  CertificateAuthority ca;
  ca.dir_ = dir;
  if (lock) {
    auto fd = takeLock(dir);
    if (!fd) return fd.error();
    ca.lock_ = std::move(*fd);
  }
  std::string key_path = ca.path(kCaKey);
  if (auto r = requirePrivateFile(key_path, "CA key"); !r) return r.error();
  auto key_pem = readFile(key_path);
  if (!key_pem) return key_pem.error();
  auto key = parsePrivateKeyPem(*key_pem, key_path);
  if (!key) return key.error();
  auto cert_pem = readFile(ca.path(kCaCert));
  if (!cert_pem) return cert_pem.error();
  auto cert = parseCertificatePem(*cert_pem, ca.path(kCaCert));
  if (!cert) return cert.error();
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return Error(Errc::kCrypto, key_path + " does not belong to " + ca.path(kCaCert));
  }
  auto config_text = readFile(ca.path(kConfig));
  if (!config_text) return config_text.error();
  auto config = parseConfig(*config_text, ca.path(kConfig));
  if (!config) return config.error();
  auto index_text = readFile(ca.path(kIndex));
  if (!index_text) return index_text.error();
  auto entries = parseIndex(*index_text, ca.path(kIndex));
  if (!entries) return entries.error();
  ca.cert_ = std::move(*cert);
  ca.key_ = std::move(*key);
  ca.config_ = std::move(*config);
  ca.entries_ = std::move(*entries);
  return ca;
}

const IndexEntry* CertificateAuthority::bySerial(std::string_view serial) const {
  std::string want = normaliseSerial(serial);
  for (const auto& e : entries_) {
    if (e.serial == want) return &e;
  }
  return nullptr;
}

Result<IndexEntry> CertificateAuthority::find(std::string_view arg) const {
  if (const IndexEntry* e = bySerial(arg)) return *e;
  std::time_t now = std::time(nullptr);
  const IndexEntry* newest = nullptr;
  std::vector<const IndexEntry*> active;
  for (const auto& e : entries_) {
    if (e.name() != arg) continue;
    if (e.active(now)) active.push_back(&e);
    if (newest == nullptr || e.not_before >= newest->not_before) newest = &e;
  }
  if (active.size() == 1) return *active.front();
  if (active.size() > 1) {
    std::string serials;
    for (const auto* e : active) serials += (serials.empty() ? "" : ", ") + e->serial;
    return Error(Errc::kInvalidArgument, std::to_string(active.size()) +
                                             " active certificates are named '" + std::string(arg) +
                                             "' (serials " + serials + "); name one by its serial");
  }
  if (newest != nullptr) return *newest;
  std::vector<std::string> known;
  for (const auto& e : entries_) known.push_back(e.name());
  std::string msg = "no certificate named '" + std::string(arg) + "' in " + dir_;
  auto close = closeMatches(arg, known);
  if (!close.empty()) {
    msg += "; did you mean ";
    for (size_t i = 0; i < close.size(); ++i) {
      msg += (i == 0 ? "" : i + 1 == close.size() ? " or " : ", ") + ("'" + close[i] + "'");
    }
    msg += "?";
  } else {
    msg += " (see `pyrun-ca list --all`)";
  }
  return Error(Errc::kNotFound, msg);
}

Result<X509Ptr> CertificateAuthority::load(const IndexEntry& entry) const {
  std::string p = path(kIssued) + "/" + entry.serial + ".pem";
  auto pem = readFile(p);
  if (!pem) return pem.error();
  return parseCertificatePem(*pem, p);
}

Result<std::string> CertificateAuthority::makeCrl(const std::vector<IndexEntry>& entries,
                                                  long long number, int days) {
  X509CrlPtr crl(X509_CRL_new());
  std::time_t now = std::time(nullptr);
  std::unique_ptr<ASN1_TIME, OsslFree<ASN1_TIME, ASN1_TIME_free>> last(ASN1_TIME_set(nullptr, now));
  std::unique_ptr<ASN1_TIME, OsslFree<ASN1_TIME, ASN1_TIME_free>> next(
      ASN1_TIME_set(nullptr, now + days * kDay));
  if (!crl || !last || !next || X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(cert_.get())) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) {
    return opensslError("building the CRL");
  }
  for (const auto& e : entries) {
    if (!e.inCrl()) continue;
    X509_REVOKED* rev = X509_REVOKED_new();
    BIGNUM* bn = nullptr;
    bool ok = rev != nullptr && BN_hex2bn(&bn, e.serial.c_str()) != 0;
    Asn1IntPtr serial(ok ? BN_to_ASN1_INTEGER(bn, nullptr) : nullptr);
    BN_free(bn);
    std::unique_ptr<ASN1_TIME, OsslFree<ASN1_TIME, ASN1_TIME_free>> when(
        ASN1_TIME_set(nullptr, e.revoked_at));
    ok = ok && serial && when && X509_REVOKED_set_serialNumber(rev, serial.get()) == 1 &&
         X509_REVOKED_set_revocationDate(rev, when.get()) == 1;
    if (ok && e.reason != Reason::kUnspecified) {
      // RFC 5280 5.3.1: omit the reason extension rather than say "unspecified".
      std::unique_ptr<ASN1_ENUMERATED, OsslFree<ASN1_ENUMERATED, ASN1_ENUMERATED_free>> code(
          ASN1_ENUMERATED_new());
      ok = code && ASN1_ENUMERATED_set(code.get(), static_cast<long>(e.reason)) == 1 &&
           X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, code.get(), 0, 0) == 1;
    }
    if (!ok || X509_CRL_add0_revoked(crl.get(), rev) != 1) {
      X509_REVOKED_free(rev);
      return opensslError("adding serial " + e.serial + " to the CRL");
    }
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert_.get(), nullptr, nullptr, crl.get(), 0);
  X509_EXTENSION* aki =
      X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always");
  bool ok = aki != nullptr && X509_CRL_add_ext(crl.get(), aki, -1) == 1;
  X509_EXTENSION_free(aki);
  BnPtr num_bn(BN_new());
  ok = ok && num_bn && BN_set_word(num_bn.get(), static_cast<BN_ULONG>(number)) == 1;
  Asn1IntPtr num(ok ? BN_to_ASN1_INTEGER(num_bn.get(), nullptr) : nullptr);
  ok = ok && num && X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, num.get(), 0, 0) == 1;
  if (!ok || X509_CRL_sort(crl.get()) != 1 ||
      X509_CRL_sign(crl.get(), key_.get(), digestFor(key_.get())) == 0) {
    return opensslError("signing the CRL");
  }
  return crlPem(crl.get());
}

Result<void> CertificateAuthority::commit(const std::vector<IndexEntry>& entries, bool write_crl) {
  if (write_crl) {
    // The CRL before the index: if we stop in between, the certificate is already refused, and
    // the index still lets the admin repeat the command. The other order could leave a
    // "revoked" certificate that still works.
    CaConfig next = config_;
    ++next.crl_number;
    auto pem = makeCrl(entries, next.crl_number, next.crl_days);
    if (!pem) return pem.error();
    if (auto r = replaceFile(path(kConfig), formatConfig(next), 0644); !r) return r;
    config_ = next;
    if (auto r = replaceFile(path(kCrl), *pem, 0644); !r) return r;
  }
  if (auto r = replaceFile(path(kIndex), formatIndex(entries), 0644); !r) return r;
  entries_ = entries;
  return {};
}

Result<std::time_t> CertificateAuthority::refreshCrl(int days) {
  config_.crl_days = days;
  if (auto r = commit(entries_, true); !r) return r.error();
  return std::time(nullptr) + days * kDay;
}

Result<Issued> CertificateAuthority::issue(const IssueOptions& options) {
  return issueAs(options, nullptr);
}

Result<Issued> CertificateAuthority::issueAs(const IssueOptions& options,
                                             const IndexEntry* superseded) {
  std::time_t now = std::time(nullptr);
  if (options.names.empty()) return Error(Errc::kInvalidArgument, "no name given");
  if (options.days < 1) {
    return Error(Errc::kInvalidArgument, "--days must be a positive number of days");
  }
  std::vector<SubjectName> sans;
  std::vector<std::string> names;
  if (options.kind == Kind::kClient) {
    if (options.names.size() != 1) {
      return Error(Errc::kInvalidArgument, "a client certificate has exactly one name");
    }
    if (auto r = checkClientName(options.names[0]); !r) return r.error();
    names = options.names;
    for (const auto& e : entries_) {
      if (e.kind == Kind::kClient && e.name() == names[0] && e.active(now) &&
          (superseded == nullptr || e.serial != superseded->serial)) {
        return Error(Errc::kAlreadyExists,
                     "client '" + names[0] + "' already has an active certificate (serial " +
                         e.serial + ", expires " + formatTime(e.not_after) +
                         "); use `pyrun-ca renew " + names[0] + "` or revoke it first");
      }
    }
  } else {
    for (const auto& n : options.names) {
      auto parsed = parseServerName(n);
      if (!parsed) return parsed.error();
      if (std::find(names.begin(), names.end(), parsed->value) != names.end()) continue;
      names.push_back(parsed->value);
      sans.push_back(*parsed);
    }
    if (names[0].size() > 64) {
      return Error(Errc::kInvalidArgument,
                   "'" + names[0] +
                       "' is longer than the 64 characters a common name can hold; "
                       "put a shorter name first");
    }
  }
  std::time_t not_before = options.not_before.value_or(now - kBackdate);
  std::time_t not_after = options.not_after.value_or(now + options.days * kDay);
  if (auto r = checkTimeRange(not_before, not_after, cert_.get()); !r) return r.error();

  std::string out = options.out;
  if (out.empty()) out = options.kind == Kind::kClient ? names[0] + ".pem" : "server.pem";
  struct stat st {};
  if (!options.force && ::lstat(out.c_str(), &st) == 0) {
    return Error(Errc::kAlreadyExists, out +
                                           " already exists; pass --force to replace it, or "
                                           "--out to write somewhere else");
  }

  auto key_type = keyTypeOf(key_.get());
  if (!key_type) return key_type.error();
  auto key = generateKey(*key_type);
  if (!key) return key.error();
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return opensslError("leaf");
  std::string serial;
  do {
    auto s = randomSerial(X509_get_serialNumber(cert.get()));
    if (!s) return s.error();
    serial = *s;
  } while (bySerial(serial) != nullptr);
  if (auto r = setName(X509_get_subject_name(cert.get()), names[0]); !r) return r.error();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) != 1 ||
      X509_set_pubkey(cert.get(), key->get()) != 1 ||
      !ASN1_TIME_set(X509_getm_notBefore(cert.get()), not_before) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert.get()), not_after)) {
    return opensslError("building the certificate");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert_.get(), cert.get(), nullptr, nullptr, 0);
  // One purpose per certificate: a server certificate cannot log in as a client, and a client
  // certificate cannot impersonate a server.
  const char* eku = options.kind == Kind::kServer ? "serverAuth" : "clientAuth";
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
        std::pair{NID_key_usage, "critical,digitalSignature"}, std::pair{NID_ext_key_usage, eku},
        std::pair{NID_subject_key_identifier, "hash"},
        std::pair{NID_authority_key_identifier, "keyid:always"}}) {
    if (auto r = addExtension(cert.get(), &ctx, nid, value); !r) return r.error();
  }
  if (options.kind == Kind::kServer) {
    GENERAL_NAMES* gens = GENERAL_NAMES_new();
    bool ok = gens != nullptr;
    for (const auto& san : sans) {
      if (!ok) break;
      GENERAL_NAME* gen = nullptr;
      if (san.type == SubjectName::Type::kIp) {
        gen = GENERAL_NAME_new();
        ASN1_OCTET_STRING* ip = a2i_IPADDRESS(san.value.c_str());
        if (gen != nullptr && ip != nullptr) {
          GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
        } else {
          ASN1_OCTET_STRING_free(ip);
          GENERAL_NAME_free(gen);
          gen = nullptr;
        }
      } else {
        gen = GENERAL_NAME_new();
        ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
        if (gen != nullptr && dns != nullptr &&
            ASN1_STRING_set(dns, san.value.data(), static_cast<int>(san.value.size())) == 1) {
          GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
        } else {
          ASN1_IA5STRING_free(dns);
          GENERAL_NAME_free(gen);
          gen = nullptr;
        }
      }
      ok = gen != nullptr && sk_GENERAL_NAME_push(gens, gen) > 0;
      if (!ok) GENERAL_NAME_free(gen);
    }
    ok =
        ok && X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1;
    GENERAL_NAMES_free(gens);
    if (!ok) return opensslError("subjectAltName");
    if (!config_.crl_url.empty()) {
      if (auto r =
              addExtension(cert.get(), &ctx, NID_crl_distribution_points, "URI:" + config_.crl_url);
          !r) {
        return r.error();
      }
    }
  }
  if (X509_sign(cert.get(), key_.get(), digestFor(key_.get())) == 0) {
    return opensslError("signing the certificate");
  }
  auto leaf_pem = certificatePem(cert.get());
  auto ca_pem = certificatePem(cert_.get());
  auto key_pem = privateKeyPem(key->get());
  if (!leaf_pem) return leaf_pem.error();
  if (!ca_pem) return ca_pem.error();
  if (!key_pem) return key_pem.error();

  IndexEntry entry;
  entry.serial = serial;
  entry.kind = options.kind;
  entry.not_before = not_before;
  entry.not_after = not_after;
  entry.names = names;
  std::string issued_path = path(kIssued) + "/" + serial + ".pem";
  if (auto r = writeNewFile(issued_path, *leaf_pem, 0644); !r) return r.error();
  std::vector<IndexEntry> before = entries_;
  std::vector<IndexEntry> after = entries_;
  after.push_back(entry);
  if (superseded != nullptr) {
    for (auto& e : after) {
      if (e.serial == superseded->serial) {
        e.status = Status::kSuperseded;
        e.revoked_at = now;
        e.reason = Reason::kSuperseded;
      }
    }
  }
  // Recorded before the bundle leaves the CA, so everything handed out can be revoked.
  if (auto r = commit(after, superseded != nullptr); !r) {
    ::unlink(issued_path.c_str());
    return r.error();
  }
  std::string bundle = *leaf_pem + *ca_pem + *key_pem;
  auto written = options.force ? replaceFile(out, bundle, 0600) : writeNewFile(out, bundle, 0600);
  if (!written) {
    // Nobody holds the new key: undo the record so the name can be issued again.
    if (auto r = commit(before, superseded != nullptr); r) ::unlink(issued_path.c_str());
    return written.error();
  }
  return Issued{entry, out};
}

Result<IndexEntry> CertificateAuthority::revoke(std::string_view arg, Reason reason) {
  auto found = find(arg);
  if (!found) return found.error();
  if (found->status != Status::kValid) {
    return Error(Errc::kAlreadyExists, "certificate " + found->serial + " ('" + found->name() +
                                           "') is already " + statusName(found->status));
  }
  std::vector<IndexEntry> after = entries_;
  IndexEntry result;
  for (auto& e : after) {
    if (e.serial == found->serial) {
      e.status = Status::kRevoked;
      e.revoked_at = std::time(nullptr);
      e.reason = reason;
      result = e;
    }
  }
  if (auto r = commit(after, true); !r) return r.error();
  return result;
}

Result<Issued> CertificateAuthority::renew(std::string_view arg, IssueOptions options) {
  auto found = find(arg);
  if (!found) return found.error();
  if (found->status != Status::kValid) {
    return Error(Errc::kInvalidArgument, "certificate " + found->serial + " ('" + found->name() +
                                             "') is " + statusName(found->status) +
                                             " and cannot be renewed; issue a new one");
  }
  options.kind = found->kind;
  options.names = found->names;
  return issueAs(options, &*found);
}

Result<std::string> CertificateAuthority::crlWarning(std::time_t now) const {
  std::string p = path(kCrl);
  auto pem = readFile(p);
  if (!pem) return pem.error();
  auto crl = parseCrlPem(*pem, p);
  if (!crl) return crl.error();
  auto next = toTimeT(X509_CRL_get0_nextUpdate(crl->get()));
  if (!next) return next.error();
  std::string fix = "run `pyrun-ca crl --dir " + dir_ + "` to refresh it";
  if (*next <= now) {
    return "warning: the CRL " + p + " expired on " + formatTime(*next) +
           ": pyrund refuses every client until you " + fix;
  }
  if (*next - now < kCrlWarningDays * kDay) {
    return "warning: the CRL " + p + " expires in " + std::to_string((*next - now) / kDay) +
           " days (" + formatTime(*next) + "), and then pyrund refuses every client; " + fix;
  }
  return std::string();
}

Result<std::string> describeCertificate(X509* cert, const IndexEntry* entry, std::time_t now) {
  std::ostringstream out;
  auto line = [&](const char* label, const std::string& value) {
    out << label << std::string(13 - std::string_view(label).size(), ' ') << value << "\n";
  };
  line("subject:", nameText(X509_get_subject_name(cert)));
  line("issuer:", nameText(X509_get_issuer_name(cert)));
  auto serial = serialHex(X509_get0_serialNumber(cert));
  if (!serial) return serial.error();
  line("serial:", *serial);
  std::string kind = "unknown";
  uint32_t xku = X509_get_extended_key_usage(cert);
  if ((X509_get_extension_flags(cert) & EXFLAG_CA) != 0)
    kind = "CA";
  else if ((xku & XKU_SSL_SERVER) != 0 && (xku & XKU_SSL_CLIENT) == 0)
    kind = "server";
  else if ((xku & XKU_SSL_CLIENT) != 0 && (xku & XKU_SSL_SERVER) == 0)
    kind = "client";
  line("kind:", kind);
  auto sans = subjectAltNames(cert);
  if (!sans.empty()) line("names:", joinNames(sans));
  auto nb = toTimeT(X509_get0_notBefore(cert));
  auto na = toTimeT(X509_get0_notAfter(cert));
  if (!nb) return nb.error();
  if (!na) return na.error();
  line("not before:", formatTime(*nb));
  line("not after:", formatTime(*na));
  line("key:", describeKey(X509_get0_pubkey(cert)));
  if (entry != nullptr) {
    std::string status = entry->describeStatus(now);
    if (entry->inCrl()) {
      status += " on " + formatTime(entry->revoked_at) + " (" + reasonName(entry->reason) + ")";
    }
    line("status:", status);
  } else if (*na <= now) {
    line("status:", "expired");
  } else if (*nb > now) {
    line("status:", "not yet valid");
  }
  auto fp = fingerprintSha256(cert);
  if (!fp) return fp.error();
  line("sha256:", *fp);
  auto pin = spkiPin(cert);
  if (!pin) return pin.error();
  line("spki pin:", *pin);
  return out.str();
}

}  // namespace pyrun::ca
