// pyrund's network front.
#include "server/server.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <ctime>
#include <sstream>

#include "common/log.h"
#include "server/proxy_protocol.h"

namespace pyrun::server {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace boost::asio::experimental::awaitable_operators;

namespace {
// Sessions get this long after the grace period to send their last frames before io_context is
// stopped.
constexpr auto kStopDeadline = std::chrono::seconds(10);
// Pause after a failed accept (EMFILE, ENFILE, ENOBUFS): the backlog keeps the waiting
// connections, and retrying at once would spin on the same error.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

std::string addressText(const asio::ip::address& a) {
  // v4-mapped v6 addresses count as their v4 address, so one host cannot dodge the per-source
  // cap by switching families on a dual-stack socket.
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
  }
  return a.to_string();
}

// A detached coroutine's completion handler: an exception is logged as `what: reason`, never let
// out of io_context::run().
auto logFailure(const char* what) {
  return [what](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      PYRUN_LOG(kError) << what << ": " << x.what();
    } catch (...) {
      PYRUN_LOG(kError) << what << ": unknown exception";
    }
  };
}

void logLines(log::Level level, const std::string& prefix, const std::string& lines) {
  std::istringstream in(lines);
  std::string line;
  while (std::getline(in, line)) {
    if (level == log::Level::kError) {
      PYRUN_LOG(kError) << prefix << line;
    } else {
      PYRUN_LOG(kWarning) << prefix << line;
    }
  }
}

}  // namespace

Server::Server(asio::io_context& io, std::shared_ptr<SessionEnv> env)
    : io_(io),
      env_(std::move(env)),
      acceptor_(io),
      signals_(io, SIGTERM, SIGINT),
      hangup_(io, SIGHUP),
      stop_deadline_(io),
      grace_timer_(io),
      crl_timer_(io) {}

Server::~Server() { env_->on_idle = nullptr; }

Result<std::unique_ptr<Server>> Server::create(asio::io_context& io, ServerConfig config,
                                               std::shared_ptr<asio::ssl::context> tls,
                                               UniqueFd spawner_socket, PolicySet policies,
                                               AuditLog audit) {
  error_code ec;
  auto address = asio::ip::make_address(config.listen, ec);
  if (ec) {
    return Error(Errc::kInvalidArgument,
                 "listen: \"" + config.listen + "\" is not an IPv4 or IPv6 address");
  }
  tcp::endpoint endpoint(address, config.port);
  auto link = std::make_unique<SpawnerLink>(io.get_executor(), std::move(spawner_socket));
  auto env = std::make_shared<SessionEnv>(std::move(config), std::move(tls), std::move(link),
                                          std::move(policies), std::move(audit));
  std::unique_ptr<Server> server(new Server(io, env));
  auto& acceptor = server->acceptor_;
  const std::string where =
      endpoint.address().is_v6()
          ? "[" + endpoint.address().to_string() + "]:" + std::to_string(endpoint.port())
          : endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  if (acceptor.open(endpoint.protocol(), ec); ec) {
    return Error(Errc::kIo, "cannot open a socket for " + where + ": " + ec.message());
  }
  acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (endpoint.address().is_v6()) {
    // "::" means IPv6 only; listen on 0.0.0.0 as well with a second pyrund or a v4 address.
    acceptor.set_option(asio::ip::v6_only(true), ec);
  }
  if (acceptor.bind(endpoint, ec); ec) {
    return Error(Errc::kIo, "cannot listen on " + where + ": " + ec.message());
  }
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Error(Errc::kIo, "cannot listen on " + where + ": " + ec.message());
  }
  if (!server->env_->config.metrics_listen.empty()) {
    Server* self = server.get();
    auto status = StatusListener::create(
        io, server->env_->config.metrics_address, server->env_->config.metrics_port,
        StatusSource{[self] { return self->renderMetrics(); }, [self] { return !self->stopped_; }});
    if (!status) return status.error();
    server->status_ = std::move(*status);
  }
  return server;
}

