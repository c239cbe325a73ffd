// The operators' HTTP listener (see http_status.h).
#include "server/http_status.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>

#include "common/log.h"

namespace pyrun::server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

namespace {
constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
// A scraper sends one small request and reads one answer: anything slower or bigger is not one.
constexpr auto kRequestDeadline = std::chrono::seconds(5);
constexpr uint32_t kMaxHeaderBytes = 8 * 1024;
// Connections served at once; more are closed at accept (a scraper needs one or two).
constexpr long kMaxConnections = 16;

std::string endpointText(const tcp::endpoint& ep) {
  if (ep.address().is_v6())
    return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}
}  // namespace

StatusReply answerStatusRequest(std::string_view method, std::string_view target,
                                const StatusSource& source) {
  // The query string does not select anything (Prometheus may add ?format=...).
  std::string_view path = target.substr(0, target.find('?'));
  if (path != "/metrics" && path != "/healthz") {
    return {404, "text/plain; charset=utf-8", "not found: try /metrics or /healthz\n", ""};
  }
  if (method != "GET" && method != "HEAD") {
    return {405, "text/plain; charset=utf-8", "method not allowed\n", "GET, HEAD"};
  }
  if (path == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", source.metrics(), ""};
  }
  if (source.accepting()) return {200, "text/plain; charset=utf-8", "ok\n", ""};
  return {503, "text/plain; charset=utf-8", "draining\n", ""};
}

StatusListener::StatusListener(asio::io_context& io, StatusSource source)
    : io_(io), acceptor_(io), source_(std::move(source)), live_(std::make_shared<int>(0)) {}

StatusListener::~StatusListener() { stop(); }

Result<std::unique_ptr<StatusListener>> StatusListener::create(asio::io_context& io,
                                                               const std::string& address,
                                                               uint16_t port, StatusSource source) {
  error_code ec;
  auto ip = asio::ip::make_address(address, ec);
  if (ec)
    return Error(Errc::kInvalidArgument,
                 "metrics_listen: \"" + address + "\" is not an IP address");
  tcp::endpoint endpoint(ip, port);
  std::unique_ptr<StatusListener> listener(new StatusListener(io, std::move(source)));
  auto& acceptor = listener->acceptor_;
  const std::string where = endpointText(endpoint);
  if (acceptor.open(endpoint.protocol(), ec); ec) {
    return Error(Errc::kIo,
                 "metrics_listen: cannot open a socket for " + where + ": " + ec.message());
  }
  acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ip.is_v6()) acceptor.set_option(asio::ip::v6_only(true), ec);
  if (acceptor.bind(endpoint, ec); ec) {
    return Error(Errc::kIo, "metrics_listen: cannot listen on " + where + ": " + ec.message());
  }
  if (acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) {
    return Error(Errc::kIo, "metrics_listen: cannot listen on " + where + ": " + ec.message());
  }
  return listener;
}

std::string StatusListener::address() const {
  error_code ec;
  return endpointText(acceptor_.local_endpoint(ec));
}

void StatusListener::start() {
  PYRUN_LOG(kInfo) << "metrics and health on http://" << address() << "/metrics, /healthz";
  asio::co_spawn(io_, acceptLoop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      PYRUN_LOG(kError) << "metrics listener failed: " << x.what();
    } catch (...) {
      PYRUN_LOG(kError) << "metrics listener failed: unknown exception";
    }
  });
}

void StatusListener::stop() {
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
}

asio::awaitable<void> StatusListener::acceptLoop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(kAwait);
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and friends: the TLS listener's backoff applies the same reasoning.
      asio::steady_timer pause(io_, std::chrono::milliseconds(100));
      co_await pause.async_wait(kAwait);
      continue;
    }
    if (live_.use_count() - 1 >= kMaxConnections) {
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> StatusListener::serve(tcp::socket socket) {
  auto hold = live_;
  beast::tcp_stream stream(std::move(socket));
  stream.expires_after(kRequestDeadline);
  beast::flat_buffer buffer(kMaxHeaderBytes);
  http::request_parser<http::empty_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(0);
  auto [ec, n] = co_await http::async_read(stream, buffer, parser, kAwait);
  (void)n;
  http::response<http::string_body> response;
  if (ec) {
    // A timeout or a closed connection gets nothing; a malformed or oversized request gets a 400.
    if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset) {
      co_return;
    }
    response.result(http::status::bad_request);
    response.set(http::field::content_type, "text/plain; charset=utf-8");
    response.body() = "bad request\n";
    response.version(11);
  } else {
    const auto& request = parser.get();
    StatusReply reply = answerStatusRequest(request.method_string(), request.target(), source_);
    response.result(reply.status);
    response.version(request.version());
    response.set(http::field::content_type, reply.content_type);
    if (!reply.allow.empty()) response.set(http::field::allow, reply.allow);
    response.body() = std::move(reply.body);
    if (request.method() == http::verb::head) {
      response.content_length(response.body().size());
      response.body().clear();
    }
  }
  response.set(http::field::server, "pyrund");
  response.set(http::field::cache_control, "no-store");
  response.keep_alive(false);
  if (response.body().size() > 0 || !response.has_content_length()) response.prepare_payload();
  co_await http::async_write(stream, response, kAwait);
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace pyrun::server
