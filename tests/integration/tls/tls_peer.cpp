// Test helper: one loopback TLS connection with our contexts, as coroutines on a private
// io_context.
#include "integration/tls/tls_peer.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace pyrun::test {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Stream = asio::ssl::stream<tcp::socket>;
constexpr auto kTimeLimit = std::chrono::seconds(60);
constexpr auto kTok = asio::as_tuple(asio::use_awaitable);

void noteTimeout(PeerOutcome& out) {
  out.error += out.error.empty() ? "gave up after 60 s" : " (gave up after 60 s)";
}

// Reads until `expect` has arrived or the peer closes; the first failed read of a client goes
// through firstReadError.
asio::awaitable<void> readUntil(Stream& stream, const std::string& expect, PeerOutcome& out,
                                bool client) {
  char buf[4096];
  while (expect.empty() || out.received.find(expect) == std::string::npos) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(buf), kTok);
    out.received.append(buf, n);
    if (!ec) continue;
    // A clean close_notify from the peer ends the stream with eof; that is no error.
    if (ec != asio::error::eof) {
      const bool first = out.received.empty();
      out.error = (client && first ? tls::firstReadError(stream.native_handle(), ec)
                                   : tls::connectionError(stream.native_handle(), ec))
                      .detail();
    }
    co_return;
  }
}

asio::awaitable<void> serveOne(tcp::acceptor& acceptor, asio::ssl::context& context,
                               const std::string& greeting, PeerOutcome& out) {
  auto [aec, socket] = co_await acceptor.async_accept(kTok);
  if (aec) {
    out.error = "accept: " + aec.message();
    co_return;
  }
  Stream stream(std::move(socket), context);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTok);
  if (hec) {
    out.error = tls::handshakeError(stream.native_handle(), hec).detail();
    co_return;
  }
  out.handshake_ok = true;
  auto peer = tls::peerIdentity(stream.native_handle());
  if (!peer) {
    out.error = peer.error().detail();
    co_return;
  }
  out.peer = *peer;
  auto [wec, written] = co_await asio::async_write(stream, asio::buffer(greeting), kTok);
  (void)written;
  if (wec) {
    out.error = tls::connectionError(stream.native_handle(), wec).detail();
    co_return;
  }
  // close_notify, then wait for the client's; s_client -ign_eof and connectOnce both close.
  auto [sec] = co_await stream.async_shutdown(kTok);
  (void)sec;
}

asio::awaitable<void> clientOne(Stream& stream, unsigned short port, const std::string& host,
                                const std::string& expect, const std::string& pin,
                                PeerOutcome& out) {
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  auto [cec] = co_await stream.lowest_layer().async_connect(endpoint, kTok);
  if (cec) {
    out.error = "connect: " + cec.message();
    co_return;
  }
  if (auto r = tls::prepareClient(stream.native_handle(), host); !r) {
    out.error = r.error().detail();
    co_return;
  }
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kTok);
  if (hec) {
    out.error = tls::handshakeError(stream.native_handle(), hec).detail();
    co_return;
  }
  out.handshake_ok = true;
  if (auto r = tls::checkServer(stream.native_handle(), pin); !r) {
    out.error = r.error().detail();
    co_return;
  }
  auto peer = tls::peerIdentity(stream.native_handle());
  if (!peer) {
    out.error = peer.error().detail();
    co_return;
  }
  out.peer = *peer;
  co_await readUntil(stream, expect, out, /*client=*/true);
  if (!out.error.empty()) co_return;
  auto [sec] = co_await stream.async_shutdown(kTok);
  (void)sec;
}

}  // namespace

OneConnectionServer::OneConnectionServer(std::shared_ptr<asio::ssl::context> context,
                                         std::string greeting)
    : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
      context_(std::move(context)),
      greeting_(std::move(greeting)) {
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(io_, serveOne(acceptor_, *context_, greeting_, outcome_), asio::detached);
  thread_ = std::thread([this] {
    io_.run_for(kTimeLimit);
    if (!io_.stopped()) noteTimeout(outcome_);
  });
}

OneConnectionServer::~OneConnectionServer() {
  if (thread_.joinable()) thread_.join();
}

PeerOutcome OneConnectionServer::wait() {
  if (thread_.joinable()) thread_.join();
  return outcome_;
}

PeerOutcome connectOnce(std::shared_ptr<asio::ssl::context> context, unsigned short port,
                        const std::string& host, const std::string& expect,
                        const std::string& pin) {
  asio::io_context io;
  Stream stream(io, *context);
  PeerOutcome out;
  asio::co_spawn(io, clientOne(stream, port, host, expect, pin, out), asio::detached);
  io.run_for(kTimeLimit);
  if (!io.stopped()) noteTimeout(out);
  return out;
}

}  // namespace pyrun::test
