// The PROXY protocol v2 codec over byte arrays: what HAProxy's send-proxy-v2 sends, and what a
// hostile or broken peer might send instead.
#include "server/proxy_protocol.h"

#include <gtest/gtest.h>

#include <vector>

namespace pyrun::server {
namespace {

const std::vector<uint8_t> kSig = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

std::vector<uint8_t> header(uint8_t ver_cmd, uint8_t fam, const std::vector<uint8_t>& block) {
  std::vector<uint8_t> h = kSig;
  h.push_back(ver_cmd);
  h.push_back(fam);
  h.push_back(static_cast<uint8_t>(block.size() >> 8));
  h.push_back(static_cast<uint8_t>(block.size() & 0xFF));
  h.insert(h.end(), block.begin(), block.end());
  return h;
}

// 203.0.113.7:51234 -> 192.0.2.1:7443
const std::vector<uint8_t> kInetBlock = {203, 0, 113, 7, 192, 0, 2, 1, 0xC8, 0x22, 0x1D, 0x13};

Result<ProxyHeader> parse(const std::vector<uint8_t>& h) {
  auto length = proxyHeaderLength(std::span(h).first(std::min(h.size(), kProxyHeaderPrefix)));
  if (!length) return length.error();
  EXPECT_EQ(*length, h.size());
  return parseProxyHeader(h);
}

TEST(ProxyProtocol, ReadsTcp4ClientAddress) {
  auto h = parse(header(0x21, 0x11, kInetBlock));
  ASSERT_TRUE(h) << h.error().detail();
  EXPECT_EQ(h->command, ProxyCommand::kProxy);
  EXPECT_EQ(h->source.to_string(), "203.0.113.7");
  EXPECT_EQ(h->source_port, 51234);
  EXPECT_EQ(h->destination.to_string(), "192.0.2.1");
  EXPECT_EQ(h->destination_port, 7443);
  EXPECT_EQ(endpointText(h->source, h->source_port), "203.0.113.7:51234");
}

TEST(ProxyProtocol, ReadsTcp6ClientAddress) {
  std::vector<uint8_t> block(36, 0);
  block[0] = 0x20, block[1] = 0x01, block[2] = 0x0d, block[3] = 0xb8, block[15] = 0x01;
  block[16 + 15] = 0x02;
  block[32] = 0x01, block[33] = 0x02, block[34] = 0x1D, block[35] = 0x13;
  auto h = parse(header(0x21, 0x21, block));
  ASSERT_TRUE(h) << h.error().detail();
  EXPECT_EQ(h->source.to_string(), "2001:db8::1");
  EXPECT_EQ(h->source_port, 258);
  EXPECT_EQ(endpointText(h->source, h->source_port), "[2001:db8::1]:258");
}

TEST(ProxyProtocol, CountsV4MappedClientAsItsV4Address) {
  std::vector<uint8_t> block(36, 0);
  block[10] = 0xFF, block[11] = 0xFF, block[12] = 127, block[13] = 0, block[14] = 0, block[15] = 3;
  auto h = parse(header(0x21, 0x21, block));
  ASSERT_TRUE(h) << h.error().detail();
  EXPECT_TRUE(h->source.is_v4());
  EXPECT_EQ(h->source.to_string(), "127.0.0.3");
}

TEST(ProxyProtocol, SkipsTlvsAfterTheAddresses) {
  std::vector<uint8_t> block = kInetBlock;
  // PP2_TYPE_UNIQUE_ID and a truncated-looking TLV: never read, so never a problem.
  block.insert(block.end(), {0x05, 0x00, 0x03, 0x61, 0x62, 0x63, 0x20, 0xFF, 0xFF});
  auto h = parse(header(0x21, 0x11, block));
  ASSERT_TRUE(h) << h.error().detail();
  EXPECT_EQ(h->source.to_string(), "203.0.113.7");
}

TEST(ProxyProtocol, AcceptsLocalCommandWhateverItsBlock) {
  auto h = parse(header(0x20, 0x00, {}));
  ASSERT_TRUE(h) << h.error().detail();
  EXPECT_EQ(h->command, ProxyCommand::kLocal);
  h = parse(header(0x20, 0x11, kInetBlock));
  ASSERT_TRUE(h) << h.error().detail();
  EXPECT_EQ(h->command, ProxyCommand::kLocal);
}

TEST(ProxyProtocol, RefusesTlsClientHello) {
  std::vector<uint8_t> hello = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01,
                                0xFC, 0x03, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00};
  auto r = proxyHeaderLength(hello);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kProtocol);
}

TEST(ProxyProtocol, RefusesVersion1TextHeader) {
  std::string v1 = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 7443\r\n";
  EXPECT_FALSE(proxyHeaderLength(std::span(reinterpret_cast<const uint8_t*>(v1.data()), 16)));
}

TEST(ProxyProtocol, RefusesOtherVersions) {
  EXPECT_FALSE(parse(header(0x11, 0x11, kInetBlock)));
  EXPECT_FALSE(parse(header(0x31, 0x11, kInetBlock)));
}

TEST(ProxyProtocol, RefusesUnknownCommand) {
  EXPECT_FALSE(parse(header(0x22, 0x11, kInetBlock)));
  EXPECT_FALSE(parse(header(0x2F, 0x11, kInetBlock)));
}

TEST(ProxyProtocol, RefusesProxyCommandWithoutTcpAddress) {
  EXPECT_FALSE(parse(header(0x21, 0x00, {})));                            // AF_UNSPEC
  EXPECT_FALSE(parse(header(0x21, 0x12, kInetBlock)));                    // UDP over IPv4
  EXPECT_FALSE(parse(header(0x21, 0x31, std::vector<uint8_t>(216, 0))));  // AF_UNIX
  EXPECT_FALSE(parse(header(0x21, 0x41, kInetBlock)));                    // unknown family
}

TEST(ProxyProtocol, RefusesAddressBlockTooShortForItsFamily) {
  std::vector<uint8_t> short4(kInetBlock.begin(), kInetBlock.end() - 1);
  EXPECT_FALSE(parse(header(0x21, 0x11, short4)));
  EXPECT_FALSE(parse(header(0x21, 0x21, std::vector<uint8_t>(35, 0))));
  EXPECT_FALSE(parse(header(0x21, 0x21, kInetBlock)));
}

TEST(ProxyProtocol, RefusesTruncatedHeader) {
  auto full = header(0x21, 0x11, kInetBlock);
  for (size_t n = 0; n < kProxyHeaderPrefix; ++n) {
    EXPECT_FALSE(proxyHeaderLength(std::span(full).first(n))) << n;
  }
  for (size_t n = 0; n < full.size(); ++n) {
    EXPECT_FALSE(parseProxyHeader(std::span(full).first(n))) << n;
  }
  // More bytes than the length field says are refused too: the caller reads exactly the header.
  full.push_back(0);
  EXPECT_FALSE(parseProxyHeader(full));
}

TEST(ProxyProtocol, RefusesOversizedAddressBlock) {
  std::vector<uint8_t> block = kInetBlock;
  block.resize(kMaxProxyAddressBlock + 1);
  auto h = header(0x21, 0x11, block);
  auto r = proxyHeaderLength(std::span(h).first(kProxyHeaderPrefix));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("over 1024"), std::string::npos) << r.error().detail();
  block.resize(kMaxProxyAddressBlock);
  EXPECT_TRUE(parse(header(0x21, 0x11, block)));
}

}  // namespace
}  // namespace pyrun::server
