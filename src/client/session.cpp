// The client side of pyrun/1 over Boost.Asio coroutines (see docs/PROTOCOL.md and docs/pyrun.md).
#include "client/session.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <utility>

#include "client/exit_status.h"
#include "client/progress.h"
#include "client/results.h"
#include "client/stdio.h"
#include "client/terminal.h"
#include "client/timings.h"
#include "client/upload.h"
#include "common/file.h"
#include "proto/frame.h"
#include "tls/stream.h"
#include "tls/tls.h"

namespace pyrun::client {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// Frames waiting for the writer. Small: a full queue blocks the stdin pump, which blocks the stdin
// thread, which stops reading: backpressure from the network to the user's stdin.
constexpr size_t kOutboxFrames = 4;
// What one recv() of the connection takes in: many records, decrypted from memory afterwards.
// 128 KiB, not more: pyrun's peak RSS is a target (8 MiB streaming 1 GiB), and 256 KiB took no
// less CPU per GiB.
constexpr size_t kReadChunk = 128u << 10;

// Ends the run: status and the sentence to print (none when empty).
struct Stop {
  int status = kFailureStatus;
  std::string message;
};

std::string baseName(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Size of a RUN payload as messages.h encodes it; checked before encoding, whose precondition is
// a payload within kMaxFramePayload.
uint64_t runPayloadSize(const proto::RunRequest& r) {
  uint64_t size = 4 + r.script_name.size() + 4 + r.script.size() + 4;
  for (const auto& a : r.args) size += 4 + a.size();
  size += 4 + 4 + 8 + 8;  // limits
  size += 4;              // files
  for (const auto& f : r.files) size += 4 + f.name.size() + 4 + 4 + f.data.size();
  return size;
}

class Session {
 public:
  Session(asio::io_context& io, const Options& options, std::shared_ptr<asio::ssl::context> ctx,
          proto::RunRequest request, UploadPlan upload, UniqueFd output_dir, UniqueFd stdin_pipe,
          std::optional<proto::Terminal> terminal, RawMode* raw)
      : options_(options),
        terminal_(std::move(terminal)),
        raw_(raw),
        upload_(std::move(upload)),
        results_(std::move(output_dir), kMaxResultFiles, kMaxResultBytes),
        upload_progress_(::isatty(2) == 1 && !options.quiet, "sending", upload_.bytes),
        download_progress_(::isatty(2) == 1 && !options.quiet, "receiving", 0),
        endpoint_(formatEndpoint(options.host, options.port)),
        ctx_(std::move(ctx)),
        request_(std::move(request)),
        resolver_(io),
        stream_(io.get_executor(), *ctx_),
        deadline_(io),
        outbox_(io, kOutboxFrames),
        signals_(io, SIGINT, SIGTERM, SIGHUP),
        window_signal_(io),
        stdin_(io),
        stdout_(io.get_executor(), 1),
        stderr_(io.get_executor(), 2) {
    error_code ec;
    stdin_.assign(stdin_pipe.release(), ec);
    if (terminal_) {
      // In raw mode every signal whose default would end pyrun must pass through the way out
      // that puts the terminal back: they cancel the job, like SIGTERM. Not SIGPIPE: pyrun
      // ignores it (a write to a closed pipe fails with EPIPE instead), and a signal_set, once
      // gone, leaves its signals at their default, which for SIGPIPE would kill pyrun.
      for (int sig : {SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM}) signals_.add(sig, ec);
    }
  }

  awaitable<void> watchSignals();
  // -t: sends WINDOW when the local terminal's size changes (SIGWINCH), once the job runs.
  awaitable<void> watchWindow();
  awaitable<int> run();
  // Stops everything that could still be pending, so that io_context::run() returns.
  void closeAll();

 private:
  awaitable<void> connect();
  awaitable<void> connectFrom(const asio::ip::address& local,
                              const tcp::resolver::results_type& endpoints);
  awaitable<void> handshake();
  awaitable<std::pair<error_code, proto::FrameType>> readFrame();
  awaitable<int> exchange();
  awaitable<void> writer();
  awaitable<void> pumpStdin();
  awaitable<void> send(std::vector<uint8_t> frame);
  // The planned files (FILE, FILE_DATA...) and then RUN, while exchange() already reads: an
  // ERROR the server sends in the middle of an upload (over quota) is seen at once.
  awaitable<void> sendRequest();
  // Streams one planned file; an error when the local file cannot be read or changed size.
  awaitable<Result<void>> sendFile(const UploadEntry& e);
  awaitable<void> closeGracefully();
  int finishJob(const proto::Exit& exit);
  // --timings: reads the TIMINGS frame that follows EXIT and prints it beside our own stamps.
  awaitable<void> readTimings();

  void armDeadline(std::chrono::steady_clock::duration d);
  // No more frames: senders waiting for room fail at once. (close() alone would leave them waiting
  // for ever, and io_context::run() with them.)
  void closeOutbox() {
    outbox_.cancel();
    outbox_.close();
  }
  void closeSocket() {
    error_code ignored;
    stream_.socket().close(ignored);
  }
  // Turns a failure into the right Stop: a signal or the deadline explain it better than the error.
  [[noreturn]] void fail(std::string message);

  // -t: the job's terminal was asked for with TERMINAL; raw_ is the local terminal's raw mode,
  // entered when the job starts (before it, Ctrl-C still drops the request), restored by runJob.
  void startTerminal();
  void sendWindowIfChanged();

  const Options& options_;
  std::optional<proto::Terminal> terminal_;
  RawMode* raw_;
  EscapeScanner escape_;
  bool escaped_ = false;  // the user typed ~.
  UploadPlan upload_;
  uint64_t uploaded_bytes_ = 0;
  ResultWriter results_;
  Progress upload_progress_;
  Progress download_progress_;
  // A local file failed while being sent: the run ends with this sentence.
  std::optional<std::string> upload_failure_;
  std::string endpoint_;
  std::shared_ptr<asio::ssl::context> ctx_;
  proto::RunRequest request_;
  tcp::resolver resolver_;
  tls::Stream stream_;
  asio::steady_timer deadline_;
  asio::experimental::channel<void(error_code, std::vector<uint8_t>)> outbox_;
  asio::signal_set signals_;
  asio::signal_set window_signal_;
  asio::posix::stream_descriptor stdin_;
  OutputSink stdout_;
  OutputSink stderr_;

  proto::ClientState state_ = proto::ClientState::kAwaitReady;
  proto::Limits limits_;
  std::vector<uint8_t> payload_;
  std::string phase_ = "connecting to";  // for timeout messages: "timed out connecting to host"
  bool timed_out_ = false;
  bool started_ = false;
  bool writing_ = false;
  bool closed_ = false;
  int interrupted_by_ = 0;           // signal that ended the run before the job started
  bool cancelled_by_close_ = false;  // a cancel closed the connection (the outbox was full)
  int sigints_ = 0;
  error_code write_error_;
  // Set when the local stdout or stderr failed: the job is cancelled and its output dropped.
  std::optional<Stop> local_output_failure_;
  ClientTimes times_;  // --timings
};

void Session::fail(std::string message) {
  if (interrupted_by_ != 0) throw Stop{128 + interrupted_by_, ""};
  if (escaped_) {
    throw Stop{kFailureStatus, "session ended with ~. (the server kills the job)"};
  }
  if (upload_failure_) throw Stop{kFailureStatus, *upload_failure_};
  if (cancelled_by_close_) {
    // What EXIT would have said for a cancelled job (killed with SIGKILL).
    throw Stop{128 + SIGKILL,
               "cancelled by the client (connection closed; the server kills the job)"};
  }
  if (timed_out_) {
    throw Stop{kFailureStatus, "timed out after " + std::to_string(options_.timeout.count()) +
                                   " s " + phase_ + " " + endpoint_};
  }
  throw Stop{kFailureStatus, std::move(message)};
}

void Session::armDeadline(std::chrono::steady_clock::duration d) {
  deadline_.expires_after(d);
  deadline_.async_wait([this](error_code ec) {
    if (ec) return;
    timed_out_ = true;
    resolver_.cancel();
    closeSocket();
  });
}

void Session::closeAll() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  deadline_.cancel();
  resolver_.cancel();
  signals_.cancel(ignored);
  window_signal_.cancel(ignored);
  closeOutbox();
  stdin_.close(ignored);
  closeSocket();
}

awaitable<void> Session::watchSignals() {
  for (;;) {
    auto [ec, sig] = co_await signals_.async_wait(kTuple);
    if (ec || closed_) co_return;
    if (!started_) {
      // Nothing runs yet: closing the connection drops the request (or our place in the queue).
      interrupted_by_ = sig;
      resolver_.cancel();
      closeSocket();
      continue;
    }
    // Never wait for room in the outbox here: behind stdin that the server does not take (a
    // program that does not read it) the wait could last for ever, and the next Ctrl-C must
    // still be seen. With a terminal, Ctrl-C is a byte the job's terminal turns into SIGINT; a
    // signal that reaches pyrun itself (kill) cancels the job.
    if (sig == SIGINT && ++sigints_ == 1 && !terminal_) {
      if (options_.verbose) printLine("interrupt: sending SIGINT to the program");
      auto frame = proto::encode(proto::Signal{static_cast<uint8_t>(SIGINT)});
      if (!outbox_.try_send(error_code{}, std::vector<uint8_t>(frame))) {
        // It goes out after the frames already queued, as it would have anyway.
        asio::co_spawn(stream_.get_executor(), send(std::move(frame)), asio::detached);
      }
    } else {
      if (options_.verbose) printLine("cancelling the job");
      if (!outbox_.try_send(error_code{}, proto::encodeEmpty(proto::FrameType::kCancel))) {
        // CANCEL cannot get through: closing the connection has the same effect, since the
        // server kills the job of a client that went away.
        cancelled_by_close_ = true;
        closeSocket();
      }
    }
  }
}

void Session::sendWindowIfChanged() {
  auto size = terminalSize(0);
  if (!size) size = terminalSize(1);
  if (!size || *size == terminal_->size) return;
  terminal_->size = *size;
  auto frame = proto::encode(*size);
  if (!outbox_.try_send(error_code{}, std::vector<uint8_t>(frame))) {
    asio::co_spawn(stream_.get_executor(), send(std::move(frame)), asio::detached);
  }
}

awaitable<void> Session::watchWindow() {
  window_signal_.add(SIGWINCH);
  for (;;) {
    auto [ec, sig] = co_await window_signal_.async_wait(kTuple);
    if (ec || closed_) co_return;
    if (started_) sendWindowIfChanged();
  }
}

void Session::startTerminal() {
  if (!terminal_) return;
  if (raw_ != nullptr && ::isatty(0) == 1) {
    if (auto r = raw_->enter(0); !r) fail(r.error().detail());
  }
  // A resize while the job was queued.
  sendWindowIfChanged();
}

awaitable<void> Session::connectFrom(const asio::ip::address& local,
                                     const tcp::resolver::results_type& endpoints) {
  // asio::async_connect reopens the socket for each address, which would drop the bind: try the
  // server's addresses of the local address's family one by one instead.
  auto& socket = stream_.socket();
  error_code last = asio::error::address_family_not_supported;
  for (const auto& entry : endpoints) {
    if (entry.endpoint().address().is_v4() != local.is_v4()) continue;
    error_code ec;
    socket.close(ec);
    socket.open(entry.endpoint().protocol(), ec);
    if (!ec) socket.bind(tcp::endpoint(local, 0), ec);
    if (ec) fail("cannot bind to " + options_.bind_address + ": " + ec.message());
    auto [cec] = co_await socket.async_connect(entry.endpoint(), kTuple);
    if (!cec) co_return;
    last = cec;
  }
  fail("cannot connect to " + endpoint_ + " from " + options_.bind_address + ": " + last.message());
}

awaitable<void> Session::connect() {
  times_.stamp(ClientStage::kConnect);
  phase_ = "resolving";
  const std::string service = std::to_string(options_.port);
  tcp::resolver::results_type endpoints;
  // A numeric address needs no resolver. Asio's runs getaddrinfo on a thread of its own, and
  // starting it (and reading nsswitch.conf and /etc/hosts) is a measurable part of a fresh pyrun's
  // hello world.
  error_code numeric_ec;
  if (auto numeric = asio::ip::make_address(options_.host, numeric_ec); !numeric_ec) {
    endpoints = tcp::resolver::results_type::create(tcp::endpoint(numeric, options_.port),
                                                    options_.host, service);
  } else {
    auto [rec, resolved] = co_await resolver_.async_resolve(options_.host, service, kTuple);
    if (rec) fail("cannot resolve " + options_.host + ": " + rec.message());
    endpoints = std::move(resolved);
  }
  phase_ = "connecting to";
  if (options_.bind_address.empty()) {
    auto [cec, ep] = co_await asio::async_connect(stream_.socket(), endpoints, kTuple);
    if (cec) fail("cannot connect to " + endpoint_ + ": " + cec.message());
  } else {
    co_await connectFrom(asio::ip::make_address(options_.bind_address), endpoints);
  }
  times_.stamp(ClientStage::kConnected);
  error_code ignored;
  stream_.socket().set_option(tcp::no_delay(true), ignored);
  // One recv() takes in up to 128 KiB of records (eight full ones), then decrypted from memory.
  stream_.setBuffers(kReadChunk, true);
}

awaitable<void> Session::handshake() {
  phase_ = "in the TLS handshake with";
  if (auto r = tls::prepareClient(stream_.native_handle(), options_.host); !r) {
    fail(r.error().detail());
  }
  error_code ec = co_await stream_.handshake(tls::Stream::Role::kClient);
  if (ec) {
    if (auto why = tls::certificateRejection(ec)) fail("server rejected the certificate: " + *why);
    fail("TLS handshake with " + endpoint_ +
         " failed: " + tls::handshakeError(stream_.native_handle(), ec).detail());
  }
  if (auto r = tls::checkServer(stream_.native_handle(), options_.pin); !r) {
    fail(endpoint_ + ": " + r.error().detail());
  }
  times_.stamp(ClientStage::kHandshake);
}

awaitable<std::pair<error_code, proto::FrameType>> Session::readFrame() {
  std::array<uint8_t, proto::kFrameHeaderSize> header{};
  error_code ec = co_await stream_.read(header);
  if (ec) co_return std::pair{ec, proto::FrameType::kError};
  auto h = proto::decodeHeader(header);
  if (!h) fail("protocol error from " + endpoint_ + ": " + h.error().detail());
  payload_.resize(h->length);
  if (h->length > 0) {
    error_code pec = co_await stream_.read(payload_);
    if (pec) co_return std::pair{pec, h->type};
  }
  co_return std::pair{error_code{}, h->type};
}

awaitable<void> Session::send(std::vector<uint8_t> frame) {
  // An error means the outbox is closed: the connection is over, and the reader reports why.
  auto [ec] = co_await outbox_.async_send(error_code{}, std::move(frame), kTuple);
  (void)ec;
}

awaitable<Result<void>> Session::sendFile(const UploadEntry& e) {
  // -f names a path the user chose: its own symlink is followed; nothing else ever is.
  UniqueFd fd(::open(e.local.c_str(), O_RDONLY | O_CLOEXEC | (e.follow ? 0 : O_NOFOLLOW)));
  if (!fd) co_return errnoError("cannot read " + e.local, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) co_return errnoError("cannot read " + e.local, errno);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != e.size) {
    co_return Error(Errc::kIo, e.local + " changed while pyrun was sending it");
  }
  if (options_.verbose) printLine("sending " + e.name + " (" + formatBytes(e.size) + ")");
  // Built before the co_await: GCC 12 destroys a temporary aggregate inside a co_await
  // expression twice.
  proto::FileHeader header{e.name, e.mode, e.size};
  std::vector<uint8_t> header_frame = proto::encode(header);
  co_await send(std::move(header_frame));
  std::vector<uint8_t> buf(proto::kMaxDataChunk);
  uint64_t left = e.size;
  while (left > 0 && !closed_) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
    ssize_t n = ::read(fd.get(), buf.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) co_return errnoError("cannot read " + e.local, errno);
    if (n == 0) co_return Error(Errc::kIo, e.local + " changed while pyrun was sending it");
    const auto got = static_cast<size_t>(n);
    // Waits for room in the outbox: the disk is read no faster than the network takes it.
    co_await send(proto::encodeData(proto::FrameType::kFileData, std::span(buf.data(), got)));
    left -= got;
    uploaded_bytes_ += got;
    upload_progress_.advance(got);
  }
  co_return Result<void>{};
}

