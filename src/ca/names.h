// What pyrun-ca accepts as names, days and revocation reasons, and close-match suggestions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun::ca {

// A server name as it goes into subjectAltName.
struct SubjectName {
  enum class Type { kDns, kIp };
  Type type;
  std::string value;  // DNS names lower-cased; IP addresses in canonical form (inet_ntop)
};

// Auto-types a server name: an IPv4/IPv6 literal becomes an IP SAN, anything else must be a DNS
// name (labels of letters, digits and '-', at most 253 characters; "*." allowed as the first
// label). kInvalidArgument with the reason otherwise (e.g. "999.1.1.1").
Result<SubjectName> parseServerName(std::string_view name);

// A client name becomes the certificate's CN (the identity pyrund maps to a policy) and the default
// bundle file name NAME.pem: 1-64 letters, digits, '.', '_', '@', '-', starting with a letter or
// digit (so it can never be a path).
Result<void> checkClientName(std::string_view name);

// "--days" value: a whole number from 1 to 36500.
Result<int> parseDays(std::string_view text, std::string_view option);

// CRL reason codes (RFC 5280) that make sense for a leaf certificate.
enum class Reason {
  kUnspecified = 0,
  kKeyCompromise = 1,
  kAffiliationChanged = 3,
  kSuperseded = 4,
  kCessationOfOperation = 5,
  kPrivilegeWithdrawn = 9,
};
// Accepts "keyCompromise", "key-compromise", "key_compromise" (any case).
Result<Reason> parseReason(std::string_view text);
std::string reasonName(Reason reason);  // "keyCompromise"

// Candidates within a small edit distance of `name`, closest first (at most 3).
std::vector<std::string> closeMatches(std::string_view name, const std::vector<std::string>& known);

}  // namespace pyrun::ca
