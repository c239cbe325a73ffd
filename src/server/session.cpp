// One client connection of pyrund. Single-threaded: every handler runs on the io_context's one
// thread, so session state needs no locks; coroutines of a session meet through plain members and
// wake each other with timers used as events (cancel() wakes the waiter).
#include "server/session.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <exception>

#include "common/log.h"
#include "server/handshake_refusal.h"
#include "server/job_timings.h"
#include "server/session_internal.h"

namespace pyrun::server {

namespace asio = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;
using boost::system::error_code;
using namespace session_detail;

namespace {

// A job whose session ended before the spawner reported the job's end. It lives in the handler
// the session leaves with the spawner link, and writes the job's one job_end line: when the end is
// reported, or, if it never is (pyrund stopped at once, or the spawner failed), when the link
// drops the handler.
class OrphanedJob {
 public:
  OrphanedJob(JobEndRecord record, AuditLog& audit, SpawnerLink& link, bool stopping,
              std::string jobs_dir)
      : record_(std::move(record)),
        audit_(audit),
        link_(link),
        stopping_(stopping),
        jobs_dir_(std::move(jobs_dir)) {}
  OrphanedJob(const OrphanedJob&) = delete;
  OrphanedJob& operator=(const OrphanedJob&) = delete;
  ~OrphanedJob() {
    if (written_) return;
    proto::Verdict verdict = record_.front_verdict;
    if (verdict == proto::Verdict::kOk) {
      verdict = stopping_ ? proto::Verdict::kServerShutdown : proto::Verdict::kInternalError;
    }
    audit_.write(jobUnreportedLine(record_, verdict,
                                   "pyrund stopped before the spawner reported the job's end"));
  }

  void onMessage(sandbox::Received& received) {
    if (std::holds_alternative<sandbox::JobStarted>(received.message)) {
      (void)link_.send(sandbox::KillJob{record_.job_id});  // its descriptors close with `received`
    } else if (auto* ended = std::get_if<sandbox::JobEnded>(&received.message)) {
      written_ = true;
      audit_.write(jobEndLine(record_, *ended));
      // Result files nobody will fetch: removed with the object.
      if (!ended->results.empty()) ResultFiles remove(jobs_dir_, ended->results);
    } else if (auto* failed = std::get_if<sandbox::JobFailed>(&received.message)) {
      written_ = true;
      audit_.write(jobFailedLine(record_, *failed));
    }
  }

