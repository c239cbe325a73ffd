// libFuzzer target for the PROXY protocol v2 codec, fed as pyrund reads a trusted proxy's
// connection: the 16-byte prefix first, then exactly the length it announces. Besides memory
// errors (ASan/UBSan) it checks the codec's promises: a length within bounds, and a client address
// on every PROXY command it accepts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "server/proxy_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pyrun::server;
  std::span<const uint8_t> input(data, size);
  auto length = proxyHeaderLength(input.first(std::min(size, kProxyHeaderPrefix)));
  if (length &&
      (*length < kProxyHeaderPrefix || *length > kProxyHeaderPrefix + kMaxProxyAddressBlock)) {
    __builtin_trap();
  }
  // Whatever the length field says, the whole input is parsed too: a mismatch must be refused.
  auto whole = parseProxyHeader(input);
  if (whole && (!length || *length != size)) __builtin_trap();
  if (length && *length <= size) {
    auto h = parseProxyHeader(input.first(*length));
    // A PROXY command always names an IPv4 or IPv6 client; v4-mapped ones come back as IPv4.
    if (h && h->command == ProxyCommand::kProxy) {
      if (h->source.is_v6() && h->source.to_v6().is_v4_mapped()) __builtin_trap();
      if (endpointText(h->source, h->source_port).empty()) __builtin_trap();
    }
  }
  return 0;
}
