// Live revocation: reading a CRL file, judging its freshness, and installing it in the running
// server's TLS context so that the next handshake checks against it.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <ctime>
#include <optional>
#include <set>
#include <string>

#include "common/error.h"

namespace pyrun::server {

struct CrlContents {
  std::set<std::string> revoked_serials;   // lower-case hex, no leading zeros (as PeerIdentity)
  std::optional<std::time_t> next_update;  // the earliest nextUpdate of the file's CRLs
};

// Reads every CRL of a PEM file. Errors (kCrypto/kIo) name the file.
Result<CrlContents> readCrl(const std::string& path);

enum class CrlFreshness { kFresh, kExpiresSoon, kExpired, kNoNextUpdate };
// kExpiresSoon when fewer than 7 days are left.
CrlFreshness crlFreshness(const std::optional<std::time_t>& next_update, std::time_t now);

// The log sentence for a freshness that needs one (empty for kFresh): a warning for kExpiresSoon,
// the loud error for kExpired, both naming the file and what to run (`pyrun-ca crl`).
std::string crlFreshnessMessage(CrlFreshness freshness, const std::string& path,
                                const std::optional<std::time_t>& next_update, std::time_t now);

// Replaces ctx's verification store by one with the same trust anchors and the CRLs of path, so
// that every handshake from now on checks against them (handshakes already done are unaffected;
// the caller deals with their jobs). On error ctx is left as it was.
Result<void> installCrl(SSL_CTX* ctx, const std::string& path);

// What identifies a CRL file's version on disk, to notice a replacement (pyrun-ca writes a new
// file and renames it over the old one: the inode changes).
struct FileStamp {
  bool exists = false;
  uint64_t inode = 0, size = 0;
  int64_t mtime_ns = 0;
  friend bool operator==(const FileStamp&, const FileStamp&) = default;
};
FileStamp stampOf(const std::string& path);

}  // namespace pyrun::server
