// pyrund's network front: the listening socket, the accept loop with its pre-authentication caps,
// the sessions, the spawner link, reloads (SIGHUP, a changed CRL file) and a graceful stop on
// SIGTERM/SIGINT.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_set>
#include <utility>

#include "common/error.h"
#include "common/fd.h"
#include "server/audit.h"
#include "server/config.h"
#include "server/http_status.h"
#include "server/policy_set.h"
#include "server/revocation.h"
#include "server/session.h"

namespace pyrun::server {

class Server {
 public:
  // Binds and listens on config.listen:config.port (nothing is accepted before run()).
  // Errors: an address that is not an IP literal, bind/listen failures (port in use, EACCES).
  // `policies` is the set loaded at start; `audit` the opened audit log (or a closed one).
  static Result<std::unique_ptr<Server>> create(boost::asio::io_context& io, ServerConfig config,
                                                std::shared_ptr<boost::asio::ssl::context> tls,
                                                UniqueFd spawner_socket, PolicySet policies,
                                                AuditLog audit);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (the kernel's choice when config.port was 0).
  uint16_t port() const;
  // "127.0.0.1:9091" / "[::1]:9091"
  std::string address() const;

  // Starts accepting, watching SIGTERM/SIGINT/SIGHUP, the CRL file and the spawner. io.run()
  // returns once stopped.
  void start();
  // Stops: no more connections; sessions without a running job get ERROR kShuttingDown; running
  // jobs get shutdown_grace_seconds to finish, then are killed (verdict server-shutdown) and their
  // EXIT sent; io.run() returns when every session has ended (or after a deadline).
  void stop();
  // SIGHUP: reloads policies and identities (all or nothing: on any error the old set stays and the
  // log says why, file:line:col), the CRL, and reopens the audit log. Running jobs are untouched,
  // except those of certificates the new CRL revokes when kill_revoked_jobs is set.
  void reload();
  // Reloads the CRL alone (also run when the file changes on disk).
  void reloadCrl();

  // Called once when a stop begins (before the drain), e.g. to tell systemd STOPPING=1.
  void onStopping(std::function<void()> callback) { on_stopping_ = std::move(callback); }
  // The metrics_listen address actually bound ("" when off).
  std::string metricsAddress() const;
  // True from the moment a stop begins (SIGTERM/SIGINT): /healthz answers 503 from then on.
  bool draining() const { return stopped_; }

  // 0 after a stop asked by a signal, 1 after a runtime failure (the spawner died).
  int exitCode() const { return exit_code_; }

 private:
  Server(boost::asio::io_context& io, std::shared_ptr<SessionEnv> env);
  boost::asio::awaitable<void> acceptLoop();
  // A connection from a trusted proxy: reads its PROXY v2 header under the handshake deadline,
  // then admits it as coming from the client the header names.
  boost::asio::awaitable<void> acceptProxied(boost::asio::ip::tcp::socket socket,
                                             boost::asio::ip::tcp::endpoint proxy);
  bool isTrustedProxy(const boost::asio::ip::address& address) const;
  // Counts the connection from `source` under the caps and makes its session (not started yet);
  // null when a cap refused it (the socket is then closed).
  std::shared_ptr<Session> admitConnection(boost::asio::ip::tcp::socket socket,
                                           const std::string& source);
  void finishStop();
  void waitForSignals();
  void waitForHangup();
  void onPoliciesReloaded(const sandbox::PoliciesReloaded& answer);
  void watchCrl();
  std::vector<std::shared_ptr<Session>> liveSessions() const;
  std::string renderMetrics() const;

  boost::asio::io_context& io_;
  std::shared_ptr<SessionEnv> env_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::signal_set signals_;
  boost::asio::signal_set hangup_;
  boost::asio::steady_timer stop_deadline_;
  boost::asio::steady_timer grace_timer_;
  boost::asio::steady_timer crl_timer_;
  FileStamp crl_stamp_;
  // metrics_listen: /metrics and /healthz (null when off). Open until the drain ends.
  std::unique_ptr<StatusListener> status_;
  std::function<void()> on_stopping_;
  // Policy sets loaded by the front and sent to the spawner, waiting for its PoliciesReloaded
  // (answers come in request order). A set takes effect only once both sides accepted it.
  std::deque<std::shared_ptr<const PolicySet>> pending_policies_;
  // Connections refused by the caps since the last one admitted: logged once per burst.
  uint64_t refused_in_burst_ = 0;
  uint64_t accept_errors_in_burst_ = 0;
  // Trusted proxies' connections whose PROXY header is still being read; closed by stop().
  std::unordered_set<boost::asio::ip::tcp::socket*> proxy_headers_pending_;
  int exit_code_ = 0;
  bool stopped_ = false;
};

}  // namespace pyrun::server