uint16_t Server::port() const {
  error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

std::string Server::metricsAddress() const { return status_ ? status_->address() : ""; }

std::string Server::renderMetrics() const {
  Metrics::Gauges g;
  g.jobs_running = env_->scheduler.running();
  g.jobs_queued = env_->scheduler.waiting();
  g.connections_open = env_->sessions.size();
  g.draining = stopped_;
  return env_->metrics.render(g);
}

std::string Server::address() const {
  error_code ec;
  auto ep = acceptor_.local_endpoint(ec);
  if (ep.address().is_v6())
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

void Server::start() {
  env_->spawner->start([env = env_.get()](uint64_t) { env->scheduler.release(); },
                       [this](const Error& e) {
                         // Without a spawner no job can start or be told to end: stop at once, exit
                         // status 1.
                         PYRUN_LOG(kError) << "spawner failed: " << e.detail() << "; stopping";
                         exit_code_ = 1;
                         stopped_ = true;
                         io_.stop();
                       });
  env_->spawner->onPoliciesReloaded(
      [this](const sandbox::PoliciesReloaded& answer) { onPoliciesReloaded(answer); });
  waitForSignals();
  env_->on_idle = [this] { finishStop(); };
  asio::co_spawn(io_, acceptLoop(), logFailure("accept loop failed"));
  if (!env_->config.crl.empty()) {
    crl_stamp_ = stampOf(env_->config.crl);
    if (auto crl = readCrl(env_->config.crl)) env_->metrics.crlNextUpdate(crl->next_update);
    watchCrl();
  }
  if (status_) status_->start();
  std::string policies;
  for (const auto& [name, p] : env_->policies->policies) {
    const policy::Limits& l = p.limits;
    policies += (policies.empty() ? "" : "; ") + name + ": cpu " + std::to_string(l.cpu_seconds) +
                " s, wall " + std::to_string(l.wall_seconds) + " s, memory " +
                humanBytes(l.memory_bytes) + ", output " + humanBytes(l.output_bytes);
  }
  PYRUN_LOG(kInfo) << "listening on " << address() << " (max_jobs " << env_->config.max_jobs
                   << ", queue " << env_->config.queue << "; policies: " << policies << ")";
}

void Server::waitForSignals() {
  signals_.async_wait([this](error_code ec, int signal) {
    if (ec) return;
    PYRUN_LOG(kInfo) << "received " << (signal == SIGTERM ? "SIGTERM" : "SIGINT") << "; stopping";
    stop();
  });
  waitForHangup();
}

void Server::waitForHangup() {
  hangup_.async_wait([this](error_code ec, int) {
    if (ec || stopped_) return;
    PYRUN_LOG(kInfo) << "received SIGHUP; reloading";
    reload();
    waitForHangup();
  });
}

asio::awaitable<void> Server::acceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and friends: pause rather than spin or exit; the listening socket keeps the backlog.
      if (accept_errors_in_burst_++ == 0) {
        PYRUN_LOG(kWarning) << "accept failed: " << ec.message() << "; retrying every "
                            << kAcceptBackoff.count() << " ms";
      }
      asio::steady_timer pause(io_, kAcceptBackoff);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    if (accept_errors_in_burst_ > 0) {
      PYRUN_LOG(kInfo) << "accepting again after " << accept_errors_in_burst_ << " failed accepts";
      accept_errors_in_burst_ = 0;
    }
    error_code peer_ec;
    auto remote = socket.remote_endpoint(peer_ec);
    if (peer_ec) continue;  // the peer is already gone (ENOTCONN): nothing to serve
    if (isTrustedProxy(remote.address())) {
      asio::co_spawn(io_, acceptProxied(std::move(socket), remote),
                     logFailure("reading a PROXY header failed"));
      continue;
    }
    // Any other peer speaks TLS from its first byte: a PROXY header from it is refused by the
    // handshake like any other bad bytes, so no peer outside trusted_proxies can name a source.
    if (auto session = admitConnection(std::move(socket), addressText(remote.address()))) {
      session->start();
    }
  }
}

bool Server::isTrustedProxy(const asio::ip::address& address) const {
  for (const auto& range : env_->config.trusted_proxies) {
    if (rangeContains(range, address)) return true;
  }
  return false;
}