 private:
  JobEndRecord record_;
  AuditLog& audit_;
  SpawnerLink& link_;
  bool stopping_;
  std::string jobs_dir_;
  bool written_ = false;
};

}  // namespace

Session::Session(std::shared_ptr<SessionEnv> env, asio::ip::tcp::socket socket, std::string source,
                 bool gated)
    : env_(std::move(env)),
      stream_(std::move(socket), *env_->tls),
      outbox_(stream_.get_executor(), kMaxQueuedDataFrames),
      write_stall_timer_(stream_.get_executor()),
      stdin_wake_(stream_.get_executor(), asio::steady_timer::time_point::max()),
      stdin_space_wake_(stream_.get_executor(), asio::steady_timer::time_point::max()),
      peer_check_timer_(stream_.get_executor()),
      request_timer_(stream_.get_executor()),
      wall_timer_(stream_.get_executor()) {
  times_.stamp(JobStage::kAccept);
  peer_ = endpointText(stream_.socket());
  handshake_deadline_ = std::chrono::steady_clock::now() +
                        std::chrono::seconds(env_->config.handshake_timeout_seconds);
  source_ = std::move(source);
  gated_ = gated;
  in_handshake_ = gated;
}

Session::~Session() {
  handshakeEnded();
  if (gated_) env_->gate.connectionClosed();
  releaseQuota();
  withdrawTicket();
  if (job_id_ != 0 && !job_ended_) {
    // The job outlives its session (being killed, or still being spawned): it must not outlive
    // its client, and its job_end line is still due.
    if (!kill_sent_) (void)env_->spawner->send(sandbox::KillJob{job_id_});
    auto orphan = std::make_shared<OrphanedJob>(jobEndRecord(), env_->audit, *env_->spawner,
                                                env_->stopping, env_->config.jobs_dir);
    env_->spawner->subscribe(
        job_id_, [orphan](sandbox::Received& received) { orphan->onMessage(received); });
  } else if (job_ended_ && !job_end_audited_) {
    env_->audit.write(jobEndLine(jobEndRecord(), *job_ended_));
  }
  env_->sessions.erase(this);
  if (env_->stopping && env_->sessions.empty() && env_->on_idle) env_->on_idle();
}

void Session::viaProxy(std::string client, std::string proxy,
                       std::chrono::steady_clock::time_point handshake_deadline) {
  peer_ = std::move(client);
  proxy_ = std::move(proxy);
  handshake_deadline_ = handshake_deadline;
}

void Session::start() {
  env_->sessions.emplace(this, weak_from_this());
  auto self = shared_from_this();
  asio::co_spawn(stream_.get_executor(), run(),
                 [self](std::exception_ptr e) { self->onSessionException(e); });
}

void Session::onSessionException(std::exception_ptr e) {
  if (!e) return;
  // Coroutine exceptions end this session only; nothing escapes io_context::run().
  PYRUN_LOG(kError) << "session with " << peer_ << " failed: " << exceptionText(e);
  onClientGone("internal error");
  error_code ignored;
  stream_.socket().close(ignored);
}

void Session::wake(asio::steady_timer& timer) { timer.cancel(); }

void Session::handshakeEnded() {
  if (!in_handshake_) return;
  in_handshake_ = false;
  env_->gate.handshakeEnded(source_);
}

void Session::withdrawTicket() {
  if (ticket_ == 0) return;
  env_->scheduler.withdraw(ticket_);
  ticket_ = 0;
}

void Session::releaseQuota() {
  if (!quota_held_) return;
  quota_held_ = false;
  env_->quota.release(client_);
}

AuditLine Session::auditLine(std::string_view event) const {
  AuditLine line(event);
  line.str("peer", peer_);
  if (!proxy_.empty()) line.str("proxy", proxy_);
  if (!identity_.common_name.empty()) {
    line.str("identity", identity_.common_name)
        .str("serial", identity_.serial)
        .str("fingerprint", identity_.fingerprint_sha256);
  }
  return line;
}

JobEndRecord Session::jobEndRecord() const {
  JobEndRecord r;
  r.peer = peer_;
  r.proxy = proxy_;
  r.identity = identity_.common_name;
  r.serial = identity_.serial;
  r.fingerprint = identity_.fingerprint_sha256;
  r.job_id = job_id_;
  if (run_) {
    r.script = run_->request.script_name;
    r.limits = run_->limits;
  }
  r.script_sha256 = script_sha256_;
  r.policy = policy_name_;
  r.front_verdict = front_verdict_;
  r.detail = exit_detail_;
  r.stdout_bytes = stdout_bytes_;
  r.stderr_bytes = stderr_bytes_;
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  return r;
}

asio::awaitable<void> Session::run() {
  auto self = shared_from_this();
  asio::steady_timer deadline(stream_.get_executor());
  deadline.expires_at(handshake_deadline_);
  auto outcome =
      co_await (stream_.handshake(tls::Stream::Role::kServer) || deadline.async_wait(kAwait));
  handshakeEnded();
  auto refuse = [&](const std::string& why, Refusal reason) {
    env_->metrics.refused(reason);
    PYRUN_LOG(kInfo) << "connection from " << peer_ << " failed: " << why;
    env_->audit.write(auditLine("auth_fail").str("reason", why));
    error_code ignored;
    stream_.socket().close(ignored);
  };
  if (outcome.index() == 1) {
    refuse(
        "no TLS handshake within " + std::to_string(env_->config.handshake_timeout_seconds) + " s",
        Refusal::kTimeout);
    co_return;
  }
  if (auto ec = std::get<0>(outcome); ec) {
    refuse(tls::handshakeError(stream_.native_handle(), ec).detail(),
           handshakeRefusal(stream_.native_handle(), ec));
    co_return;
  }
  times_.stamp(JobStage::kHandshake);
  auto identity = tls::peerIdentity(stream_.native_handle());
  if (!identity) {
    refuse(identity.error().detail(), Refusal::kIdentity);
    co_return;
  }
  identity_ = *identity;
  client_ = identity->common_name;
  // The policy set of this moment stays with the session: a reload affects new sessions only.
  policies_ = env_->policies;
  policy_name_ = policies_->policyNameFor(client_);
  if (auto it = policies_->policies.find(policy_name_); it != policies_->policies.end()) {
    policy_ = &it->second;
    ceiling_ = policy_->limits;
  }
  PYRUN_LOG(kDebug) << "connection from " << peer_ << " as \"" << client_ << "\", policy \""
                    << policy_name_ << "\"";
  env_->audit.write(auditLine("connect").str("policy", policy_name_));

  auto on_error = [self](std::exception_ptr e) { self->onSessionException(e); };
  asio::co_spawn(stream_.get_executor(), writer(), on_error);
  asio::co_spawn(stream_.get_executor(), reader(), on_error);

  if (env_->stopping) {
    fail(proto::ErrorCode::kShuttingDown, "the server is shutting down");
    co_return;
  }
  if (policy_ == nullptr) {
    fail(proto::ErrorCode::kUnauthorized, "no policy for client \"" + client_ +
                                              "\": the server's identities: has no entry for it "
                                              "and no default");
    co_return;
  }
  push(proto::encode(
      proto::Ready{proto::kProtocolVersion, proto::kMaxFramePayload, "pyrund " PYRUN_VERSION}));
  armRequestTimer(std::chrono::steady_clock::now() +
                  std::chrono::seconds(env_->config.idle_timeout_seconds));
}

asio::awaitable<void> Session::reader() {
  auto self = shared_from_this();
  proto::FrameReader frames;
  // Small until data comes in bulk: most connections wait idle for their RUN, and the TLS layer
  // holds the record anyway (a small buffer only copies it out in more steps).
  std::vector<uint8_t> buffer(kIdleReadBuffer);
  for (;;) {
    auto [ec, n] = co_await stream_.readSome(buffer);
    if (finished_) co_return;
    bytes_in_ += n;
    env_->metrics.bytesIn(n);
    if (ec) {
      onClientGone(ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
                       ? "disconnected"
                       : ec.message());
      co_return;
    }
    if (auto fed = frames.feed(std::span<const uint8_t>(buffer.data(), n)); !fed) {
      fail(proto::ErrorCode::kBadFrame, fed.error().detail());
      co_return;
    }
    // A full buffer means more is waiting: a RUN with files, or stdin.
    if (n == buffer.size() && buffer.size() < kJobReadBuffer) buffer.resize(kJobReadBuffer);
    while (auto frame = frames.next()) {
      if (finished_) co_return;
      ClientEvent event = interpretFrame(state_, std::move(*frame), ceiling_);
      if (auto* error = std::get_if<proto::ErrorMessage>(&event)) {
        fail(error->code, error->message);
        co_return;
      }
      if (auto* run = std::get_if<RunAccepted>(&event)) {
        handleRun(std::move(*run));
      } else if (auto* file = std::get_if<FileBegin>(&event)) {
        if (!handleFileBegin(file->header)) co_return;
      } else if (auto* bytes = std::get_if<FileData>(&event)) {
        if (!handleFileData(bytes->bytes)) co_return;
      } else if (auto* get = std::get_if<GetRequest>(&event)) {
        if (get_) {
          fail(proto::ErrorCode::kBadRequest, "GET: given twice");
          co_return;
        }
        get_ = std::move(get->get);
      } else if (auto* terminal = std::get_if<TerminalRequest>(&event)) {
        if (!handleTerminal(std::move(terminal->terminal))) co_return;
      } else if (auto* window = std::get_if<WindowChange>(&event)) {
        if (!handleWindow(window->size)) co_return;
      } else if (stdin_end_ && (std::holds_alternative<StdinData>(event) ||
                                std::holds_alternative<StdinEnd>(event))) {
        // docs/PROTOCOL.md, "States": nothing may follow the end of stdin.
        fail(proto::ErrorCode::kUnexpectedFrame,
             std::string(std::holds_alternative<StdinData>(event) ? "STDIN" : "STDIN_END") +
                 " after STDIN_END is not allowed");
        co_return;
      } else if (auto* data = std::get_if<StdinData>(&event)) {
        // Waiting here stops reading the connection: a client sending more stdin than the
        // program takes is slowed by TCP instead of filling our memory.
        co_await waitForStdinSpace();
        if (finished_) co_return;
        if (!stdin_dead_ && !data->bytes.empty()) {
          // Each frame held costs its bookkeeping too: a client sending one byte per frame
          // must not hold many times the buffer's size in memory.
          stdin_bytes_ += data->bytes.size() + kStdinFrameCost;
          stdin_.push_back(std::move(data->bytes));
          wake(stdin_wake_);
        }
      } else if (std::holds_alternative<StdinEnd>(event)) {
        stdin_end_ = true;
        wake(stdin_wake_);
      } else if (auto* sig = std::get_if<SignalRequest>(&event)) {
        handleSignal(sig->signal);
      } else if (std::holds_alternative<CancelRequest>(event)) {
        handleCancel();
      }
    }
  }
}

asio::awaitable<void> Session::writer() {
  auto self = shared_from_this();
  for (;;) {
    if (!co_await outbox_.waitForFrame() || client_gone_) break;
    // Every frame queued now, up to kWriteBatch bytes, is encrypted into one buffer and goes out
    // with one send: a handful of system calls for several frames instead of several per frame.
    size_t batch = 0;
    error_code ec;
    while (!outbox_.empty() && (batch == 0 || batch + outbox_.frontSize() <= kWriteBatch) && !ec) {
      const bool data = outbox_.frontIsData();
      std::vector<uint8_t> frame = outbox_.pop();
      ec = stream_.encrypt(frame);
      batch += frame.size();
      bytes_out_ += frame.size();
      env_->metrics.bytesOut(frame.size());
      if (data) recycleFrameBuffer(std::move(frame));
    }
    if (!ec) ec = co_await flush();
    if (ec) {
      onClientGone(ec.message());
      break;
    }
    // EXIT is the last frame a job's session queues (TIMINGS, queued by onExitWritten, aside):
    // once it was pushed and everything queued went out, it has been written.
    if (exit_pushed_ && !exit_written_ && outbox_.empty()) {
      exit_written_ = true;
      onExitWritten();
    }
  }
  writer_done_ = true;
  outbox_.writerDone();
  if (!client_gone_) {
    // The reader still has a read pending; an SSL stream allows only one reader, so stop it
    // before the shutdown exchange reads the peer's close_notify.
    error_code ignored;
    stream_.socket().cancel(ignored);
    asio::steady_timer deadline(stream_.get_executor());
    deadline.expires_after(kShutdownTimeout);
    co_await (stream_.shutdown() || deadline.async_wait(kAwait));
  }
  error_code ignored;
  stream_.socket().close(ignored);
}

asio::awaitable<error_code> Session::flush() {
  writing_ = true;
  armWriteStall();
  error_code ec = co_await stream_.flush();
  writing_ = false;
  co_return ec;
}

std::vector<uint8_t> Session::takeFrameBuffer() {
  if (frame_pool_.empty()) return {};
  std::vector<uint8_t> frame = std::move(frame_pool_.back());
  frame_pool_.pop_back();
  return frame;
}

void Session::recycleFrameBuffer(std::vector<uint8_t> frame) {
  // Enough for every frame in flight; the rest is freed.
  if (frame_pool_.size() < kMaxQueuedDataFrames + 2 * kFramesPerRead &&
      frame.capacity() >= kFrameBufferSize) {
    frame_pool_.push_back(std::move(frame));
  }
}

void Session::push(std::vector<uint8_t> frame) {
  outbox_.push(std::move(frame), Outbox::Kind::kControl);
}

bool Session::handleFileBegin(const proto::FileHeader& header) {
  upload_seen_ = std::chrono::steady_clock::now();
  if (!upload_) {
    upload_ = std::make_unique<Upload>(
        env_->config.jobs_dir,
        UploadQuota{policy_->limits.workdir_bytes, policy_->limits.workdir_files, policy_name_});
  }
  if (auto r = upload_->begin(header); !r) {
    // The partial upload goes at once, not when the session object does.
    upload_.reset();
    fail(r.error().code() == Errc::kLimit ? proto::ErrorCode::kLimitTooHigh
         : r.error().code() == Errc::kIo  ? proto::ErrorCode::kInternal
                                          : proto::ErrorCode::kBadRequest,
         r.error().code() == Errc::kIo ? "the server could not stage the upload"
                                       : "FILE: " + r.error().detail());
    if (r.error().code() == Errc::kIo) {
      PYRUN_LOG(kError) << "session " << peer_ << ": " << r.error().detail();
    }
    return false;
  }
  state_ = upload_->owed() ? proto::ServerState::kUploading : proto::ServerState::kAwaitRun;
  return true;
}

bool Session::handleFileData(std::span<const uint8_t> bytes) {
  upload_seen_ = std::chrono::steady_clock::now();
  if (auto r = upload_->data(bytes); !r) {
    upload_.reset();
    const bool io = r.error().code() == Errc::kIo;
    if (io) {
      PYRUN_LOG(kError) << "session " << peer_ << ": " << r.error().detail();
    }
    fail(io ? proto::ErrorCode::kInternal : proto::ErrorCode::kBadRequest,
         io ? "the server could not stage the upload" : "FILE_DATA: " + r.error().detail());
    return false;
  }
  if (!upload_->owed()) state_ = proto::ServerState::kAwaitRun;
  return true;
}

bool Session::handleTerminal(proto::Terminal terminal) {
  if (terminal_) {
    fail(proto::ErrorCode::kBadRequest, "TERMINAL: given twice");
    return false;
  }
  if (auto refused = refuseTerminal(*policy_, policy_name_)) {
    fail(refused->code, refused->message);
    return false;
  }
  terminal_.emplace(std::move(terminal));
  return true;
}

bool Session::handleWindow(proto::WindowSize size) {
  if (!terminal_) {
    fail(proto::ErrorCode::kUnexpectedFrame, "WINDOW without a TERMINAL");
    return false;
  }
  terminal_->resize(size);
  return true;
}

void Session::handleRun(RunAccepted run) {
  times_.stamp(JobStage::kRunReceived);
  request_timer_.cancel();
  if (env_->stopping) {
    fail(proto::ErrorCode::kShuttingDown, "the server is shutting down");
    return;
  }
  if (upload_) {
    if (auto r = upload_->checkRun(run.request); !r) {
      upload_.reset();
      fail(r.error().code() == Errc::kLimit ? proto::ErrorCode::kLimitTooHigh
                                            : proto::ErrorCode::kBadRequest,
           "RUN: " + r.error().detail());
      return;
    }
  }
  if (auto allowed = env_->quota.admit(client_, IdentityQuota::Clock::now()); !allowed) {
    fail(proto::ErrorCode::kUnauthorized, allowed.error().detail());
    return;
  }
  quota_held_ = true;
  run_ = std::move(run);
  script_sha256_ = sha256Hex(run_->request.script);
  budget_ = OutputBudget(run_->limits.output_bytes);
  run_accepted_at_ = std::chrono::steady_clock::now();
  auto admitted = env_->scheduler.admit([weak = weak_from_this()](uint32_t position) {
    if (auto s = weak.lock()) s->onPosition(position);
  });
  switch (admitted.admission) {
    case Scheduler::Admission::kBusy:
      fail(proto::ErrorCode::kBusy, env_->scheduler.busyMessage());
      return;
    case Scheduler::Admission::kRunning:
      startJob();
      return;
    case Scheduler::Admission::kQueued:
      ticket_ = admitted.ticket;
      state_ = proto::ServerState::kQueued;
      last_position_ = admitted.position;
      PYRUN_LOG(kDebug) << "session " << peer_ << " queued at position " << admitted.position;
      push(proto::encode(proto::Queued{admitted.position}));
      return;
  }
}

void Session::onPosition(uint32_t position) {
  if (position == 0) {
    ticket_ = 0;
    if (finished_) {
      env_->scheduler.release();  // the slot came too late for this session: pass it on
      return;
    }
    startJob();
    return;
  }
  if (position != last_position_ && !finished_) {
    last_position_ = position;
    push(proto::encode(proto::Queued{position}));
  }
}

void Session::startJob() {
  // The slot is ours now; from here on only the spawner's JobEnded/JobFailed frees it.
  state_ = proto::ServerState::kQueued;
  job_id_ = ++env_->last_job_id;
  env_->spawner->subscribe(job_id_, [weak = weak_from_this()](sandbox::Received& received) {
    if (auto s = weak.lock()) s->onSpawnerMessage(received);
  });
  sandbox::JobSpec spec = makeJobSpec(job_id_, *run_, ceiling_, policy_name_, policy_->interpreter);
  // The spawner moves the staged upload into place (or removes it): it is no longer ours.
  if (upload_) spec.upload = upload_->release();
  if (get_) {
    spec.results = get_->patterns;
    spec.results_max_files = get_->max_files;
    spec.results_max_bytes = get_->max_bytes;
  }
  if (terminal_) spec.terminal = terminal_->forJob();
  upload_.reset();
  times_.stamp(JobStage::kSpawnRequest);
  auto sent = env_->spawner->send(sandbox::SpawnJob{std::move(spec)});
  if (!sent) {
    PYRUN_LOG(kError) << "job " << job_id_
                      << ": cannot reach the spawner: " << sent.error().detail();
    env_->spawner->unsubscribe(job_id_);
    env_->scheduler.release();
    job_id_ = 0;
    fail(proto::ErrorCode::kInternal, "the server could not start the job");
    return;
  }
  env_->metrics.jobStarted();
  env_->metrics.queueWaited(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - run_accepted_at_).count());
  PYRUN_LOG(kInfo) << "job " << job_id_ << " for \"" << client_ << "\" (" << peer_ << "), policy "
                   << policy_name_ << ": " << run_->request.script_name << " with "
                   << run_->request.args.size() << " args";
  env_->audit.write(auditLine("job_start")
                        .num("job_id", job_id_)
                        .str("script", run_->request.script_name)
                        .str("script_sha256", script_sha256_)
                        .num("args", run_->request.args.size())
                        .str("policy", policy_name_)
                        .num("cpu_seconds", run_->limits.cpu_seconds)
                        .num("wall_seconds", run_->limits.wall_seconds)
                        .num("memory_bytes", run_->limits.memory_bytes)
                        .num("output_bytes", run_->limits.output_bytes));
}

