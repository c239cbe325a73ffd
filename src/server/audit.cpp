// The audit trail (see audit.h).
#include "server/audit.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <variant>

// Boost.JSON, header-only: its definitions are compiled here, in this one file.
#include <boost/json/src.hpp>

#include "common/hex.h"
#include "common/log.h"

namespace pyrun::server {
namespace {

// Length of the UTF-8 sequence starting at s[i] when it is valid (overlong forms, surrogates and
// code points above U+10FFFF are not), else 0.
size_t utf8Length(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k) { return k < s.size() && (b(k) & 0xC0) == 0x80; };
  unsigned char c = b(i);
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(i + 1) >= 0xA0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(i + 1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

std::string validUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else if (size_t n = utf8Length(text, i); n > 0) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      // Not UTF-8: the character U+00XX of the byte's value, in UTF-8, keeps the byte visible
      // without making the line invalid JSON.
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
      ++i;
    }
  }
  return out;
}

std::string isoTime(std::chrono::system_clock::time_point when) {
  auto since = when.time_since_epoch();
  auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since - seconds).count();
  std::time_t t = static_cast<std::time_t>(seconds.count());
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%S", &tm);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>(millis));
  return std::string(buffer) + ms;
}

AuditLine::AuditLine(std::string_view event, std::chrono::system_clock::time_point when) {
  str("time", isoTime(when));
  str("event", event);
}

AuditLine::AuditLine(std::string_view event) : AuditLine(event, std::chrono::system_clock::now()) {}

AuditLine& AuditLine::str(std::string_view key, std::string_view value) {
  fields_.emplace_back(validUtf8(key), validUtf8(value));
  return *this;
}

AuditLine& AuditLine::num(std::string_view key, uint64_t value) {
  fields_.emplace_back(validUtf8(key), value);
  return *this;
}

AuditLine& AuditLine::sint(std::string_view key, int64_t value) {
  fields_.emplace_back(validUtf8(key), value);
  return *this;
}

std::string AuditLine::text() const {
  // Boost.JSON writes the object (keys in the order added) and escapes the strings: quotes,
  // backslashes and control characters. It copies other bytes as they are, which validUtf8 made
  // valid UTF-8 first.
  boost::json::object object;
  for (const auto& [key, value] : fields_) {
    std::visit([&, k = std::string_view(key)](const auto& v) { object[k] = v; }, value);
  }
  return boost::json::serialize(object) + "\n";
}

std::string sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return "";
  }
  return hexLower(digest, length);
}

namespace {

Result<UniqueFd> openAppend(const std::string& path) {
  // O_NOFOLLOW: a link planted where the log belongs must not redirect root's first open.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640));
  if (!fd) return errnoError("cannot open the audit log " + path, errno);
  return fd;
}

}  // namespace

Result<AuditLog> AuditLog::open(const std::string& path, int owner_uid, int owner_gid) {
  auto fd = openAppend(path);
  if (!fd) return fd.error();
  if (owner_uid >= 0 &&
      ::fchown(fd->get(), static_cast<uid_t>(owner_uid), static_cast<gid_t>(owner_gid)) != 0) {
    return errnoError("cannot give the audit log " + path + " to the server's user", errno);
  }
  AuditLog log;
  log.path_ = path;
  log.fd_ = std::move(*fd);
  return log;
}

void AuditLog::write(const AuditLine& line) {
  if (!fd_) return;
  std::string text = line.text();
  // One write(2) on O_APPEND: the line lands whole at the end even if another process appends.
  ssize_t n = ::write(fd_.get(), text.data(), text.size());
  if (n == static_cast<ssize_t>(text.size())) {
    failing_ = false;
    return;
  }
  if (!failing_) {
    failing_ = true;
    if (n < 0) {
      PYRUN_PLOG(kError) << "cannot write to the audit log " << path_;
    } else {
      PYRUN_LOG(kError) << "short write to the audit log " << path_;
    }
  }
}

Result<void> AuditLog::reopen() {
  if (path_.empty()) return {};
  auto fd = openAppend(path_);
  if (!fd) return fd.error();
  fd_ = std::move(*fd);
  return {};
}

}  // namespace pyrun::server
