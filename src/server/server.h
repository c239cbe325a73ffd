// pyrund's network front: the listening socket, the accept loop, the sessions, the spawner link,
// and a clean stop on SIGTERM/SIGINT.
#pragma once

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "common/error.h"
#include "common/fd.h"
#include "server/config.h"
#include "server/session.h"

namespace pyrun::server {

class Server {
 public:
  // Binds and listens on config.listen:config.port (nothing is accepted before run()).
  // Errors: an address that is not an IP literal, bind/listen failures (port in use, EACCES).
  static Result<std::unique_ptr<Server>> create(boost::asio::io_context& io, ServerConfig config,
                                                std::shared_ptr<boost::asio::ssl::context> tls,
                                                UniqueFd spawner_socket);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (the kernel's choice when config.port was 0).
  uint16_t port() const;
  // "127.0.0.1:9091" / "[::1]:9091"
  std::string address() const;

  // Starts accepting, watching SIGTERM/SIGINT and the spawner. io.run() returns once stopped.
  void start();
  // Stops: no more connections; waiting sessions get ERROR kShuttingDown, running jobs are killed
  // and their EXIT sent; io.run() returns when every session has ended (or after a deadline).
  void stop();

  // 0 after a stop asked by a signal, 1 after a runtime failure (the spawner died).
  int exitCode() const { return exit_code_; }

 private:
  Server(boost::asio::io_context& io, std::shared_ptr<SessionEnv> env);
  boost::asio::awaitable<void> acceptLoop();
  void finishStop();

  boost::asio::io_context& io_;
  std::shared_ptr<SessionEnv> env_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer stop_deadline_;
  int exit_code_ = 0;
  bool stopped_ = false;
};

}  // namespace pyrun::server