void Session::onSpawnerMessage(sandbox::Received& received) {
  if (std::holds_alternative<sandbox::JobStarted>(received.message)) {
    onJobStarted(received);
  } else if (auto* failed = std::get_if<sandbox::JobFailed>(&received.message)) {
    PYRUN_LOG(kError) << "job " << job_id_ << " could not start: " << failed->stage << ": "
                      << failed->detail;
    job_ended_ = sandbox::JobEnded{};
    job_ended_->job_id = job_id_;
    job_ended_->cause = sandbox::EndCause::kKilled;
    releaseQuota();
    if (!job_end_audited_) {
      job_end_audited_ = true;
      env_->audit.write(jobFailedLine(jobEndRecord(), *failed));
      env_->metrics.jobEnded(proto::Verdict::kInternalError, 0);
    }
    fail(proto::ErrorCode::kInternal, "the server could not start the job: " + failed->detail);
  } else if (auto* ended = std::get_if<sandbox::JobEnded>(&received.message)) {
    job_ended_ = *ended;
    times_.merge(ended->times);
    releaseQuota();
    wall_timer_.cancel();
    stdin_dead_ = true;
    stdin_.clear();
    stdin_bytes_ = 0;
    wake(stdin_wake_);
    wake(stdin_space_wake_);
    maybeEndJob();
  }
}

