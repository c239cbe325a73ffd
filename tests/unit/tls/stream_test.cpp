// tls::Stream over loopback TCP: the handshake and data both ways, records that arrive one byte at
// a time, a reader that stops reading (the writer waits, memory stays bounded), and the end of a
// connection with close_notify against one without.
#include "tls/stream.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <random>
#include <thread>

#include "support/pki.h"
#include "support/temp_dir.h"
#include "tls/tls.h"

namespace pyrun::test {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

std::vector<uint8_t> randomBytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(gen());
  return v;
}

// Forwards bytes between two connected sockets, one byte per send() (Nagle off), until either
// side ends: every TLS record reaches its reader in pieces of one byte.
class Trickle {
 public:
  Trickle(int a, int b) : a_(a), b_(b) {
    int one = 1;
    ::setsockopt(a_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(b_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    one_ = std::thread([this] { pump(a_, b_); });
    two_ = std::thread([this] { pump(b_, a_); });
  }
  ~Trickle() {
    ::shutdown(a_, SHUT_RDWR);
    ::shutdown(b_, SHUT_RDWR);
    one_.join();
    two_.join();
    ::close(a_);
    ::close(b_);
  }
  size_t sends() const { return sends_; }

 private:
  void pump(int from, int to) {
    uint8_t buf[4096];
    for (;;) {
      ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0) break;
      for (ssize_t i = 0; i < n; ++i) {
        if (::send(to, buf + i, 1, MSG_NOSIGNAL) != 1) return;
        ++sends_;
      }
    }
    ::shutdown(to, SHUT_WR);
  }
  int a_, b_;
  std::atomic<size_t> sends_{0};
  std::thread one_, two_;
};

class StreamTest : public ::testing::Test {
 protected:
  StreamTest() : pki_(dir_.path()) {
    auto server = tls::makeServerContext({pki_.serverBundle(), "", ""});
    auto client = tls::makeClientContext({pki_.clientBundle("alice"), "", ""});
    if (!server || !client) throw std::runtime_error("contexts");
    server_ctx_ = *server;
    client_ctx_ = *client;
  }

  // A connected pair of sockets on 127.0.0.1 (optionally through a Trickle relay).
  std::pair<tcp::socket, tcp::socket> connectedPair(bool trickle = false) {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket client(io_), server(io_);
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
    if (!trickle) return {std::move(client), std::move(server)};
    // client <-> [relay a | relay b] <-> server
    tcp::acceptor a2(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket c2(io_), s2(io_);
    c2.connect(a2.local_endpoint());
    a2.accept(s2);
    // The client keeps `client`; its peer `server` is relayed to `c2`, whose peer `s2` is ours.
    trickle_ = std::make_unique<Trickle>(server.release(), c2.release());
    return {std::move(client), std::move(s2)};
  }

  // Runs both handshakes; the client's SNI/host check is set up as pyrun does.
  void handshake(tls::Stream& client, tls::Stream& server) {
    ASSERT_TRUE(tls::prepareClient(client.native_handle(), "localhost"));
    error_code cec, sec;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          cec = co_await client.handshake(tls::Stream::Role::kClient);
        },
        asio::detached);
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          sec = co_await server.handshake(tls::Stream::Role::kServer);
        },
        asio::detached);
    io_.run();
    io_.restart();
    ASSERT_FALSE(cec) << tls::handshakeError(client.native_handle(), cec).detail();
    ASSERT_FALSE(sec) << tls::handshakeError(server.native_handle(), sec).detail();
  }

  // Sends `data` one way and returns what arrived, reading with a buffer of `read_size`.
  std::vector<uint8_t> transfer(tls::Stream& from, tls::Stream& to,
                                const std::vector<uint8_t>& data, size_t read_size) {
    std::vector<uint8_t> got;
    error_code wec, rec;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          // In pieces of 100 KiB, as the server's writer batches frames.
          for (size_t at = 0; at < data.size() && !wec; at += 100000) {
            const size_t n = std::min<size_t>(100000, data.size() - at);
            wec = co_await from.write(std::span(data.data() + at, n));
          }
        },
        asio::detached);
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          std::vector<uint8_t> buf(read_size);
          while (got.size() < data.size()) {
            auto [ec, n] = co_await to.readSome(buf);
            if (ec) {
              rec = ec;
              co_return;
            }
            got.insert(got.end(), buf.begin(), buf.begin() + static_cast<long>(n));
          }
        },
        asio::detached);
    io_.run();
    io_.restart();
    EXPECT_FALSE(wec) << wec.message();
    EXPECT_FALSE(rec) << rec.message();
    return got;
  }

  TempDir dir_{"tls-stream"};
  Pki pki_;
  std::shared_ptr<asio::ssl::context> server_ctx_, client_ctx_;
  asio::io_context io_;
  std::unique_ptr<Trickle> trickle_;
};