awaitable<void> Session::sendRequest() {
  if (!options_.gets.empty()) {
    std::vector<uint8_t> get =
        proto::encode(proto::Get{options_.gets, kMaxResultFiles, kMaxResultBytes});
    co_await send(std::move(get));
  }
  if (terminal_) {
    std::vector<uint8_t> terminal = proto::encode(*terminal_);
    co_await send(std::move(terminal));
  }
  for (const auto& e : upload_.entries) {
    if (closed_) co_return;
    auto sent = co_await sendFile(e);
    if (!sent) {
      upload_progress_.done();
      // The server would otherwise wait for the missing bytes: end the connection.
      upload_failure_ = sent.error().detail();
      closeSocket();
      co_return;
    }
  }
  upload_progress_.done();
  co_await send(proto::encode(request_));
}

awaitable<void> Session::writer() {
  for (;;) {
    auto [ec, frame] = co_await outbox_.async_receive(kTuple);
    if (ec) co_return;
    writing_ = true;
    error_code wec = co_await stream_.write(frame);
    writing_ = false;
    if (wec) {
      write_error_ = wec;
      closeOutbox();  // unblocks senders; the reader sees the broken connection
      co_return;
    }
  }
}

awaitable<void> Session::pumpStdin() {
  std::vector<uint8_t> buf(proto::kMaxDataChunk);
  for (;;) {
    auto [ec, n] = co_await stdin_.async_read_some(asio::buffer(buf), kTuple);
    if (closed_) co_return;
    if (ec) {
      // Our pipe ends only at end of input (or a read error, which ends input just the same).
      if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
      co_await send(proto::encodeEmpty(proto::FrameType::kStdinEnd));
      co_return;
    }
    if (terminal_) {
      // ~. ends the session as in ssh: closing the connection makes the server kill the job.
      std::vector<uint8_t> typed;
      if (escape_.scan(std::span(buf.data(), n), typed)) {
        escaped_ = true;
        closeSocket();
        co_return;
      }
      if (typed.empty()) continue;
      co_await send(proto::encodeData(proto::FrameType::kStdin, typed));
      continue;
    }
    co_await send(proto::encodeData(proto::FrameType::kStdin, std::span(buf.data(), n)));
  }
}