void Session::handleSignal(int signal) {
  if (state_ != proto::ServerState::kRunning) {
    // Queued (waiting for a slot, or being started): the job ends before it ever starts.
    endQueued(signal);
    return;
  }
  if (signal == SIGINT && ++sigints_ >= 2) {
    // The first Ctrl-C is the program's to handle (KeyboardInterrupt); the second one means "stop".
    killJob(proto::Verdict::kCancelled);
    return;
  }
  if (job_ended_) return;
  if (auto r = env_->spawner->send(sandbox::SignalJob{job_id_, signal}); !r) {
    PYRUN_LOG(kError) << "job " << job_id_ << ": cannot signal it: " << r.error().detail();
  }
}

void Session::handleCancel() {
  if (state_ != proto::ServerState::kRunning) {
    endQueued(SIGKILL);
    return;
  }
  killJob(proto::Verdict::kCancelled);
}

void Session::endQueued(int signal) {
  withdrawTicket();
  // Already handed to the spawner: killed. STARTED never goes out, and the job still gets its
  // job_end line when the spawner reports the end (maybeEndJob, or the handler ~Session leaves).
  if (job_id_ != 0) killJob(proto::Verdict::kCancelled);
  proto::Exit exit;
  exit.kind = proto::ExitKind::kSignaled;
  exit.code = signal;
  exit.verdict = proto::Verdict::kCancelled;
  exit.detail = "cancelled before the job started";
  exit_pushed_ = true;
  push(proto::encode(exit));
  finish();
}

