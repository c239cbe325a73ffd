// pyrund's network front.
#include "server/server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>

#include "common/log.h"

namespace pyrun::server {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {
// Sessions get this long to send their last frames after a stop before io_context is stopped.
constexpr auto kStopDeadline = std::chrono::seconds(10);
}  // namespace

Server::Server(asio::io_context& io, std::shared_ptr<SessionEnv> env)
    : io_(io),
      env_(std::move(env)),
      acceptor_(io),
      signals_(io, SIGTERM, SIGINT),
      stop_deadline_(io) {}

Server::~Server() {
  env_->on_idle = nullptr;
}

Result<std::unique_ptr<Server>> Server::create(asio::io_context& io, ServerConfig config,
                                               std::shared_ptr<asio::ssl::context> tls,
                                               UniqueFd spawner_socket) {
  error_code ec;
  auto address = asio::ip::make_address(config.listen, ec);
  if (ec) {
    return Error(Errc::kInvalidArgument,
                 "listen: \"" + config.listen + "\" is not an IPv4 or IPv6 address");
  }
  tcp::endpoint endpoint(address, config.port);
  auto link = std::make_unique<SpawnerLink>(io.get_executor(), std::move(spawner_socket));
  auto env = std::make_shared<SessionEnv>(std::move(config), std::move(tls), std::move(link));
  std::unique_ptr<Server> server(new Server(io, env));
  auto& acceptor = server->acceptor_;
  const std::string where = endpoint.address().is_v6()
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
  return server;
}

uint16_t Server::port() const {
  error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

std::string Server::address() const {
  error_code ec;
  auto ep = acceptor_.local_endpoint(ec);
  if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

void Server::start() {
  env_->spawner->start(
      [env = env_.get()](uint64_t) { env->scheduler.release(); },
      [this](const Error& e) {
        // Without a spawner no job can start or be told to end: stop at once, exit status 1.
        PYRUN_LOG(kError) << "spawner failed: " << e.detail() << "; stopping";
        exit_code_ = 1;
        stopped_ = true;
        io_.stop();
      });
  signals_.async_wait([this](error_code ec, int signal) {
    if (ec) return;
    PYRUN_LOG(kInfo) << "received " << (signal == SIGTERM ? "SIGTERM" : "SIGINT") << "; stopping";
    stop();
  });
  env_->on_idle = [this] { finishStop(); };
  asio::co_spawn(io_, acceptLoop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      PYRUN_LOG(kError) << "accept loop failed: " << x.what();
    }
  });
  const ServerLimits& l = env_->config.limits;
  PYRUN_LOG(kInfo) << "listening on " << address() << " (max_jobs " << env_->config.max_jobs
                   << ", queue " << env_->config.queue << "; limits: cpu " << l.cpu_seconds
                   << " s, wall " << l.wall_seconds << " s, memory " << humanBytes(l.memory_bytes)
                   << ", output " << humanBytes(l.output_bytes) << ", file size "
                   << humanBytes(l.file_size_bytes) << ", open files " << l.open_files
                   << ", processes " << l.processes << ")";
}

asio::awaitable<void> Server::acceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and friends: pause rather than spin; the listening socket keeps the backlog.
      PYRUN_LOG(kWarning) << "accept failed: " << ec.message();
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<Session>(env_, std::move(socket))->start();
  }
}

void Server::stop() {
  if (stopped_) {
    // A second signal: do not wait for sessions.
    io_.stop();
    return;
  }
  stopped_ = true;
  env_->stopping = true;
  error_code ignored;
  acceptor_.close(ignored);
  signals_.async_wait([this](error_code ec, int) {
    if (!ec) {
      PYRUN_LOG(kInfo) << "second signal; stopping now";
      io_.stop();
    }
  });
  // Copy first: shutdown() may end a session, which erases itself from the map.
  std::vector<std::shared_ptr<Session>> live;
  for (auto& [ptr, weak] : env_->sessions) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (auto& s : live) s->shutdown();
  live.clear();
  stop_deadline_.expires_after(kStopDeadline);
  stop_deadline_.async_wait([this](error_code ec) {
    if (ec) return;
    PYRUN_LOG(kWarning) << "sessions still open " << kStopDeadline.count() << " s after stop";
    io_.stop();
  });
  if (env_->sessions.empty()) finishStop();
}

void Server::finishStop() {
  // Closing the spawner socket makes the spawner kill whatever is left and exit.
  env_->spawner->close();
  signals_.cancel();
  stop_deadline_.cancel();
  PYRUN_LOG(kInfo) << "stopped";
}

}  // namespace pyrun::server