TEST_F(StreamTest, CarriesDataBothWaysByteExact) {
  auto [c, s] = connectedPair();
  tls::Stream client(std::move(c), *client_ctx_);
  tls::Stream server(std::move(s), *server_ctx_);
  client.setBuffers(256u << 10, true);
  handshake(client, server);
  auto peer = tls::peerIdentity(server.native_handle());
  ASSERT_TRUE(peer);
  EXPECT_EQ(peer->common_name, "alice");
  const auto down = randomBytes(3u << 20, 1);
  EXPECT_EQ(transfer(server, client, down, 70000), down);
  const auto up = randomBytes(1u << 20, 2);
  EXPECT_EQ(transfer(client, server, up, 512), up);
}

TEST_F(StreamTest, RecordsArrivingOneByteAtATime) {
  auto [c, s] = connectedPair(true);
  tls::Stream client(std::move(c), *client_ctx_);
  tls::Stream server(std::move(s), *server_ctx_);
  handshake(client, server);
  const auto down = randomBytes(100000, 3);
  EXPECT_EQ(transfer(server, client, down, 4096), down);
  const auto up = randomBytes(50000, 4);
  EXPECT_EQ(transfer(client, server, up, 7), up);
  // The relay did pass everything one byte per send.
  EXPECT_GT(trickle_->sends(), 150000u);
}

TEST_F(StreamTest, AWriterWaitsForAReaderThatStopsReading) {
  auto [c, s] = connectedPair();
  tls::Stream client(std::move(c), *client_ctx_);
  tls::Stream server(std::move(s), *server_ctx_);
  handshake(client, server);
  // Far more than the socket buffers of both ends hold.
  const auto data = randomBytes(64u << 20, 5);
  bool written = false;
  error_code wec;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        for (size_t at = 0; at < data.size() && !wec; at += 256u << 10) {
          wec = co_await server.write(std::span(data.data() + at, 256u << 10));
        }
        written = true;
      },
      asio::detached);
  // Nobody reads for half a second: the writer stays stuck, holding at most its one batch.
  io_.run_for(std::chrono::milliseconds(500));
  io_.restart();
  EXPECT_FALSE(written);
  const uint64_t stuck_at = server.bytesSent();
  EXPECT_LT(stuck_at, 48u << 20);
  EXPECT_LE(server.pendingOutput(), (256u << 10) + (256u << 10) / 16);
  // Then the reader reads, and everything arrives.
  std::vector<uint8_t> got;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        std::vector<uint8_t> buf(1u << 16);
        while (got.size() < data.size()) {
          auto [ec, n] = co_await client.readSome(buf);
          if (ec) co_return;
          got.insert(got.end(), buf.begin(), buf.begin() + static_cast<long>(n));
        }
      },
      asio::detached);
  io_.run();
  EXPECT_TRUE(written);
  EXPECT_FALSE(wec);
  EXPECT_GT(server.bytesSent(), stuck_at);
  EXPECT_TRUE(got == data);
}

