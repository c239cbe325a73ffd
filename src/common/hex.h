// Hexadecimal text for digests and certificate serial numbers, one spelling for every layer.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pyrun {

// Lower-case hex of len bytes, two digits each ("00ff").
std::string hexLower(const unsigned char* data, size_t len);

// A serial number as pyrun prints it everywhere (pyrun-ca's index and listings, the peer identity,
// the audit log, the CRL's revoked set): lower-case hex without leading zeros, "0" for zero, a
// negative one (which RFC 5280 forbids but OpenSSL parses) keeping its '-'. bn_hex is OpenSSL's
// BN_bn2hex text, which prints whole bytes ("0A12").
std::string serialText(std::string_view bn_hex);

}  // namespace pyrun