std::shared_ptr<Session> Server::admitConnection(tcp::socket socket, const std::string& source) {
  auto refusal = env_->gate.admit(source);
  if (refusal != ConnectionGate::Refusal::kNone) {
    env_->metrics.refused(
        refusal == ConnectionGate::Refusal::kConnections  ? Refusal::kMaxConnections
        : refusal == ConnectionGate::Refusal::kHandshakes ? Refusal::kMaxHandshakes
                                                          : Refusal::kMaxHandshakesPerSource);
    // Closed before a single TLS byte is read: a flood costs us an accept and a close, never a
    // handshake's public-key operations.
    if (refused_in_burst_++ == 0) {
      PYRUN_LOG(kWarning) << "refusing connections: " << env_->gate.describe(refusal, source);
      env_->audit.write(AuditLine("refused")
                            .str("peer", source)
                            .str("reason", env_->gate.describe(refusal, source)));
    }
    error_code ignored;
    socket.set_option(asio::socket_base::linger(true, 0), ignored);  // RST, no TIME_WAIT
    socket.close(ignored);
    return nullptr;
  }
  if (refused_in_burst_ > 0) {
    PYRUN_LOG(kInfo) << "refused " << refused_in_burst_
                     << " connections over the caps; accepting again";
    refused_in_burst_ = 0;
  }
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  return std::make_shared<Session>(env_, std::move(socket), source, true);
}

asio::awaitable<void> Server::acceptProxied(tcp::socket socket, tcp::endpoint proxy) {
  const std::string proxy_text = endpointText(proxy.address(), proxy.port());
  auto close = [&](bool reset) {
    error_code ignored;
    if (reset) socket.set_option(asio::socket_base::linger(true, 0), ignored);
    socket.close(ignored);
  };
  // Headers being read count as handshakes in progress: a proxy (or whoever took its address)
  // that opens connections and sends nothing cannot hold more than max_handshakes of them.
  if (proxy_headers_pending_.size() >= env_->config.max_handshakes ||
      env_->gate.connections() + proxy_headers_pending_.size() >= env_->config.max_connections) {
    env_->metrics.refused(Refusal::kMaxHandshakes);
    close(true);
    co_return;
  }
  proxy_headers_pending_.insert(&socket);
  struct Pending {
    std::unordered_set<tcp::socket*>& set;
    tcp::socket* socket;
    ~Pending() { set.erase(socket); }
  } pending{proxy_headers_pending_, &socket};

  // One deadline for the header and the TLS handshake after it.
  const auto deadline_at = std::chrono::steady_clock::now() +
                           std::chrono::seconds(env_->config.handshake_timeout_seconds);
  asio::steady_timer deadline(io_);
  deadline.expires_at(deadline_at);
  auto refuse = [&](const std::string& why) {
    if (stopped_) {
      close(false);  // stop() cut the read short: not the proxy's fault
      return;
    }
    env_->metrics.refused(Refusal::kProxyHeader);
    PYRUN_LOG(kInfo) << "connection from proxy " << proxy_text << " refused: " << why;
    env_->audit.write(
        AuditLine("auth_fail").str("peer", proxy_text).str("proxy", proxy_text).str("reason", why));
    close(false);
  };
  constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
  // Exactly the header is read, never a byte past it: what follows is the client's TLS stream.
  std::array<uint8_t, kProxyHeaderPrefix + kMaxProxyAddressBlock> header{};
  size_t have = 0;
  size_t want = kProxyHeaderPrefix;
  for (int part = 0; part < 2; ++part) {
    auto outcome = co_await (
        asio::async_read(socket, asio::buffer(header.data() + have, want - have), kAwait) ||
        deadline.async_wait(kAwait));
    if (outcome.index() == 1) {
      refuse("no PROXY protocol header within " +
             std::to_string(env_->config.handshake_timeout_seconds) + " s");
      co_return;
    }
    if (auto [ec, n] = std::get<0>(outcome); ec) {
      refuse("connection closed in its PROXY protocol header (" + ec.message() + ")");
      co_return;
    }
    have = want;
    if (part == 0) {
      auto length = proxyHeaderLength(std::span<const uint8_t>(header.data(), have));
      if (!length) {
        refuse(length.error().detail());
        co_return;
      }
      want = *length;
    }
  }
  auto parsed = parseProxyHeader(std::span<const uint8_t>(header.data(), have));
  if (!parsed) {
    refuse(parsed.error().detail());
    co_return;
  }
  if (parsed->command == ProxyCommand::kLocal) {
    // The proxy checking that we accept connections, on its own behalf: nothing to serve.
    PYRUN_LOG(kDebug) << "PROXY LOCAL from " << proxy_text << " (a health check); closing";
    close(false);
    co_return;
  }
  if (stopped_) {
    close(true);
    co_return;
  }
  auto session = admitConnection(std::move(socket), addressText(parsed->source));
  if (!session) co_return;
  session->viaProxy(endpointText(parsed->source, parsed->source_port), proxy_text, deadline_at);
  session->start();
}

