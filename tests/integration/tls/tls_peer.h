// Test helper: our TLS contexts on one end of one loopback connection, driven by Asio.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "tls/tls.h"

namespace pyrun::test {

// What one end saw of its connection.
struct PeerOutcome {
  bool handshake_ok = false;
  std::string error;                      // the Error detail our TLS layer produced; empty if none
  std::optional<tls::PeerIdentity> peer;  // the verified peer, after a handshake
  std::string received;                   // application data read before the connection ended
};

// Our server context on 127.0.0.1, port chosen by the kernel, serving exactly one connection in a
// background thread: handshake, send `greeting`, close_notify. Gives up after 60 s without a peer.
class OneConnectionServer {
 public:
  OneConnectionServer(std::shared_ptr<boost::asio::ssl::context> context, std::string greeting);
  ~OneConnectionServer();
  OneConnectionServer(const OneConnectionServer&) = delete;
  OneConnectionServer& operator=(const OneConnectionServer&) = delete;

  unsigned short port() const { return port_; }
  // Waits for the connection to end (or the time limit) and returns what the server saw.
  PeerOutcome wait();

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<boost::asio::ssl::context> context_;
  std::string greeting_;
  unsigned short port_ = 0;
  PeerOutcome outcome_;
  std::thread thread_;
};

// Our client context: connects to 127.0.0.1:port, checks the server against `host` (prepareClient)
// and `pin` (checkServer), then reads until `expect` has arrived or the server closes, and closes
// with close_notify. A failed first read is reported with firstReadError, as pyrun will report it.
// Gives up after 60 s.
PeerOutcome connectOnce(std::shared_ptr<boost::asio::ssl::context> context, unsigned short port,
                        const std::string& host, const std::string& expect,
                        const std::string& pin = "");

}  // namespace pyrun::test
