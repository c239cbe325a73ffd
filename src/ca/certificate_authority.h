// A pyrun CA directory: creating it, issuing server and client bundles, revoking, the CRL, and
// reading back what was issued. Layout and formats are described in docs/pyrun-ca.md.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ca/index.h"
#include "ca/names.h"
#include "ca/openssl_util.h"
#include "common/error.h"
#include "common/fd.h"

namespace pyrun::ca {

// $PYRUN_CA_DIR when set and non-empty, else /etc/pyrun/ca.
std::string defaultDir();

// Warn when the CRL has less than this left: an expired CRL makes pyrund refuse every client.
inline constexpr int kCrlWarningDays = 30;

struct InitOptions {
  std::string dir;
  std::string name = "pyrun CA";
  int days = 3650;
  KeyType key_type = KeyType::kP256;
  std::string crl_url;  // http(s) URL put into server certificates as CRL distribution point
};

// Creates a CA in dir (created with parents if missing): private/ca.key (0600, private/ 0700),
// ca.pem (CA:TRUE, pathlen:0), ca.conf, index.txt, issued/, crl.pem (valid 365 days).
// Errors: kAlreadyExists when dir already holds a CA (it is never overwritten); kInvalidArgument
// for a bad name or URL; kBusy when another pyrun-ca holds the lock; kIo/kPermission.
Result<void> initCa(const InitOptions& options);

struct IssueOptions {
  Kind kind = Kind::kClient;
  std::vector<std::string> names;  // client: exactly one; server: one or more, [0] is the CN
  int days = 90;
  std::optional<std::time_t> not_before;  // default: now minus 5 minutes (clock skew)
  std::optional<std::time_t> not_after;   // default: now plus days
  std::string out;                        // default: NAME.pem (client) / server.pem, in the cwd
  bool force = false;                     // replace an existing output file
};

struct Issued {
  IndexEntry entry;
  std::string bundle_path;
};

// An opened CA directory whose permissions were checked. Mutating calls need the lock.
class CertificateAuthority {
 public:
  // Opens dir. Errors: kNotFound when it holds no CA; kPermission for a CA directory writable by
  // group/others, a private/ directory or ca.key accessible by group/others, or unreadable files;
  // kBusy when lock is true and another pyrun-ca holds DIR/index.lock.
  static Result<CertificateAuthority> open(const std::string& dir, bool lock);

  const std::string& dir() const { return dir_; }
  const std::vector<IndexEntry>& entries() const { return entries_; }
  X509* certificate() const { return cert_.get(); }

  // Issues a certificate and writes its bundle (leaf, CA, PKCS#8 key; 0600, O_EXCL unless force).
  // Errors: bad names (kInvalidArgument), an active client certificate with the same name
  // (kAlreadyExists), an existing output file without force (kAlreadyExists), validity not
  // inside the CA's (kInvalidArgument).
  Result<Issued> issue(const IssueOptions& options);
  // Revokes by serial or by name and rewrites crl.pem at once. Unknown names suggest close matches.
  Result<IndexEntry> revoke(std::string_view name_or_serial, Reason reason);
  // Issues a new certificate for the same names and kind (options.names is ignored); the old one
  // becomes "superseded" and is put into the CRL in the same step.
  Result<Issued> renew(std::string_view name_or_serial, IssueOptions options);
  // Writes a fresh CRL valid for days (and remembers days for later CRLs). Returns nextUpdate.
  Result<std::time_t> refreshCrl(int days);

  // The entry an argument names: a serial, or the CN of an active (else the newest) certificate.
  Result<IndexEntry> find(std::string_view name_or_serial) const;
  // The issued certificate of an entry (issued/<serial>.pem).
  Result<X509Ptr> load(const IndexEntry& entry) const;
  // The entry with this serial, if any.
  const IndexEntry* bySerial(std::string_view serial) const;

  // A one-line warning when crl.pem expires within kCrlWarningDays of now (or has expired);
  // empty when it is fine.
  Result<std::string> crlWarning(std::time_t now) const;

 private:
  CertificateAuthority() = default;
  Result<void> commit(const std::vector<IndexEntry>& entries, bool write_crl);
  Result<std::string> makeCrl(const std::vector<IndexEntry>& entries, long long number, int days);
  Result<Issued> issueAs(const IssueOptions& options, const IndexEntry* superseded);
  std::string path(std::string_view name) const { return dir_ + "/" + std::string(name); }

  std::string dir_;
  UniqueFd lock_;
  X509Ptr cert_;
  PkeyPtr key_;
  CaConfig config_;
  std::vector<IndexEntry> entries_;
};

// Human summary of a certificate: subject, issuer, serial, kind, names, validity, key, SHA-256
// fingerprint, SPKI pin, and the CA's status for it when entry is given.
Result<std::string> describeCertificate(X509* cert, const IndexEntry* entry, std::time_t now);

}  // namespace pyrun::ca
