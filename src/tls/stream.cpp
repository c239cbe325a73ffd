#include "tls/stream.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>
#include <stdexcept>

namespace pyrun::tls {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
}  // namespace

// The BIO between OpenSSL and the stream's buffers: reads take what recv() brought in, writes
// append to the output buffer. It never fails a write, so SSL_write never wants to write.
struct StreamBio {
  static Stream* of(BIO* bio) { return static_cast<Stream*>(BIO_get_data(bio)); }

  static int read(BIO* bio, char* out, int len) {
    BIO_clear_retry_flags(bio);
    Stream* s = of(bio);
    if (s->in_pos_ < s->in_end_) {
      const size_t n = std::min(static_cast<size_t>(len), s->in_end_ - s->in_pos_);
      std::memcpy(out, s->in_.get() + s->in_pos_, n);
      s->in_pos_ += n;
      return static_cast<int>(n);
    }
    if (s->eof_) return 0;
    BIO_set_retry_read(bio);
    return -1;
  }

  static int write(BIO* bio, const char* data, int len) {
    BIO_clear_retry_flags(bio);
    Stream* s = of(bio);
    const auto* bytes = reinterpret_cast<const uint8_t*>(data);
    s->out_.insert(s->out_.end(), bytes, bytes + len);
    return len;
  }

  static long ctrl(BIO* bio, int cmd, long /*num*/, void* /*ptr*/) {
    Stream* s = of(bio);
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_EOF:
        return s->eof_ && s->in_pos_ == s->in_end_ ? 1 : 0;
      case BIO_CTRL_PENDING:
        return static_cast<long>(s->in_end_ - s->in_pos_);
      case BIO_CTRL_WPENDING:
        return static_cast<long>(s->out_.size() - s->out_sent_);
      default:
        return 0;
    }
  }

  static int create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }

  static BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pyrun stream");
      if (made == nullptr || BIO_meth_set_read(made, read) != 1 ||
          BIO_meth_set_write(made, write) != 1 || BIO_meth_set_ctrl(made, ctrl) != 1 ||
          BIO_meth_set_create(made, create) != 1) {
        throw std::runtime_error("cannot make the TLS stream's BIO method");
      }
      return made;
    }();
    return m;
  }
};

Stream::Stream(Socket socket, asio::ssl::context& context) : socket_(std::move(socket)) {
  init(context);
}

Stream::Stream(const asio::any_io_executor& executor, asio::ssl::context& context)
    : socket_(executor) {
  init(context);
}

