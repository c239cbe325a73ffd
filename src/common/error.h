// Project errors: Result<T> for expected failures, carrying a category code and a human detail.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <string>
#include <string_view>
#include <system_error>

namespace pyrun {

// What kind of failure; the detail string says which one exactly.
enum class Errc {
  kOk = 0,
  kInvalidArgument,  // bad input from a user, admin or file (names, numbers, syntax)
  kNotFound,         // a file, name or serial that does not exist
  kAlreadyExists,    // something we refuse to overwrite
  kPermission,       // loose file modes, EACCES, not allowed by policy
  kIo,               // read/write/open failures of the system
  kClosed,           // the peer closed its end where a message was expected
  kCrypto,           // OpenSSL failures outside TLS handshakes (keys, certificates, CRLs)
  kTls,              // TLS handshake and verification failures
  kProtocol,         // malformed or unexpected frames
  kPolicy,           // invalid policy files
  kSandbox,          // a confinement step failed
  kLimit,            // a configured limit was reached
  kBusy,             // the server cannot take more work now
  kInternal,         // a bug: an invariant did not hold
};

const boost::system::error_category& errorCategory() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), errorCategory()};
}

// An error code plus the sentence a person needs to act on it.
class Error {
 public:
  Error() = default;
  Error(Errc code, std::string detail) : code_(make_error_code(code)), detail_(std::move(detail)) {}
  Error(boost::system::error_code code, std::string detail)
      : code_(code), detail_(std::move(detail)) {}

  const boost::system::error_code& code() const noexcept { return code_; }
  // The human detail alone, e.g. "ca.pem: certificate has expired".
  const std::string& detail() const noexcept { return detail_; }
  bool is(Errc e) const noexcept { return code_ == make_error_code(e); }

 private:
  boost::system::error_code code_;
  std::string detail_;
};

// Thrown by Result<T>::value() on an error; what() is the detail.
class ErrorException : public std::runtime_error {
 public:
  explicit ErrorException(Error e) : std::runtime_error(e.detail()), error_(std::move(e)) {}
  const Error& error() const noexcept { return error_; }

 private:
  Error error_;
};

// Found by boost::system::result through ADL.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;

// "what: strerror(err)" as a kIo error (kPermission for EACCES/EPERM, kNotFound for ENOENT).
Error errnoError(std::string_view what, int err);

}  // namespace pyrun

namespace boost::system {
template <>
struct is_error_code_enum<pyrun::Errc> : std::true_type {};
}  // namespace boost::system