int Session::finishJob(const proto::Exit& exit) {
  if (local_output_failure_) {
    if (!local_output_failure_->message.empty()) printLine(local_output_failure_->message);
    return local_output_failure_->status;
  }
  if (auto line = verdictLine(exit, limits_)) printLine(*line);
  if (options_.stats) {
    printLine(statsLine(exit) + ", uploaded " + std::to_string(uploaded_bytes_) + " bytes in " +
              std::to_string(upload_.entries.size()) + " files, downloaded " +
              std::to_string(results_.bytes()) + " bytes in " + std::to_string(results_.files()) +
              " files");
  }
  return exitStatusFor(exit);
}

awaitable<int> Session::exchange() {
  using proto::FrameType;
  state_ = proto::ClientState::kAwaitStart;
  for (;;) {
    auto [ec, type] = co_await readFrame();
    if (ec) {
      if (write_error_) fail("connection to " + endpoint_ + " lost: " + write_error_.message());
      fail("connection to " + endpoint_ + " lost before the job ended: " + ec.message());
    }
    if (!proto::clientAccepts(state_, type)) {
      fail("protocol error: " + endpoint_ + " sent an unexpected " +
           proto::frameTypeName(static_cast<uint8_t>(type)) + " frame");
    }
    std::span<const uint8_t> payload(payload_);
    switch (type) {
      case FrameType::kQueued: {
        auto q = proto::decodeQueued(payload);
        if (!q) fail("protocol error: " + q.error().detail());
        state_ = proto::ClientState::kQueued;
        // Only for a person watching: 32 jobs run through xargs -P8 would print dozens.
        if (options_.verbose || ::isatty(2) == 1) {
          printLine("queued, position " + std::to_string(q->position));
        }
        break;
      }
      case FrameType::kStarted: {
        auto s = proto::decodeStarted(payload);
        if (!s) fail("protocol error: " + s.error().detail());
        state_ = proto::ClientState::kRunning;
        times_.stamp(ClientStage::kStarted);
        limits_ = s->limits;
        started_ = true;
        if (interrupted_by_ != 0) fail("");
        startTerminal();
        if (options_.verbose) {
          printLine("job " + s->job_id + " started (cpu " + std::to_string(limits_.cpu_seconds) +
                    " s, wall " + std::to_string(limits_.wall_seconds) + " s, memory " +
                    formatBytes(limits_.memory_bytes) + ", output " +
                    formatBytes(limits_.output_bytes) + ")");
        }
        asio::co_spawn(stream_.get_executor(), pumpStdin(), asio::detached);
        break;
      }
      case FrameType::kStdout:
      case FrameType::kStderr: {
        if (local_output_failure_) break;
        if (!payload.empty()) times_.stamp(ClientStage::kFirstOutput);
        // Written in full before the next frame is read: a slow reader of our stdout slows the
        // server's reads of the program's pipe, and memory stays at one frame.
        auto& sink = type == FrameType::kStdout ? stdout_ : stderr_;
        error_code wec = co_await sink.write(payload);
        if (wec) {
          // Like a local program whose reader went away (`pyrun ... | head`): stop the job and
          // exit as if killed by SIGPIPE, quietly.
          local_output_failure_ =
              wec == boost::system::errc::broken_pipe
                  ? Stop{128 + SIGPIPE, ""}
                  : Stop{kFailureStatus, std::string("cannot write the program's ") +
                                             (type == FrameType::kStdout ? "stdout" : "stderr") +
                                             ": " + wec.message()};
          if (!outbox_.try_send(error_code{}, proto::encodeEmpty(proto::FrameType::kCancel))) {
            // The server takes no input now (stdin the program does not read fills the way):
            // waiting for room could last for ever, and a closed connection cancels the job too.
            closeSocket();
            throw *local_output_failure_;
          }
        }
        break;
      }
      case FrameType::kResult:
      case FrameType::kResultData: {
        if (options_.gets.empty()) {
          fail("protocol error: " + endpoint_ + " sent result files that were not asked for");
        }
        Result<void> r;
        if (type == FrameType::kResult) {
          auto h = proto::decodeFileHeader(payload);
          if (!h) fail("protocol error: " + h.error().detail());
          r = results_.begin(*h);
          download_progress_.addTotal(h->size);
          if (r && options_.verbose) {
            printLine("receiving " + h->name + " (" + formatBytes(h->size) + ")");
          }
        } else {
          r = results_.data(payload);
          download_progress_.advance(payload.size());
        }
        if (!r) {
          fail(r.error().code() == Errc::kProtocol
                   ? "protocol error: " + endpoint_ + ": " + r.error().detail()
                   : r.error().detail());
        }
        break;
      }
      case FrameType::kExit: {
        auto x = proto::decodeExit(payload);
        if (!x) fail("protocol error: " + x.error().detail());
        if (results_.owed())
          fail("protocol error: " + endpoint_ + " sent EXIT inside a result file");
        download_progress_.done();
        times_.stamp(ClientStage::kExit);
        state_ = proto::ClientState::kDone;
        const int status = finishJob(*x);
        if (options_.timings) co_await readTimings();
        co_return status;
      }
      case FrameType::kError: {
        auto e = proto::decodeError(payload);
        if (!e) fail("protocol error: " + e.error().detail());
        state_ = proto::ClientState::kDone;
        fail(e->message.empty() ? "the server refused the job (error " +
                                      std::to_string(static_cast<int>(e->code)) + ")"
                                : e->message);
      }
      default:
        fail("protocol error: " + endpoint_ + " sent an unexpected " +
             proto::frameTypeName(static_cast<uint8_t>(type)) + " frame");
    }
  }
}

