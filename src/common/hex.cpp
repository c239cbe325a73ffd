// Hexadecimal text.
#include "common/hex.h"

#include <cctype>

namespace pyrun {

std::string hexLower(const unsigned char* data, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0xf];
  }
  return out;
}

std::string serialText(std::string_view bn_hex) {
  std::string out;
  if (!bn_hex.empty() && bn_hex.front() == '-') {
    out = "-";
    bn_hex.remove_prefix(1);
  }
  size_t nz = bn_hex.find_first_not_of('0');
  if (nz == std::string_view::npos) return "0";
  for (char c : bn_hex.substr(nz)) {
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

}  // namespace pyrun
