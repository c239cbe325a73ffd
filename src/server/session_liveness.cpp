// Liveness checks of a session: the idle timeout before RUN, the write stall watch, and the probes
// of a client whose connection is not being read (the reader parked on a full stdin buffer).
#include "common/log.h"
#include "server/session.h"
#include "server/session_internal.h"

namespace pyrun::server {

namespace asio = boost::asio;
using boost::system::error_code;
using namespace session_detail;

void Session::armRequestTimer(std::chrono::steady_clock::time_point deadline) {
  request_timer_.expires_at(deadline);
  request_timer_.async_wait([weak = weak_from_this()](error_code ec) {
    auto s = weak.lock();
    if (ec || !s || s->finished_) return;
    if (s->state_ != proto::ServerState::kAwaitRun && s->state_ != proto::ServerState::kUploading) {
      return;
    }
    const auto idle = std::chrono::seconds(s->env_->config.idle_timeout_seconds);
    if (auto again = s->upload_seen_ + idle; again > std::chrono::steady_clock::now()) {
      s->armRequestTimer(again);
      return;
    }
    s->fail(proto::ErrorCode::kTimeout,
            "no RUN request within " + std::to_string(s->env_->config.idle_timeout_seconds) + " s");
  });
}

void Session::armWriteStall() {
  // Called as each batch starts to go out; one timer per session ticks once a second while a
  // write is pending, instead of a check per record.
  stall_since_ = std::chrono::steady_clock::now();
  stall_sent_ = stream_.bytesSent();
  stall_unsent_ = -2;  // not looked at yet
  if (stall_watch_running_) return;
  stall_watch_running_ = true;
  tickWriteStall();
}

void Session::tickWriteStall() {
  write_stall_timer_.expires_after(kWriteStallTick);
  write_stall_timer_.async_wait([weak = weak_from_this()](error_code ec) {
    auto s = weak.lock();
    if (!s) return;
    if (ec || !s->writing_ || s->client_gone_) {
      s->stall_watch_running_ = false;
      return;
    }
    s->onWriteStall();
  });
}

void Session::onWriteStall() {
  const auto now = std::chrono::steady_clock::now();
  // Progress: the socket took bytes, or the kernel's queue for the peer moved (the client
  // acknowledged some of what was already sent). The queue's first look only sets the baseline:
  // no verdict without a second look that found it unchanged.
  const int unsent = unsentBytes(stream_.socket().native_handle());
  const bool first_look = stall_unsent_ == -2;
  const bool sent_more = stream_.bytesSent() != stall_sent_;
  const bool queue_moved = !first_look && unsent >= 0 && unsent != stall_unsent_;
  if (sent_more || queue_moved) stall_since_ = now;
  stall_sent_ = stream_.bytesSent();
  stall_unsent_ = unsent;
  if (first_look || sent_more || queue_moved ||
      now - stall_since_ < std::chrono::seconds(env_->config.write_stall_timeout_seconds)) {
    tickWriteStall();
    return;
  }
  stall_watch_running_ = false;
  // The client takes nothing: without this it would hold its session, its connection slot and
  // (through the full pipes) its job for ever.
  const bool job_running = job_id_ != 0 && !job_ended_;
  const std::string why =
      "read nothing for " + std::to_string(env_->config.write_stall_timeout_seconds) + " s";
  PYRUN_LOG(kInfo) << "client " << peer_ << " " << why << "; closing the connection"
                   << (job_running ? " and killing job " + std::to_string(job_id_) : "");
  // The sentence goes with the verdict this ending gives (cancelled), not with an earlier one.
  if (job_running && front_verdict_ == proto::Verdict::kOk) exit_detail_ = "the client " + why;
  onClientGone(why, true);
  // Fails the pending write: the writer then ends without the shutdown exchange.
  error_code ignored;
  stream_.socket().close(ignored);
}

void Session::checkPeerWhileParked() {
  peer_check_timer_.expires_after(kParkedPeerCheck);
  peer_check_timer_.async_wait([weak = weak_from_this()](error_code ec) {
    auto s = weak.lock();
    if (ec || !s || !s->reader_parked_ || s->finished_) return;
    // An empty STDOUT frame means nothing to a client (docs/PROTOCOL.md, section 2). Only into an
    // idle writer: a pending write finds a vanished client by itself (the reset fails it) and a
    // stalled one through the stall watch.
    if (s->outbox_.empty() && !s->writing_) {
      s->push(proto::encodeData(proto::FrameType::kStdout, std::span<const uint8_t>()));
    }
    s->checkPeerWhileParked();
  });
}

void Session::watchSocketErrors() {
  if (error_watch_started_) return;
  error_watch_started_ = true;
  // Completes on a reset (EPOLLERR/EPOLLHUP); cancelled when the socket closes.
  stream_.socket().async_wait(asio::ip::tcp::socket::wait_error,
                              [weak = weak_from_this()](error_code ec) {
                                auto s = weak.lock();
                                if (ec || !s || s->client_gone_) return;
                                s->onClientGone(socketError(s->stream_.socket().native_handle()));
                                error_code ignored;
                                s->stream_.socket().close(ignored);
                              });
}

}  // namespace pyrun::server
