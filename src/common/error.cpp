// The project's error category and errno conversion.
#include "common/error.h"

#include <cerrno>
#include <cstring>

namespace pyrun {
namespace {

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "pyrun"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::kOk:
        return "ok";
      case Errc::kInvalidArgument:
        return "invalid argument";
      case Errc::kNotFound:
        return "not found";
      case Errc::kAlreadyExists:
        return "already exists";
      case Errc::kPermission:
        return "permission denied";
      case Errc::kIo:
        return "i/o error";
      case Errc::kClosed:
        return "closed by the peer";
      case Errc::kCrypto:
        return "cryptographic error";
      case Errc::kTls:
        return "tls error";
      case Errc::kProtocol:
        return "protocol error";
      case Errc::kPolicy:
        return "invalid policy";
      case Errc::kSandbox:
        return "sandbox error";
      case Errc::kLimit:
        return "limit exceeded";
      case Errc::kBusy:
        return "busy";
      case Errc::kInternal:
        return "internal error";
    }
    return "unknown error";
  }
};

}  // namespace

const boost::system::error_category& errorCategory() noexcept {
  static const Category category;
  return category;
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw ErrorException(e);
}

Error errnoError(std::string_view what, int err) {
  Errc code = Errc::kIo;
  if (err == EACCES || err == EPERM) code = Errc::kPermission;
  if (err == ENOENT) code = Errc::kNotFound;
  if (err == EEXIST) code = Errc::kAlreadyExists;
  std::string detail(what);
  detail += ": ";
  detail += std::strerror(err);
  return Error(code, std::move(detail));
}

}  // namespace pyrun
