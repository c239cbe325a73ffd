// One client connection of pyrund: TLS handshake, READY, RUN, queueing, the job's stdio streamed
// both ways with backpressure, limits enforced, EXIT, close. See docs/PROTOCOL.md and
// docs/pyrund.md.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/stage_times.h"
#include "proto/messages.h"
#include "sandbox/spawner.h"
#include "server/audit.h"
#include "server/config.h"
#include "server/metrics.h"
#include "server/outbox.h"
#include "server/policy_set.h"
#include "server/quotas.h"
#include "server/scheduler.h"
#include "server/session_rules.h"
#include "server/spawner_link.h"
#include "server/terminal_window.h"
#include "server/transfer.h"
#include "tls/stream.h"
#include "tls/tls.h"

namespace pyrun::server {

class Session;

// What all sessions of a front share. Held by shared_ptr from every session, so it outlives them
// however the io_context winds down.
struct SessionEnv {
  SessionEnv(ServerConfig config_in, std::shared_ptr<boost::asio::ssl::context> tls_in,
             std::unique_ptr<SpawnerLink> spawner_in, PolicySet policies_in, AuditLog audit_in)
      : config(std::move(config_in)),
        tls(std::move(tls_in)),
        scheduler(config.max_jobs, config.queue),
        audit(std::move(audit_in)),
        spawner(std::move(spawner_in)),
        policies(std::make_shared<const PolicySet>(std::move(policies_in))),
        gate(config.max_connections, config.max_handshakes, config.max_handshakes_per_source),
        quota(config.max_jobs_per_identity, config.job_starts_per_minute) {}

  ServerConfig config;
  std::shared_ptr<boost::asio::ssl::context> tls;
  Scheduler scheduler;
  // Declared before the spawner link so that it is destroyed after it: the handlers that sessions
  // leave with the link write job_end lines, even from their destructors.
  AuditLog audit;
  std::unique_ptr<SpawnerLink> spawner;
  // Replaced as a whole on SIGHUP; a session keeps the set it started with.
  std::shared_ptr<const PolicySet> policies;
  ConnectionGate gate;
  IdentityQuota quota;
  uint64_t last_job_id = 0;
  // Counters and histograms for /metrics (metrics_listen); kept whether or not it is served.
  Metrics metrics;
  bool stopping = false;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  // Runs when the last session ends while stopping.
  std::function<void()> on_idle;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `gated`: the connection was counted by env->gate (admit), which the session undoes.
  Session(std::shared_ptr<SessionEnv> env, boost::asio::ip::tcp::socket socket, std::string source,
          bool gated);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The connection came through a trusted proxy whose PROXY header named the client: logs and
  // audit lines name `client` ("ip:port") as the peer and `proxy` as the proxy. The TLS handshake
  // must end by `handshake_deadline`, which the header's reading already started. Before start().
  void viaProxy(std::string client, std::string proxy,
                std::chrono::steady_clock::time_point handshake_deadline);
  // Runs the session; it keeps itself alive until its last operation ends.
  void start();
  // The server is stopping: a session without a job (or still queued) gets ERROR kShuttingDown.
  // A job already handed to the spawner keeps running until grace_over, when it is killed
  // (verdict server-shutdown) and its EXIT sent.
  void shutdown(bool grace_over);
  // The client's certificate was revoked while it was connected: its job is killed (verdict
  // cancelled, "certificate revoked"), or the session ends with ERROR kUnauthorized. A job that
  // already ended keeps its own verdict; its EXIT still goes out.
  void revoke();
  // Serial of the client's certificate (empty before the handshake).
  const std::string& serial() const { return identity_.serial; }

 private:
  using Pipe = boost::asio::posix::stream_descriptor;

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> reader();
  boost::asio::awaitable<void> writer();
  // Sends what the writer encrypted, under the write stall watch.
  boost::asio::awaitable<boost::system::error_code> flush();
  boost::asio::awaitable<void> outputPump(std::shared_ptr<Pipe> pipe, proto::FrameType type);
  boost::asio::awaitable<void> stdinPump(std::shared_ptr<Pipe> pipe);
  // TERMINAL and WINDOW frames; false when the session failed (ERROR sent).
  bool handleTerminal(proto::Terminal terminal);
  bool handleWindow(proto::WindowSize size);
  boost::asio::awaitable<void> waitForStdinSpace();

  // What a coroutine of this session does with an exception: log it, end the session.
  void onSessionException(std::exception_ptr e);
  void handleRun(RunAccepted run);
  // FILE and FILE_DATA before RUN (server/transfer.h); false when the session failed.
  bool handleFileBegin(const proto::FileHeader& header);
  bool handleFileData(std::span<const uint8_t> bytes);
  void armRequestTimer(std::chrono::steady_clock::time_point deadline);
  // After the output, before EXIT: the result files the spawner copied (GET).
  boost::asio::awaitable<void> sendResults();
  void handleSignal(int signal);
  void handleCancel();
  void onPosition(uint32_t position);
  void startJob();
  void onSpawnerMessage(sandbox::Received& received);
  void onJobStarted(sandbox::Received& received);
  void killJob(proto::Verdict verdict);
  void endQueued(int signal);
  void maybeEndJob();
  JobEndRecord jobEndRecord() const;
  void armWriteStall();
  void tickWriteStall();
  void onWriteStall();
  // A buffer for a data frame: from the pool of frames already sent, or new.
  std::vector<uint8_t> takeFrameBuffer();
  void recycleFrameBuffer(std::vector<uint8_t> frame);
  void checkPeerWhileParked();
  void watchSocketErrors();
  void onClientGone(const std::string& why, bool logged = false);
  void fail(proto::ErrorCode code, const std::string& message);
  // A control frame for the client (a data frame goes through outbox_ after waiting for room).
  void push(std::vector<uint8_t> frame);
  // The queue ticket is given back (a queued session that ends); the one place that does it.
  void withdrawTicket();
  void finish();
  void wake(boost::asio::steady_timer& timer);
  void handshakeEnded();
  void releaseQuota();
  AuditLine auditLine(std::string_view event) const;

