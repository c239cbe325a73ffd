// PROXY protocol v2 (HAProxy's send-proxy-v2): a pure codec over bytes that tells pyrund the real
// client address of a connection relayed by a trusted load balancer. Version 1 (text) is refused.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "common/error.h"

namespace pyrun::server {

// The fixed part of a v2 header: signature (12), version/command, family/protocol, length (2).
inline constexpr size_t kProxyHeaderPrefix = 16;
// The largest address block (addresses and TLVs) accepted. The longest address form is AF_UNIX's
// 216 bytes; HAProxy adds TLVs only when configured to (proxy-v2-options), and a few of those fit.
inline constexpr size_t kMaxProxyAddressBlock = 1024;

enum class ProxyCommand {
  kLocal,  // the proxy's own connection (a health check): no client behind it
  kProxy,  // relayed for the client at `source`
};

struct ProxyHeader {
  ProxyCommand command = ProxyCommand::kLocal;
  // Set for kProxy only: the client's address and port, and the address it connected to.
  boost::asio::ip::address source;
  uint16_t source_port = 0;
  boost::asio::ip::address destination;
  uint16_t destination_port = 0;
};

// The whole header's length (prefix and address block) from its first kProxyHeaderPrefix bytes.
// Errors (kProtocol): fewer bytes, not the v2 signature (a TLS ClientHello, a v1 text header,
// anything else), a version other than 2, or an address block over kMaxProxyAddressBlock.
Result<size_t> proxyHeaderLength(std::span<const uint8_t> prefix);

// Parses one complete header (exactly proxyHeaderLength() bytes). kProxy needs TCP over IPv4 or
// IPv6 with its addresses inside the block; TLVs after them are skipped unread. kLocal ignores
// the block. Errors (kProtocol): a length that does not match, an unknown command, a PROXY
// command for UDP, AF_UNIX or an unspecified family, an address block too short for its family.
Result<ProxyHeader> parseProxyHeader(std::span<const uint8_t> header);

// A network in CIDR notation: trusted_proxies entries.
struct AddressRange {
  boost::asio::ip::address network;  // host bits zero
  unsigned prefix = 0;
  std::string text;  // as written in the configuration
};

// Parses "10.0.0.0/8", "2001:db8::/32" or a bare address (/32, /128). Errors (kInvalidArgument):
// not an IP literal, a prefix out of range, host bits set ("10.0.0.1/8": probably a typo).
Result<AddressRange> parseAddressRange(const std::string& text);

// Whether `address` is inside `range`. A v4-mapped IPv6 address counts as its IPv4 address.
bool rangeContains(const AddressRange& range, const boost::asio::ip::address& address);

// "203.0.113.7:51234" or "[2001:db8::1]:51234", as the logs and audit lines write peers.
std::string endpointText(const boost::asio::ip::address& address, uint16_t port);

}  // namespace pyrun::server