// What the server reads after the client ends the connection, with or without close_notify.
error_code endOfConnection(asio::io_context& io, tls::Stream& client, tls::Stream& server,
                           bool close_notify) {
  if (close_notify) client.shutdownNow();
  error_code ignored;
  client.socket().close(ignored);
  error_code got;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        uint8_t buf[64];
        auto [ec, n] = co_await server.readSome(buf);
        got = ec;
      },
      asio::detached);
  io.run();
  io.restart();
  return got;
}

TEST_F(StreamTest, CloseNotifyIsTheEndOfTheStream) {
  auto [c, s] = connectedPair();
  tls::Stream client(std::move(c), *client_ctx_);
  tls::Stream server(std::move(s), *server_ctx_);
  handshake(client, server);
  EXPECT_EQ(endOfConnection(io_, client, server, true), asio::error::eof);
}

TEST_F(StreamTest, AnEndWithoutCloseNotifyIsTruncation) {
  auto [c, s] = connectedPair();
  tls::Stream client(std::move(c), *client_ctx_);
  tls::Stream server(std::move(s), *server_ctx_);
  handshake(client, server);
  const error_code ec = endOfConnection(io_, client, server, false);
  EXPECT_EQ(ec, asio::ssl::error::stream_truncated) << ec.message();
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(StreamTest, ShutdownExchangesCloseNotify) {
  auto [c, s] = connectedPair();
  tls::Stream client(std::move(c), *client_ctx_);
  tls::Stream server(std::move(s), *server_ctx_);
  handshake(client, server);
  error_code server_end, client_end;
  asio::co_spawn(
      io_, [&]() -> asio::awaitable<void> { server_end = co_await server.shutdown(); },
      asio::detached);
  asio::co_spawn(
      io_, [&]() -> asio::awaitable<void> { client_end = co_await client.shutdown(); },
      asio::detached);
  io_.run();
  EXPECT_FALSE(server_end) << server_end.message();
  EXPECT_FALSE(client_end) << client_end.message();
}

TEST_F(StreamTest, GarbageInsteadOfAHandshakeFailsWithOpenSslsReason) {
  auto [c, s] = connectedPair();
  tls::Stream server(std::move(s), *server_ctx_);
  const char garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(c, asio::buffer(garbage, sizeof garbage - 1));
  error_code sec;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        sec = co_await server.handshake(tls::Stream::Role::kServer);
      },
      asio::detached);
  io_.run();
  ASSERT_TRUE(sec);
  EXPECT_EQ(sec.category(), asio::error::get_ssl_category());
  EXPECT_NE(tls::handshakeError(server.native_handle(), sec).detail().find("http request"),
            std::string::npos)
      << tls::handshakeError(server.native_handle(), sec).detail();
}

TEST_F(StreamTest, AClientWithAnotherCasCertificateIsRefusedWithAnAlert) {
  TempDir other_dir("tls-stream-other");
  Pki other(other_dir.path());
  auto stranger_ctx = tls::makeClientContext({other.clientBundle("mallory"), pki_.caCert(), ""});
  ASSERT_TRUE(stranger_ctx) << stranger_ctx.error().detail();
  auto [c, s] = connectedPair();
  tls::Stream client(std::move(c), **stranger_ctx);
  tls::Stream server(std::move(s), *server_ctx_);
  ASSERT_TRUE(tls::prepareClient(client.native_handle(), "localhost"));
  error_code cec, sec, first_read;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        cec = co_await client.handshake(tls::Stream::Role::kClient);
        if (cec) co_return;
        uint8_t buf[16];
        auto [ec, n] = co_await client.readSome(buf);
        first_read = ec;
      },
      asio::detached);
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        sec = co_await server.handshake(tls::Stream::Role::kServer);
        error_code ignored;
        server.socket().close(ignored);
      },
      asio::detached);
  io_.run();
  ASSERT_TRUE(sec);
  EXPECT_NE(SSL_get_verify_result(server.native_handle()), X509_V_OK);
  // TLS 1.3: the client learns it from the alert, on its first read.
  const error_code seen = cec ? cec : first_read;
  EXPECT_EQ(tls::certificateRejection(seen), "not issued by the server's CA") << seen.message();
}

}  // namespace
}  // namespace pyrun::test