void Stream::init(asio::ssl::context& context) {
  ssl_ = SSL_new(context.native_handle());
  if (ssl_ == nullptr) throw std::bad_alloc();
  BIO* bio = BIO_new(StreamBio::method());
  if (bio == nullptr) {
    SSL_free(ssl_);
    throw std::bad_alloc();
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one BIO for both directions; the SSL object owns it
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
}

Stream::~Stream() { SSL_free(ssl_); }

void Stream::setBuffers(size_t read_chunk, bool keep) {
  read_chunk_ = read_chunk;
  keep_ = keep;
  if (keep) {
    SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  } else {
    SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  }
  if (in_ && in_pos_ == in_end_ && in_size_ != read_chunk_) {
    in_.reset();
    in_size_ = in_pos_ = in_end_ = 0;
  }
}

void Stream::releaseIdle() {
  if (keep_) return;
  if (in_ && in_pos_ == in_end_) {
    in_.reset();
    in_size_ = in_pos_ = in_end_ = 0;
  }
  if (out_sent_ == out_.size() && out_.capacity() != 0) {
    std::vector<uint8_t>().swap(out_);
    out_sent_ = 0;
  }
}

bool Stream::readable() const { return in_pos_ < in_end_ || SSL_pending(ssl_) > 0; }

bool Stream::receive(error_code& ec) {
  if (in_pos_ == in_end_) in_pos_ = in_end_ = 0;
  if (!in_ || in_size_ != read_chunk_) {
    if (in_end_ != 0) return true;  // unreachable: OpenSSL wants more only when all was taken
    in_.reset(new uint8_t[read_chunk_]);
    in_size_ = read_chunk_;
  }
  for (;;) {
    ssize_t n =
        ::recv(socket_.native_handle(), in_.get() + in_end_, in_size_ - in_end_, MSG_DONTWAIT);
    if (n > 0) {
      in_end_ += static_cast<size_t>(n);
      return true;
    }
    if (n == 0) {
      eof_ = true;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      releaseIdle();
      return false;
    }
    ec = error_code(errno, boost::system::system_category());
    return true;
  }
}

error_code Stream::sendNow() {
  while (out_sent_ < out_.size()) {
    ssize_t n = ::send(socket_.native_handle(), out_.data() + out_sent_, out_.size() - out_sent_,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      out_sent_ += static_cast<size_t>(n);
      bytes_sent_ += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return asio::error::would_block;
    return error_code(n < 0 ? errno : EPIPE, boost::system::system_category());
  }
  out_.clear();
  out_sent_ = 0;
  releaseIdle();
  return {};
}

error_code Stream::sslError(int ssl_error) {
  const unsigned long queued = ERR_get_error();
  if (eof_ && (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) == 0 &&
      (queued == 0 || ERR_GET_REASON(queued) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
    // The connection ended without close_notify: what Asio's stream calls stream_truncated.
    ERR_clear_error();
    return asio::ssl::error::stream_truncated;
  }
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  if (queued != 0) return error_code(static_cast<int>(queued), asio::error::get_ssl_category());
  if (ssl_error == SSL_ERROR_SYSCALL) return asio::ssl::error::unspecified_system_error;
  return asio::ssl::error::unexpected_result;
}

asio::awaitable<error_code> Stream::handshake(Role role) {
  if (role == Role::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_NONE) co_return co_await flush();
    if (e != SSL_ERROR_WANT_READ) {
      error_code ec = sslError(e);
      // The alert that says why goes out if the socket takes it now (as with Asio's stream).
      (void)sendNow();
      co_return ec;
    }
    if (error_code ec = co_await flush(); ec) co_return ec;
    error_code ec;
    while (!receive(ec)) {
      auto [wec] = co_await socket_.async_wait(Socket::wait_read, kAwait);
      if (wec) co_return wec;
    }
    if (ec) co_return ec;
  }
}

asio::awaitable<std::pair<error_code, size_t>> Stream::readSome(std::span<uint8_t> out) {
  if (out.empty()) co_return std::pair{error_code{}, size_t{0}};
  for (;;) {
    ERR_clear_error();
    size_t n = 0;
    const int r = SSL_read_ex(ssl_, out.data(), out.size(), &n);
    // A post-handshake message may have made OpenSSL answer (a key update): sent along.
    if (pendingOutput() > 0) (void)sendNow();
    if (r == 1) co_return std::pair{error_code{}, n};
    const int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ) co_return std::pair{sslError(e), size_t{0}};
    error_code ec;
    while (!receive(ec)) {
      auto [wec] = co_await socket_.async_wait(Socket::wait_read, kAwait);
      if (wec) co_return std::pair{wec, size_t{0}};
    }
    if (ec) co_return std::pair{ec, size_t{0}};
  }
}

asio::awaitable<error_code> Stream::read(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    auto [ec, n] = co_await readSome(out.subspan(done));
    if (ec) co_return ec;
    done += n;
  }
  co_return error_code{};
}

error_code Stream::encrypt(std::span<const uint8_t> plaintext) {
  size_t done = 0;
  while (done < plaintext.size()) {
    ERR_clear_error();
    size_t n = 0;
    const int chunk = static_cast<int>(std::min<size_t>(plaintext.size() - done, INT_MAX / 2));
    if (SSL_write_ex(ssl_, plaintext.data() + done, static_cast<size_t>(chunk), &n) != 1) {
      return sslError(SSL_get_error(ssl_, 0));
    }
    done += n;
  }
  return {};
}

asio::awaitable<error_code> Stream::flush() {
  for (;;) {
    error_code ec = sendNow();
    if (ec != asio::error::would_block) co_return ec;
    auto [wec] = co_await socket_.async_wait(Socket::wait_write, kAwait);
    if (wec) co_return wec;
  }
}

asio::awaitable<error_code> Stream::write(std::span<const uint8_t> plaintext) {
  if (error_code ec = encrypt(plaintext); ec) co_return ec;
  co_return co_await flush();
}

asio::awaitable<error_code> Stream::shutdown() {
  ERR_clear_error();
  if (SSL_shutdown(ssl_) < 0) {
    error_code ec = sslError(SSL_get_error(ssl_, -1));
    co_return ec;
  }
  if (error_code ec = co_await flush(); ec) co_return ec;
  // The peer's close_notify (or the end of the connection); data still arriving is dropped.
  uint8_t sink[512];
  for (;;) {
    auto [ec, n] = co_await readSome(std::span<uint8_t>(sink, sizeof sink));
    (void)n;
    if (ec == asio::error::eof) co_return error_code{};
    if (ec) co_return ec;
  }
}

void Stream::shutdownNow() {
  ERR_clear_error();
  if (SSL_shutdown(ssl_) < 0) {
    ERR_clear_error();
    return;
  }
  (void)sendNow();
}

}  // namespace pyrun::tls
