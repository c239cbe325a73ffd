// One client connection of pyrund: TLS handshake, READY, RUN, queueing, the job's stdio streamed
// both ways with backpressure, limits enforced, EXIT, close. See docs/PROTOCOL.md and docs/pyrund.md.
#pragma once

#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "proto/messages.h"
#include "sandbox/spawner.h"
#include "server/config.h"
#include "server/scheduler.h"
#include "server/session_rules.h"
#include "server/spawner_link.h"
#include "tls/tls.h"

namespace pyrun::server {

class Session;

// What all sessions of a front share. Held by shared_ptr from every session, so it outlives them
// however the io_context winds down.
struct SessionEnv {
  SessionEnv(ServerConfig config_in, std::shared_ptr<boost::asio::ssl::context> tls_in,
             std::unique_ptr<SpawnerLink> spawner_in)
      : config(std::move(config_in)),
        tls(std::move(tls_in)),
        scheduler(config.max_jobs, config.queue),
        spawner(std::move(spawner_in)) {}

  ServerConfig config;
  std::shared_ptr<boost::asio::ssl::context> tls;
  Scheduler scheduler;
  std::unique_ptr<SpawnerLink> spawner;
  uint64_t last_job_id = 0;
  bool stopping = false;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  // Runs when the last session ends while stopping.
  std::function<void()> on_idle;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<SessionEnv> env, boost::asio::ip::tcp::socket socket);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs the session; it keeps itself alive until its last operation ends.
  void start();
  // The server is stopping: a waiting session gets ERROR kShuttingDown, a running job is killed
  // (verdict server-shutdown) and its EXIT sent.
  void shutdown();

 private:
  using Pipe = boost::asio::posix::stream_descriptor;

  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> reader();
  boost::asio::awaitable<void> writer();
  boost::asio::awaitable<void> outputPump(std::shared_ptr<Pipe> pipe, proto::FrameType type);
  boost::asio::awaitable<void> stdinPump(std::shared_ptr<Pipe> pipe);
  boost::asio::awaitable<void> waitForOutputSpace();
  boost::asio::awaitable<void> waitForStdinSpace();

  void handleRun(RunAccepted run);
  void handleSignal(int signal);
  void handleCancel();
  void onPosition(uint32_t position);
  void startJob();
  void onSpawnerMessage(sandbox::Received& received);
  void onJobStarted(sandbox::Received& received);
  void killJob(proto::Verdict verdict);
  void endBeforeStart(int signal);
  void maybeSendExit();
  void onClientGone(const std::string& why);
  void fail(proto::ErrorCode code, const std::string& message);
  void push(std::vector<uint8_t> frame);
  void finish();
  void wake(boost::asio::steady_timer& timer);

  std::shared_ptr<SessionEnv> env_;
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream_;
  std::string peer_;   // "203.0.113.7:51234" for logs
  std::string client_; // certificate CN for logs

  proto::ServerState state_ = proto::ServerState::kAwaitRun;
  bool finished_ = false;     // the final frame is queued (or the client is gone)
  bool client_gone_ = false;
  bool writer_done_ = false;

  // Frames to the client. Data frames wait for room (kMaxQueuedDataFrames); the few control
  // frames of a session never wait.
  std::deque<std::vector<uint8_t>> out_;
  size_t out_data_frames_ = 0;
  boost::asio::steady_timer writer_wake_;
  boost::asio::steady_timer space_wake_;

  std::optional<RunAccepted> run_;
  Scheduler::Ticket ticket_ = 0;
  uint32_t last_position_ = 0;
  uint64_t job_id_ = 0;
  bool job_started_ = false;
  bool kill_sent_ = false;
  std::optional<sandbox::JobEnded> job_ended_;
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

  boost::asio::steady_timer request_timer_;
  boost::asio::steady_timer wall_timer_;
};

}  // namespace pyrun::server