awaitable<void> Session::readTimings() {
  state_ = proto::ClientState::kAwaitTimings;
  auto [ec, type] = co_await readFrame();
  // The job is over and its status known: a server that sends no TIMINGS is only said so.
  if (ec) {
    printLine("timings: " + endpoint_ + " sent none (" + ec.message() + ")");
    co_return;
  }
  // After EXIT a broken TIMINGS is reported but changes no exit status.
  if (!proto::clientAccepts(state_, type)) {
    printLine("protocol error: " + endpoint_ + " sent " +
              proto::frameTypeName(static_cast<uint8_t>(type)) + " after EXIT instead of TIMINGS");
    co_return;
  }
  auto timings = proto::decodeTimings(payload_);
  if (!timings) {
    printLine("protocol error: " + timings.error().detail());
    co_return;
  }
  state_ = proto::ClientState::kDone;
  times_.stamp(ClientStage::kTimings);
  for (const auto& l : timingsLines(*timings, times_)) printLine(l);
}

awaitable<void> Session::closeGracefully() {
  // close_notify tells the server that we saw everything; skipped while a write is stuck. It is
  // sent, not exchanged: after EXIT nothing the server says matters, and a server whose receive
  // queue holds stdin it never read may send no close_notify (its close resets the connection).
  // On a non-blocking socket the shutdown writes ours if the socket takes it now and then ends
  // with would_block where it would wait for the server's.
  closeOutbox();
  if (writing_) co_return;
  stream_.shutdownNow();
  co_return;
}