void Session::killJob(proto::Verdict verdict) {
  if (job_id_ == 0) return;
  if (job_ended_) {
    // Nothing left to kill, and the ending is the job's own: a cancel, a revocation or a
    // disconnect that comes after it does not rewrite it. Only the output cap can still cut
    // output draining from the pipes after the end, and the verdict must say so.
    if (verdict == proto::Verdict::kOutputLimit && front_verdict_ == proto::Verdict::kOk) {
      front_verdict_ = verdict;
    }
    return;
  }
  if (front_verdict_ == proto::Verdict::kOk) front_verdict_ = verdict;
  if (kill_sent_) return;
  kill_sent_ = true;
  PYRUN_LOG(kDebug) << "job " << job_id_ << ": killing it (" << proto::verdictName(verdict) << ")";
  if (auto r = env_->spawner->send(sandbox::KillJob{job_id_}); !r) {
    PYRUN_LOG(kError) << "job " << job_id_ << ": cannot kill it: " << r.error().detail();
  }
}

void Session::maybeEndJob() {
  // The end needs the spawner's report and both output pipes at end of file: only then are the
  // byte counts final and a cut by the output cap known.
  if (!job_ended_ || open_outputs_ > 0 || job_end_audited_) return;
  if (!job_ended_->results_detail.empty()) {
    PYRUN_LOG(kInfo) << "job " << job_id_ << ": results: " << job_ended_->results_detail;
    // Nothing is lost silently: EXIT's detail tells the client what did not come back.
    results_note_ = std::move(job_ended_->results_detail);
    job_ended_->results_detail.clear();
  }
  if (!job_ended_->results.empty() && !results_done_) {
    // The result files go after the last output and before EXIT (docs/PROTOCOL.md, RESULT).
    if (!results_started_) {
      results_started_ = true;
      auto self = shared_from_this();
      asio::co_spawn(stream_.get_executor(), sendResults(), [self](std::exception_ptr e) {
        if (!e) return;
        PYRUN_LOG(kError) << "job " << self->job_id_ << ": results: " << exceptionText(e);
        self->results_note_ = "sending them failed";
        self->results_done_ = true;
        self->maybeEndJob();
      });
    }
    return;
  }
  job_end_audited_ = true;
  const sandbox::JobEnded& end = *job_ended_;
  const JobEndRecord record = jobEndRecord();
  const Ending ending = endingOf(record, end);
  PYRUN_LOG(kInfo) << "job " << job_id_ << " ended: " << (end.signaled ? "signal " : "exit ")
                   << end.code << ", " << proto::verdictName(ending.verdict)
                   << (ending.detail.empty() ? "" : " (" + ending.detail + ")") << ", cpu "
                   << end.cpu_us / 1000 << " ms, wall " << end.wall_us / 1000 << " ms, output "
                   << stdout_bytes_ + stderr_bytes_ << " bytes";
  // bytes_out does not count the EXIT frame: it is written after this line.
  env_->audit.write(jobEndLine(record, end));
  env_->metrics.jobEnded(ending.verdict, static_cast<double>(end.wall_us) / 1e6);
  if (finished_) return;  // the client is gone or already got its last frame
  proto::Exit exit;
  exit.kind = end.signaled ? proto::ExitKind::kSignaled : proto::ExitKind::kExited;
  exit.code = end.code;
  exit.verdict = ending.verdict;
  exit.cpu_us = end.cpu_us;
  exit.wall_us = end.wall_us;
  exit.peak_memory_bytes = end.peak_memory_bytes;
  exit.stdout_bytes = stdout_bytes_;
  exit.stderr_bytes = stderr_bytes_;
  exit.output_truncated = budget_.truncated() ? 1 : 0;
  exit.detail = ending.detail;
  if (!results_note_.empty()) {
    // Only a client that sent GET gets results, so only such a client sees a detail beside
    // verdict ok (docs/PROTOCOL.md 4.4).
    exit.detail +=
        (exit.detail.empty() ? "" : "; ") + std::string("results incomplete: ") + results_note_;
    if (exit.detail.size() > proto::kMaxText) exit.detail.resize(proto::kMaxText);
  }
  exit_pushed_ = true;
  push(proto::encode(exit));
  finish();
}

