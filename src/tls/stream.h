// A TLS connection over a TCP socket, driven by OpenSSL directly: the SSL object reads from and
// writes to buffers of this object (a BIO of our own, no BIO pair), and Asio only waits for the
// socket to be readable or writable (async_wait). That gives
// - batching: records are encrypted into one output buffer and sent with one send(); one recv()
//   takes in as many records as the read buffer holds, and they are decrypted from there;
// - memory that follows the work: with buffers released (the default) an idle connection holds no
//   data buffer at all, and OpenSSL releases its own (SSL_MODE_RELEASE_BUFFERS).
// Error codes are those of Asio's ssl::stream (the SSL category for OpenSSL's errors,
// ssl::error::stream_truncated for an end without close_notify, asio::error::eof after the
// peer's close_notify), so tls::handshakeError and friends describe them the same way.
//
// One thread: the reading and the writing coroutine may both use the stream, since every OpenSSL
// call completes before the next one starts; only one of them may read and one write at a time.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace pyrun::tls {

class Stream {
 public:
  using Socket = boost::asio::ip::tcp::socket;
  enum class Role { kClient, kServer };

  // Throws std::bad_alloc (or std::runtime_error) when OpenSSL cannot make the SSL object.
  Stream(Socket socket, boost::asio::ssl::context& context);
  Stream(const boost::asio::any_io_executor& executor, boost::asio::ssl::context& context);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  SSL* native_handle() const { return ssl_; }
  Socket& socket() { return socket_; }
  const Socket& socket() const { return socket_; }
  boost::asio::any_io_executor get_executor() { return socket_.get_executor(); }

  // `read_chunk`: the most one recv() takes in. `keep`: the data buffers stay allocated between
  // operations (bulk transfer); otherwise they are freed as soon as they are empty, and so are
  // OpenSSL's record buffers (an idle connection).
  void setBuffers(size_t read_chunk, bool keep);

  // Makes room for `bytes` of records in the output buffer at once, so that a writer that
  // encrypts up to a known batch never regrows it (with buffers kept).
  void reserveOutput(size_t bytes) { out_.reserve(bytes); }

  boost::asio::awaitable<boost::system::error_code> handshake(Role role);

  // Some plaintext (at least one byte), waiting for the socket only when nothing decryptable is
  // buffered. Errors: asio::error::eof after the peer's close_notify, ssl::error::stream_truncated
  // when the connection ended without one, the SSL category for OpenSSL's errors (an alert
  // received), system errors of the socket.
  boost::asio::awaitable<std::pair<boost::system::error_code, size_t>> readSome(
      std::span<uint8_t> out);
  // Exactly out.size() bytes.
  boost::asio::awaitable<boost::system::error_code> read(std::span<uint8_t> out);
  // True when plaintext or undecrypted bytes are buffered (readSome will not wait for the socket).
  bool readable() const;

  // Encrypts into the output buffer without sending; flush() sends it.
  boost::system::error_code encrypt(std::span<const uint8_t> plaintext);
  // Sends everything encrypted so far, waiting for the socket to take it.
  boost::asio::awaitable<boost::system::error_code> flush();
  boost::asio::awaitable<boost::system::error_code> write(std::span<const uint8_t> plaintext);
  // Bytes encrypted and not yet handed to the kernel.
  size_t pendingOutput() const { return out_.size() - out_sent_; }
  // Bytes handed to the kernel so far: a writer that makes progress moves it.
  uint64_t bytesSent() const { return bytes_sent_; }

  // Sends close_notify, then reads (and drops) until the peer's close_notify or the end of the
  // connection. The caller bounds it in time (cancellation, or closing the socket).
  boost::asio::awaitable<boost::system::error_code> shutdown();
  // Sends close_notify if the socket takes it at once; never waits.
  void shutdownNow();

 private:
  friend struct StreamBio;
  void init(boost::asio::ssl::context& context);
  // Tries one recv(): true when bytes came in or the connection ended (eof_ or error set).
  bool receive(boost::system::error_code& ec);
  // Sends what it can without waiting.
  boost::system::error_code sendNow();
  // After an OpenSSL call failed: the error code (consuming the error queue's first entry).
  boost::system::error_code sslError(int ssl_error);
  void releaseIdle();

  Socket socket_;
  SSL* ssl_ = nullptr;
  // Until setBuffers says otherwise: enough for a handshake's flights in a few reads, small for the
  // moment it is held.
  size_t read_chunk_ = 4u << 10;
  bool keep_ = false;
  // Received, not yet handed to OpenSSL: [in_pos_, in_end_).
  std::unique_ptr<uint8_t[]> in_;
  size_t in_size_ = 0;
  size_t in_pos_ = 0;
  size_t in_end_ = 0;
  bool eof_ = false;  // recv() returned 0
  // Encrypted, not yet sent: [out_sent_, out_.size()).
  std::vector<uint8_t> out_;
  size_t out_sent_ = 0;
  uint64_t bytes_sent_ = 0;
};

}  // namespace pyrun::tls
