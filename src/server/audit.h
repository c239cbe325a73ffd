// pyrund's audit trail: one JSON object per line per event (connect, auth_fail, job_start,
// job_end, reload, ...). Never script contents, stdin or keys: only names, digests and numbers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/error.h"
#include "common/fd.h"

namespace pyrun::server {

// text with every byte that is not part of valid UTF-8 replaced by the character U+00XX of its
// value (in UTF-8), so that a hostile certificate or script name can break neither the line nor
// the JSON (the serializer escapes quotes, backslashes and control characters).
std::string validUtf8(std::string_view text);

// "2026-11-26T11:00:15.123Z"
std::string isoTime(std::chrono::system_clock::time_point when);

// Builds one audit line: {"time":"...","event":"..." ,...}. Fields appear in the order added.
class AuditLine {
 public:
  AuditLine(std::string_view event, std::chrono::system_clock::time_point when);
  explicit AuditLine(std::string_view event);  // now
  AuditLine& str(std::string_view key, std::string_view value);
  AuditLine& num(std::string_view key, uint64_t value);
  AuditLine& sint(std::string_view key, int64_t value);
  // The complete line, with the closing brace and a newline.
  std::string text() const;

 private:
  std::vector<std::pair<std::string, std::variant<std::string, uint64_t, int64_t>>> fields_;
};

// Lower-case hex SHA-256 of bytes.
std::string sha256Hex(std::string_view bytes);

// The audit log file: opened (append, create 0640) while pyrund may still be root, written with
// one write(2) per line on an O_APPEND descriptor, so lines never interleave.
class AuditLog {
 public:
  AuditLog() = default;
  // Opens path; when owner_uid is not -1 the file is given to that user (the front's user after
  // the privilege drop), so that a reopen after rotation works without root. Errors name the path.
  static Result<AuditLog> open(const std::string& path, int owner_uid = -1, int owner_gid = -1);

  bool enabled() const noexcept { return fd_.get() >= 0; }
  const std::string& path() const noexcept { return path_; }

  // Writes a line; failures are logged (once until a write succeeds again), never thrown: auditing
  // must not take the server down.
  void write(const AuditLine& line);
  // Reopens path (after logrotate moved the file). On failure the old descriptor is kept and the
  // error returned.
  Result<void> reopen();

 private:
  std::string path_;
  UniqueFd fd_;
  bool failing_ = false;
};

}  // namespace pyrun::server
