// The CA's record of what it issued (index.txt) and its settings (ca.conf), as text formats.
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "ca/names.h"
#include "common/error.h"

namespace pyrun::ca {

enum class Kind { kServer, kClient };
std::string kindName(Kind kind);  // "server" / "client"

// What the index says about a certificate; "expired" is derived from not_after, never stored.
enum class Status { kValid, kRevoked, kSuperseded };
std::string statusName(Status status);

struct IndexEntry {
  std::string serial;  // lower-case hex, as serialHex() prints it
  Kind kind = Kind::kClient;
  Status status = Status::kValid;
  std::time_t not_before = 0;
  std::time_t not_after = 0;
  std::time_t revoked_at = 0;  // 0 unless revoked or superseded
  Reason reason = Reason::kUnspecified;
  std::vector<std::string> names;  // names[0] is the CN

  const std::string& name() const { return names.front(); }
  // Valid and not yet expired at `now`.
  bool active(std::time_t now) const { return status == Status::kValid && not_after > now; }
  // "valid", "expired", "revoked" or "superseded".
  std::string describeStatus(std::time_t now) const;
  // In the CRL: revoked and superseded certificates both are.
  bool inCrl() const { return status != Status::kValid; }
};

// One line per certificate, tab-separated:
//   serial kind status not_before not_after revoked_at reason names(comma-separated)
// Lines starting with '#' are comments. Errors name `path` and the line number.
Result<std::vector<IndexEntry>> parseIndex(std::string_view text, const std::string& path);
std::string formatIndex(const std::vector<IndexEntry>& entries);

// ca.conf: "key = value" lines. Unknown keys are errors, so a typo cannot silently drop a setting.
struct CaConfig {
  std::string crl_url;       // CRL distribution point put into server certificates; may be empty
  int crl_days = 365;        // validity of each CRL written by revoke/crl/renew
  long long crl_number = 0;  // the number of the last CRL written (crlNumber extension)
};
Result<CaConfig> parseConfig(std::string_view text, const std::string& path);
std::string formatConfig(const CaConfig& config);

}  // namespace pyrun::ca