std::vector<std::shared_ptr<Session>> Server::liveSessions() const {
  // A copy: acting on a session may end it, which erases it from the map.
  std::vector<std::shared_ptr<Session>> live;
  for (auto& [ptr, weak] : env_->sessions) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  return live;
}

void Server::stop() {
  if (stopped_) {
    // A second signal: do not wait for sessions.
    io_.stop();
    return;
  }
  stopped_ = true;
  env_->stopping = true;
  if (on_stopping_) on_stopping_();
  error_code ignored;
  acceptor_.close(ignored);
  // Headers still being read would hold io_context up to the handshake deadline.
  for (auto* socket : proxy_headers_pending_) socket->close(ignored);
  crl_timer_.cancel();
  hangup_.cancel();
  signals_.async_wait([this](error_code ec, int) {
    if (!ec) {
      PYRUN_LOG(kInfo) << "second signal; stopping now";
      io_.stop();
    }
  });
  for (auto& s : liveSessions()) s->shutdown(false);
  const auto grace = std::chrono::seconds(env_->config.shutdown_grace_seconds);
  grace_timer_.expires_after(grace);
  grace_timer_.async_wait([this](error_code ec) {
    if (ec) return;
    auto live = liveSessions();
    if (!live.empty()) {
      PYRUN_LOG(kInfo) << "grace period of " << env_->config.shutdown_grace_seconds
                       << " s over; killing the jobs still running";
    }
    for (auto& s : live) s->shutdown(true);
  });
  stop_deadline_.expires_after(grace + kStopDeadline);
  stop_deadline_.async_wait([this](error_code ec) {
    if (ec) return;
    PYRUN_LOG(kWarning) << "sessions still open " << kStopDeadline.count()
                        << " s after the grace period";
    io_.stop();
  });
  if (env_->sessions.empty()) finishStop();
}

void Server::finishStop() {
  // Closing the spawner socket makes the spawner kill whatever is left and exit.
  env_->spawner->close();
  signals_.cancel();
  hangup_.cancel();
  stop_deadline_.cancel();
  grace_timer_.cancel();
  crl_timer_.cancel();
  if (status_) status_->stop();
  PYRUN_LOG(kInfo) << "stopped";
}

void Server::reload() {
  if (auto r = env_->audit.reopen(); !r) {
    PYRUN_LOG(kError) << r.error().detail() << "; still writing to the previous file";
  }
  if (!env_->config.crl.empty()) reloadCrl();
  if (env_->config.config_file.empty()) {
    env_->audit.write(AuditLine("reload").str("result", "ok").str("detail", "no config file"));
    return;
  }
  auto set = reloadPolicySet(env_->config.config_file);
  if (!set) {
    PYRUN_LOG(kError) << "policy reload failed; the previous policies stay in force:";
    logLines(log::Level::kError, "  ", set.error().detail());
    env_->audit.write(
        AuditLine("reload").str("result", "failed").str("detail", set.error().detail()));
    env_->metrics.policyReload(false);
    return;
  }
  // The spawner re-reads the same config file itself (the front never names files to the root
  // spawner) and compiles the policies into seccomp programs; the new set is used only once it
  // has accepted them too. An edit of the config between the two reads (milliseconds apart) could
  // make them differ until the next SIGHUP; the spawner's copy decides the confinement.
  auto pending = std::make_shared<const PolicySet>(std::move(*set));
  if (auto r = env_->spawner->send(sandbox::ReloadPolicies{}); !r) {
    PYRUN_LOG(kError) << "policy reload failed: cannot reach the spawner: " << r.error().detail();
    return;
  }
  pending_policies_.push_back(std::move(pending));
}

