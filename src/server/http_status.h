// The operators' HTTP listener of pyrund (metrics_listen): GET /metrics (Prometheus text) and
// GET /healthz (200 while accepting jobs, 503 while draining), plain HTTP/1.1 with Boost.Beast.
// It runs in the front, under the front's seccomp filter, which already allows what a TCP
// listener needs (it is the same set as the TLS listener's).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/error.h"

namespace pyrun::server {

// What the listener answers with, asked at each request.
struct StatusSource {
  std::function<std::string()> metrics;  // the exposition text
  std::function<bool()> accepting;       // false while draining
};

// The answer to one request: status code, content type and body. Pure: tested without sockets.
struct StatusReply {
  unsigned status = 200;
  std::string content_type;
  std::string body;
  std::string allow;  // the Allow header of a 405
};
StatusReply answerStatusRequest(std::string_view method, std::string_view target,
                                const StatusSource& source);

class StatusListener {
 public:
  // Binds and listens on address:port (port 0: the kernel's choice). Errors: bind/listen failures.
  static Result<std::unique_ptr<StatusListener>> create(boost::asio::io_context& io,
                                                        const std::string& address, uint16_t port,
                                                        StatusSource source);
  ~StatusListener();
  StatusListener(const StatusListener&) = delete;
  StatusListener& operator=(const StatusListener&) = delete;

  // "127.0.0.1:9100" / "[::1]:9100"
  std::string address() const;
  void start();
  // Closes the listener; connections in progress end within their deadline.
  void stop();

 private:
  StatusListener(boost::asio::io_context& io, StatusSource source);
  boost::asio::awaitable<void> acceptLoop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  StatusSource source_;
  std::shared_ptr<int> live_;  // connections in progress share it: use_count() - 1 of them
  bool stopped_ = false;
};

}  // namespace pyrun::server