awaitable<int> Session::run() {
  armDeadline(options_.timeout);
  co_await connect();
  co_await handshake();
  phase_ = "waiting for the greeting of";
  auto [ec, type] = co_await readFrame();
  if (ec) {
    if (auto why = tls::certificateRejection(ec)) fail("server rejected the certificate: " + *why);
    fail(endpoint_ + " closed the connection before it was ready: " +
         tls::handshakeError(stream_.native_handle(), ec).detail());
  }
  if (type == proto::FrameType::kError) {
    auto e = proto::decodeError(payload_);
    fail(e ? e->message : "protocol error: " + e.error().detail());
  }
  if (!proto::clientAccepts(state_, type) || type != proto::FrameType::kReady) {
    fail("protocol error: " + endpoint_ + " sent " +
         proto::frameTypeName(static_cast<uint8_t>(type)) + " instead of READY");
  }
  auto ready = proto::decodeReady(payload_);
  if (!ready) fail("protocol error: " + ready.error().detail());
  deadline_.cancel();
  times_.stamp(ClientStage::kReady);
  if (options_.verbose) {
    printLine("connected to " + endpoint_ + " (" + ready->server + ", protocol " +
              std::to_string(ready->version) + ")");
  }
  asio::co_spawn(stream_.get_executor(), writer(), asio::detached);
  asio::co_spawn(stream_.get_executor(), sendRequest(), asio::detached);
  int status = co_await exchange();
  co_await closeGracefully();
  co_return status;
}

}  // namespace

