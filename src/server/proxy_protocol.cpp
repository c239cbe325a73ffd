// PROXY protocol v2 codec (https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt,
// section 2.2).
#include "server/proxy_protocol.h"

#include <algorithm>
#include <array>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

namespace pyrun::server {

namespace asio = boost::asio;

namespace {

constexpr std::array<uint8_t, 12> kSignature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr uint8_t kVersion2 = 0x2;
constexpr uint8_t kCommandLocal = 0x0;
constexpr uint8_t kCommandProxy = 0x1;
constexpr uint8_t kFamilyInet = 0x1;
constexpr uint8_t kFamilyInet6 = 0x2;
constexpr uint8_t kProtocolStream = 0x1;
constexpr size_t kInetBlock = 4 + 4 + 2 + 2;
constexpr size_t kInet6Block = 16 + 16 + 2 + 2;

uint16_t readBe16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

Error malformed(const std::string& why) {
  return Error(Errc::kProtocol, "PROXY protocol header: " + why);
}

}  // namespace

Result<size_t> proxyHeaderLength(std::span<const uint8_t> prefix) {
  if (prefix.size() < kProxyHeaderPrefix) return malformed("truncated");
  if (!std::equal(kSignature.begin(), kSignature.end(), prefix.begin())) {
    return malformed("no PROXY v2 signature");
  }
  if ((prefix[12] >> 4) != kVersion2) {
    return malformed("version " + std::to_string(prefix[12] >> 4) + ", expected 2");
  }
  const size_t block = readBe16(prefix.data() + 14);
  if (block > kMaxProxyAddressBlock) {
    return malformed("address block of " + std::to_string(block) + " bytes, over " +
                     std::to_string(kMaxProxyAddressBlock));
  }
  return kProxyHeaderPrefix + block;
}

Result<ProxyHeader> parseProxyHeader(std::span<const uint8_t> header) {
  auto length = proxyHeaderLength(header);
  if (!length) return length.error();
  if (header.size() != *length) return malformed("length does not match its length field");
  const std::span<const uint8_t> block = header.subspan(kProxyHeaderPrefix);
  const uint8_t command = header[12] & 0x0F;
  ProxyHeader out;
  if (command == kCommandLocal) {
    // The proxy speaking for itself: whatever address block follows is not about a client.
    out.command = ProxyCommand::kLocal;
    return out;
  }
  if (command != kCommandProxy) return malformed("unknown command " + std::to_string(command));
  out.command = ProxyCommand::kProxy;
  const uint8_t family = header[13] >> 4;
  const uint8_t protocol = header[13] & 0x0F;
  // Fail closed: a relayed connection without a TCP/IP client address cannot be attributed, and
  // falling back to the proxy's address would merge every such client into one.
  if (protocol != kProtocolStream) return malformed("not a TCP (stream) connection");
  if (family == kFamilyInet) {
    if (block.size() < kInetBlock) return malformed("IPv4 address block too short");
    asio::ip::address_v4::bytes_type src, dst;
    std::copy_n(block.data(), 4, src.begin());
    std::copy_n(block.data() + 4, 4, dst.begin());
    out.source = asio::ip::address_v4(src);
    out.destination = asio::ip::address_v4(dst);
    out.source_port = readBe16(block.data() + 8);
    out.destination_port = readBe16(block.data() + 10);
    return out;
  }
  if (family == kFamilyInet6) {
    if (block.size() < kInet6Block) return malformed("IPv6 address block too short");
    asio::ip::address_v6::bytes_type src, dst;
    std::copy_n(block.data(), 16, src.begin());
    std::copy_n(block.data() + 16, 16, dst.begin());
    asio::ip::address_v6 src6(src), dst6(dst);
    // A v4-mapped client counts as its v4 address, as on a dual-stack listening socket.
    out.source = src6.is_v4_mapped()
                     ? asio::ip::address(asio::ip::make_address_v4(asio::ip::v4_mapped, src6))
                     : asio::ip::address(src6);
    out.destination = dst6;
    out.source_port = readBe16(block.data() + 32);
    out.destination_port = readBe16(block.data() + 34);
    return out;
  }
  return malformed("family " + std::to_string(family) + " is not IPv4 or IPv6");
}

Result<AddressRange> parseAddressRange(const std::string& text) {
  const auto slash = text.find('/');
  boost::system::error_code ec;
  auto address = asio::ip::make_address(text.substr(0, slash), ec);
  auto bad = [&](const std::string& why) {
    return Error(Errc::kInvalidArgument, "\"" + text + "\" " + why);
  };
  if (ec) return bad("is not an IPv4 or IPv6 address or network (CIDR)");
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  }
  const unsigned bits = address.is_v4() ? 32 : 128;
  unsigned prefix = bits;
  if (slash != std::string::npos) {
    const std::string digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 ||
        digits.find_first_not_of("0123456789") != std::string::npos || std::stoul(digits) > bits) {
      return bad("has a prefix length that is not 0 to " + std::to_string(bits));
    }
    prefix = static_cast<unsigned>(std::stoul(digits));
  }
  AddressRange range{address, prefix, text};
  // The network part of the address itself: a range whose address has host bits set is not in it.
  if (!rangeContains(range, address)) {
    return bad("has host bits set (did you mean " +
               (address.is_v4()
                    ? asio::ip::network_v4(address.to_v4(), static_cast<unsigned short>(prefix))
                          .canonical()
                          .to_string()
                    : asio::ip::network_v6(address.to_v6(), static_cast<unsigned short>(prefix))
                          .canonical()
                          .to_string()) +
               "?)");
  }
  return range;
}

bool rangeContains(const AddressRange& range, const asio::ip::address& candidate) {
  asio::ip::address a = candidate;
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  }
  if (a.is_v4() != range.network.is_v4()) return false;
  if (a.is_v4()) {
    return asio::ip::network_v4(a.to_v4(), static_cast<unsigned short>(range.prefix)).network() ==
           range.network.to_v4();
  }
  return asio::ip::network_v6(a.to_v6(), static_cast<unsigned short>(range.prefix)).network() ==
         range.network.to_v6();
}

std::string endpointText(const asio::ip::address& address, uint16_t port) {
  if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(port);
  return address.to_string() + ":" + std::to_string(port);
}

}  // namespace pyrun::server