void Server::onPoliciesReloaded(const sandbox::PoliciesReloaded& answer) {
  if (pending_policies_.empty()) return;
  auto set = std::move(pending_policies_.front());
  pending_policies_.pop_front();
  if (!answer.ok) {
    PYRUN_LOG(kError)
        << "policy reload failed in the spawner; the previous policies stay in force:";
    logLines(log::Level::kError, "  ", answer.detail);
    env_->audit.write(AuditLine("reload").str("result", "failed").str("detail", answer.detail));
    env_->metrics.policyReload(false);
    return;
  }
  std::string names;
  for (const auto& [name, p] : set->policies) names += (names.empty() ? "" : ", ") + name;
  env_->policies = std::move(set);
  PYRUN_LOG(kInfo) << "policies reloaded: " << names << " ("
                   << env_->policies->identities.by_common_name.size()
                   << " identities mapped, default \"" << env_->policies->identities.default_policy
                   << "\")";
  env_->audit.write(AuditLine("reload").str("result", "ok").str("policies", names));
  env_->metrics.policyReload(true);
}

void Server::reloadCrl() {
  const std::string& path = env_->config.crl;
  crl_stamp_ = stampOf(path);
  auto contents = readCrl(path);
  if (!contents) {
    // The CRL in force stays: it was valid when loaded, and dropping revocation checks or refusing
    // everyone over a half-copied file would both be worse. Its own expiry still applies.
    PYRUN_LOG(kError) << "cannot reload the CRL: " << contents.error().detail()
                      << "; the previous CRL stays in force. Run `pyrun-ca crl` and copy the "
                         "new file to "
                      << path;
    return;
  }
  if (auto r = installCrl(env_->tls->native_handle(), path); !r) {
    PYRUN_LOG(kError) << "cannot install the CRL " << path << ": " << r.error().detail()
                      << "; the previous CRL stays in force";
    return;
  }
  env_->metrics.crlNextUpdate(contents->next_update);
  std::time_t now = std::time(nullptr);
  auto freshness = crlFreshness(contents->next_update, now);
  std::string message = crlFreshnessMessage(freshness, path, contents->next_update, now);
  if (freshness == CrlFreshness::kExpired) {
    PYRUN_LOG(kError) << message;
  } else if (!message.empty()) {
    PYRUN_LOG(kWarning) << message;
  }
  PYRUN_LOG(kInfo) << "CRL reloaded from " << path << ": " << contents->revoked_serials.size()
                   << " revoked certificates";
  if (!env_->config.kill_revoked_jobs) return;
  for (auto& s : liveSessions()) {
    if (!s->serial().empty() && contents->revoked_serials.count(s->serial())) s->revoke();
  }
}

void Server::watchCrl() {
  if (env_->config.crl_check_seconds == 0 || stopped_) return;
  // A periodic stat rather than inotify: it also sees a file replaced through a renamed directory
  // or a bind mount, costs one syscall every few seconds, and needs no extra descriptor.
  crl_timer_.expires_after(std::chrono::seconds(env_->config.crl_check_seconds));
  crl_timer_.async_wait([this](error_code ec) {
    if (ec || stopped_) return;
    FileStamp now = stampOf(env_->config.crl);
    if (now != crl_stamp_) {
      PYRUN_LOG(kInfo) << "the CRL file " << env_->config.crl << " changed; reloading it";
      reloadCrl();
    }
    watchCrl();
  });
}

}  // namespace pyrun::server