Result<proto::RunRequest> buildRunRequest(const Options& options) {
  proto::RunRequest request;
  request.script_name = baseName(options.script);
  auto script = readFile(options.script, proto::kMaxFramePayload);
  if (!script) return script.error();
  request.script = std::move(*script);
  request.args = options.args;
  request.want_timings = options.timings;
  if (auto v = proto::validateRunRequest(request); !v) {
    return Error(Errc::kInvalidArgument, options.script + ": " + v.error().detail());
  }
  uint64_t size = runPayloadSize(request);
  if (size > proto::kMaxFramePayload) {
    return Error(Errc::kInvalidArgument, options.script + " and its arguments take " +
                                             std::to_string(size) + " bytes, more than the " +
                                             std::to_string(proto::kMaxFramePayload) +
                                             " bytes a request may have");
  }
  return request;
}

int runJob(const Options& options) {
  auto request = buildRunRequest(options);
  if (!request) {
    printLine(request.error().detail());
    return kFailureStatus;
  }
  auto upload = planUpload(options);
  if (!upload) {
    printLine(upload.error().detail());
    return kFailureStatus;
  }
  for (const auto& pattern : options.gets) {
    if (auto ok = proto::validateFileName(pattern, 0); !ok) {
      printLine("--get " + pattern + ": " + ok.error().detail());
      return kFailureStatus;
    }
  }
  if (options.gets.size() > proto::kMaxGetPatterns) {
    printLine("at most " + std::to_string(proto::kMaxGetPatterns) + " --get patterns");
    return kFailureStatus;
  }
  UniqueFd output_dir;
  if (!options.gets.empty()) {
    // The directory itself is the user's choice (a symlink to it is fine); below it nothing is
    // followed.
    if (::mkdir(options.output_dir.c_str(), 0755) != 0 && errno != EEXIST) {
      printLine("cannot create " + options.output_dir + ": " + std::strerror(errno));
      return kFailureStatus;
    }
    output_dir.reset(::open(options.output_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!output_dir) {
      printLine("cannot open " + options.output_dir + ": " + std::strerror(errno));
      return kFailureStatus;
    }
  }
  if (::access(options.cert.c_str(), F_OK) != 0 && errno == ENOENT) {
    printLine("no client certificate at " + options.cert +
              " (give --cert FILE or set PYRUN_CERT; `pyrun-ca client` makes one)");
    return kFailureStatus;
  }
  auto ctx = tls::makeClientContext(tls::ClientConfig{options.cert, options.ca, options.pin});
  if (!ctx) {
    printLine(ctx.error().detail());
    return kFailureStatus;
  }
  std::optional<proto::Terminal> terminal;
  if (options.terminal > 0) {
    // As ssh -t: a terminal is only wanted by a person at one; -tt insists (scripts, tests).
    if (::isatty(0) != 1 && options.terminal < 2) {
      printLine("-t needs a terminal on stdin (give -tt to get one for the program anyway)");
      return kFailureStatus;
    }
    auto size = terminalSize(0);
    if (!size) size = terminalSize(1);
    terminal = proto::Terminal{size.value_or(proto::WindowSize{}), termForJob(std::getenv("TERM"))};
  }
  StdioFlagsGuard flags;
  // Declared before the session and restored before the last line is printed: every way out of
  // the run below (EXIT, ERROR, a lost connection, a signal, an exception) passes here.
  RawMode raw;
  auto stdin_pipe = startStdinReader();
  if (!stdin_pipe) {
    printLine(stdin_pipe.error().detail());
    return kFailureStatus;
  }

  int status = kFailureStatus;
  std::string message;
  {
    asio::io_context io;
    Session session(io, options, std::move(*ctx), std::move(*request), std::move(*upload),
                    std::move(output_dir), std::move(*stdin_pipe), std::move(terminal), &raw);
    asio::co_spawn(io, session.watchSignals(), asio::detached);
    if (options.terminal > 0) asio::co_spawn(io, session.watchWindow(), asio::detached);
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
          try {
            status = co_await session.run();
          } catch (const Stop& stop) {
            status = stop.status;
            message = stop.message;
          } catch (const std::exception& e) {
            status = kFailureStatus;
            message = std::string("internal error: ") + e.what();
          }
          session.closeAll();
        },
        asio::detached);
    io.run();
  }
  raw.restore();
  if (!message.empty()) printLine(message);
  return status;
}

}  // namespace pyrun::client