  std::shared_ptr<SessionEnv> env_;
  tls::Stream stream_;
  std::string peer_;    // "203.0.113.7:51234" for logs
  std::string source_;  // "203.0.113.7": what the per-source handshake cap counts
  std::string proxy_;   // "192.0.2.1:40000": the trusted proxy it came through (empty: direct)
  std::chrono::steady_clock::time_point handshake_deadline_;
  std::string client_;  // certificate CN for logs
  tls::PeerIdentity identity_;
  bool gated_ = false;         // counted by env_->gate as a connection
  bool in_handshake_ = false;  // counted by env_->gate as a handshake in progress
  bool quota_held_ = false;    // counted by env_->quota for client_
  // The policy chosen at the handshake and what it allows.
  std::shared_ptr<const PolicySet> policies_;
  std::string policy_name_;
  const policy::Policy* policy_ = nullptr;
  policy::Limits ceiling_;
  std::string exit_detail_;  // replaces the verdict's sentence (e.g. "certificate revoked")
  uint64_t bytes_in_ = 0;    // TLS payload bytes read from and written to the client
  uint64_t bytes_out_ = 0;

  proto::ServerState state_ = proto::ServerState::kAwaitRun;
  bool finished_ = false;  // the final frame is queued (or the client is gone)
  bool client_gone_ = false;
  bool writer_done_ = false;

  // Frames to the client. Data frames wait for room (kMaxQueuedDataFrames); the few control
  // frames of a session never wait.
  Outbox outbox_;
  // A write in progress, and the watch that ends the session when the client accepts none of it
  // for write_stall_timeout_seconds.
  bool writing_ = false;
  boost::asio::steady_timer write_stall_timer_;
  bool stall_watch_running_ = false;
  std::chrono::steady_clock::time_point stall_since_{};  // the last progress seen
  uint64_t stall_sent_ = 0;
  int stall_unsent_ = -2;
  // Data frames' buffers, back from the writer for the pumps to fill again (no allocation and no
  // copy per frame).
  std::vector<std::vector<uint8_t>> frame_pool_;

  std::optional<RunAccepted> run_;
  // Files received before RUN; handed to the spawner with the job.
  std::unique_ptr<Upload> upload_;
  // The last FILE or FILE_DATA: an upload in progress is not an idle client.
  std::chrono::steady_clock::time_point upload_seen_{};
  // GET before RUN, and the result files' progress after the job.
  std::optional<proto::Get> get_;
  // TERMINAL: the job runs on a pseudo-terminal (server/terminal_window.h).
  std::optional<TerminalWindow> terminal_;
  bool results_started_ = false;
  bool results_done_ = false;
  std::string results_note_;  // results left out or not sent, said in EXIT's detail
  std::string script_sha256_;
  Scheduler::Ticket ticket_ = 0;
  std::chrono::steady_clock::time_point run_accepted_at_{};  // for the queue-wait histogram
  uint32_t last_position_ = 0;
  uint64_t job_id_ = 0;
  bool kill_sent_ = false;
  std::optional<sandbox::JobEnded> job_ended_;
  bool job_end_audited_ = false;  // its job_end line is written (exactly one per job)
  proto::Verdict front_verdict_ = proto::Verdict::kOk;
  int sigints_ = 0;
  OutputBudget budget_{0};
  int open_outputs_ = 0;  // stdout/stderr pipes not yet at end of file
  uint64_t stdout_bytes_ = 0;
  uint64_t stderr_bytes_ = 0;

  // Client stdin on its way to the program.
  std::deque<std::vector<uint8_t>> stdin_;
  size_t stdin_bytes_ = 0;
  bool stdin_end_ = false;
  bool stdin_dead_ = false;  // the program closed its stdin or ended: discard
  boost::asio::steady_timer stdin_wake_;
  boost::asio::steady_timer stdin_space_wake_;
  // The reader is parked on a full stdin buffer and does not read the connection: a client that
  // vanished meanwhile is found by probes and by watching the socket for errors instead.
  bool reader_parked_ = false;
  bool error_watch_started_ = false;
  boost::asio::steady_timer peer_check_timer_;

  boost::asio::steady_timer request_timer_;
  boost::asio::steady_timer wall_timer_;

  // When the job reached each stage (debug log; TIMINGS when RUN asked for it).
  StageTimes times_;
  bool exit_pushed_ = false;  // EXIT is queued (the writer then calls onExitWritten once)
  bool exit_written_ = false;
  // After the EXIT frame is written: stamps it, logs the breakdown, queues TIMINGS if asked.
  void onExitWritten();
};

}  // namespace pyrun::server