void Session::onExitWritten() {
  times_.stamp(JobStage::kExitSent);
  if (!run_) return;
  proto::Timings timings = timingsOf(times_);
  if (job_id_ != 0) {
    PYRUN_LOG(kDebug) << "job " << job_id_ << " stages: " << describeTimings(timings);
  }
  // Its own frame after EXIT, so that it can hold EXIT's own write (docs/PROTOCOL.md, TIMINGS).
  if (run_->request.want_timings && !client_gone_)
    outbox_.push(proto::encode(timings), Outbox::Kind::kControl);
}

void Session::onClientGone(const std::string& why, bool logged) {
  if (client_gone_) return;
  bool was_finished = finished_;
  client_gone_ = true;
  if (!was_finished && !logged) {
    PYRUN_LOG(kInfo) << "client " << peer_ << " went away (" << why << ")"
                     << (job_id_ != 0 && !job_ended_ ? "; killing job " + std::to_string(job_id_)
                                                     : "");
  }
  withdrawTicket();
  killJob(proto::Verdict::kCancelled);
  outbox_.close();
  finish();
}

void Session::fail(proto::ErrorCode code, const std::string& message) {
  if (finished_) return;
  PYRUN_LOG(kInfo) << "session " << peer_ << ": " << message;
  withdrawTicket();
  // The ERROR's message says what the client did wrong; the job_end line keeps it too.
  if (job_id_ != 0 && !job_ended_ && front_verdict_ == proto::Verdict::kOk &&
      verdictForError(code) == proto::Verdict::kProtocolError) {
    exit_detail_ = "the client broke the protocol: " + message;
  }
  killJob(verdictForError(code));
  push(proto::encode(proto::ErrorMessage{code, message}));
  finish();
}

