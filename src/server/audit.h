// pyrund's audit trail: one JSON object per line per event (connect, auth_fail, job_start,
// job_end, reload, ...). Never script contents, stdin or keys: only names, digests and numbers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/fd.h"

namespace pyrun::server {

// `text` as the inside of a JSON string: quotes, backslashes and every control character escaped;
// bytes that are not valid UTF-8 become \u00XX escapes of their byte value, so a hostile
// certificate name or script name can neither break the line nor the JSON.
std::string jsonEscape(std::string_view text);

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
  std::string body_;
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