void Session::finish() {
  finished_ = true;
  state_ = proto::ServerState::kDone;
  request_timer_.cancel();
  peer_check_timer_.cancel();
  outbox_.end();
  stdin_dead_ = true;
  wake(stdin_wake_);
  wake(stdin_space_wake_);
}

void Session::shutdown(bool grace_over) {
  if (finished_) return;
  if (job_id_ != 0) {
    // The spawner has the job: it may finish within the grace period.
    if (grace_over) killJob(proto::Verdict::kServerShutdown);
    return;
  }
  fail(proto::ErrorCode::kShuttingDown, "the server is shutting down");
}

void Session::revoke() {
  if (finished_) return;
  if (job_id_ != 0 && job_ended_) {
    // The job ended by itself before the revocation: its own verdict stands, and its EXIT (once
    // the last output is drained) ends the session.
    PYRUN_LOG(kWarning) << "certificate of \"" << client_ << "\" (serial " << identity_.serial
                        << ") is revoked; its job " << job_id_ << " from " << peer_
                        << " already ended";
    return;
  }
  PYRUN_LOG(kWarning) << "certificate of \"" << client_ << "\" (serial " << identity_.serial
                      << ") is revoked; ending its session from " << peer_
                      << (job_id_ != 0 ? " and killing job " + std::to_string(job_id_) : "");
  if (job_id_ != 0) {
    if (front_verdict_ == proto::Verdict::kOk) exit_detail_ = "certificate revoked";
    killJob(proto::Verdict::kCancelled);
    return;
  }
  fail(proto::ErrorCode::kUnauthorized, "certificate revoked");
}

}  // namespace pyrun::server
