// The job's I/O pumps: the program's stdout and stderr into data frames, the client's stdin into
// the program, and the result files after the job.
#include <fcntl.h>

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/write.hpp>

#include "common/log.h"
#include "server/session.h"
#include "server/session_internal.h"

namespace pyrun::server {

namespace asio = boost::asio;
using boost::system::error_code;
using namespace session_detail;

void Session::onJobStarted(sandbox::Received& received) {
  auto& started = std::get<sandbox::JobStarted>(received.message);
  times_.merge(started.times);
  if (received.fds.size() != 3) {
    // Its descriptors close with `received`; the JobEnded that follows the kill still gives the
    // job its job_end line (verdict internal-error).
    PYRUN_LOG(kError) << "job " << job_id_ << ": spawner sent " << received.fds.size()
                      << " descriptors instead of 3";
    killJob(proto::Verdict::kInternalError);
    fail(proto::ErrorCode::kInternal, "the server could not start the job");
    return;
  }
  auto ex = stream_.get_executor();
  auto in = std::make_shared<Pipe>(ex, received.fds[0].release());
  auto out = std::make_shared<Pipe>(ex, received.fds[1].release());
  // A terminal job has one output (the terminal); its third descriptor takes window sizes.
  std::shared_ptr<Pipe> err;
  if (terminal_) {
    terminal_->attach(std::move(received.fds[2]));
    open_outputs_ = 1;
  } else {
    err = std::make_shared<Pipe>(ex, received.fds[2].release());
    open_outputs_ = 2;
  }
  // Bigger pipes: the program writes more before it waits for us, and we read less often. A
  // kernel that refuses (pipe-user-pages-soft) leaves the default, which works as well.
  (void)::fcntl(out->native_handle(), F_SETPIPE_SZ, kPipeSize);
  if (err) (void)::fcntl(err->native_handle(), F_SETPIPE_SZ, kPipeSize);
  stream_.setBuffers(kJobTlsReadChunk, true);
  // One batch of records: kWriteBatch of frames and each record's 22 bytes of header and tag.
  stream_.reserveOutput(kWriteBatch + (kWriteBatch / 16384 + 8) * 32);
  PYRUN_LOG(kDebug) << "job " << job_id_ << " runs as pid " << started.pid;
  if (!finished_ && !kill_sent_) {
    state_ = proto::ServerState::kRunning;
    push(proto::encode(proto::Started{std::to_string(job_id_), run_->limits}));
    wall_timer_.expires_after(std::chrono::seconds(run_->limits.wall_seconds));
    wall_timer_.async_wait([weak = weak_from_this()](error_code ec) {
      auto s = weak.lock();
      if (ec || !s || s->job_ended_) return;
      s->killJob(proto::Verdict::kWallLimit);
    });
  }
  // The pumps run even for a job being killed: draining its pipes lets it die without blocking
  // on a full pipe, and their end of file is part of the end of the job.
  auto self = shared_from_this();
  auto on_error = [self](std::exception_ptr e) {
    if (!e) return;
    PYRUN_LOG(kError) << "job " << self->job_id_ << ": " << exceptionText(e);
    self->killJob(proto::Verdict::kInternalError);
  };
  // A pump that failed will never reach its end of file: count it as closed, or EXIT never goes.
  auto on_output_error = [self, on_error](std::exception_ptr e) {
    if (!e) return;
    on_error(e);
    --self->open_outputs_;
    self->maybeEndJob();
  };
  asio::co_spawn(ex, outputPump(out, proto::FrameType::kStdout), on_output_error);
  if (err) asio::co_spawn(ex, outputPump(err, proto::FrameType::kStderr), on_output_error);
  asio::co_spawn(ex, stdinPump(in), on_error);
}

asio::awaitable<void> Session::outputPump(std::shared_ptr<Pipe> pipe, proto::FrameType type) {
  auto self = shared_from_this();
  // Data frames only after STARTED: a job killed before it (a cancel while it was being started)
  // is drained, not shown.
  auto deliverable = [this] {
    return state_ == proto::ServerState::kRunning && !client_gone_ && !finished_;
  };
  constexpr size_t kHeader = proto::kFrameHeaderSize;
  // The pipe is read straight into the frames' buffers, behind room for each header, several
  // frames with one readv: the frames go to the outbox as they are, and their buffers come back
  // to the pool once sent.
  std::array<std::vector<uint8_t>, kFramesPerRead> frames;
  // Most programs print little: the pump starts with one small frame and takes the four full ones
  // only once a read fills it. Four zeroed 64 KiB buffers per pipe are 128 page faults, and a page
  // fault costs about 30 µs on a VM.
  size_t frame_size = kFirstFrameSize;
  size_t frames_per_read = 1;
  for (;;) {
    const size_t payload = frame_size - kHeader;
    std::array<asio::mutable_buffer, kFramesPerRead> buffers{};  // unused ones stay empty
    for (size_t k = 0; k < frames_per_read; ++k) {
      if (frames[k].empty() && frame_size == kFrameBufferSize) frames[k] = takeFrameBuffer();
      frames[k].resize(frame_size);
      buffers[k] = asio::buffer(frames[k].data() + kHeader, payload);
    }
    auto [ec, n] = co_await pipe->async_read_some(buffers, kAwait);
    if (ec) break;  // end of file (every writer closed) or the pipe failed: either way, done
    if (n > 0) times_.stamp(JobStage::kFirstOutput);  // the first stamp stays
    if (n == payload * frames_per_read && frame_size < kFrameBufferSize) {
      frame_size = kFrameBufferSize;  // from the next read on
      frames_per_read = kFramesPerRead;
    }
    size_t left = n;
    for (size_t k = 0; k < kFramesPerRead && left > 0; ++k) {
      const size_t got = std::min(left, payload);
      left -= got;
      size_t allowed = budget_.take(got);
      if (allowed > 0 && deliverable()) {
        co_await outbox_.waitForRoom();
        if (deliverable()) {
          std::vector<uint8_t>& frame = frames[k];
          frame.resize(kHeader + allowed);
          const auto length = static_cast<uint32_t>(allowed);
          frame[0] = static_cast<uint8_t>(type);
          frame[1] = static_cast<uint8_t>(length >> 24);
          frame[2] = static_cast<uint8_t>(length >> 16);
          frame[3] = static_cast<uint8_t>(length >> 8);
          frame[4] = static_cast<uint8_t>(length);
          outbox_.push(std::move(frame), Outbox::Kind::kData);
          frame.clear();  // moved from: taken from the pool again on the next read
          (type == proto::FrameType::kStdout ? stdout_bytes_ : stderr_bytes_) += allowed;
        }
      }
      if (budget_.truncated()) killJob(proto::Verdict::kOutputLimit);
    }
  }
  for (auto& frame : frames) {
    if (!frame.empty()) recycleFrameBuffer(std::move(frame));
  }
  error_code ignored;
  pipe->close(ignored);
  --open_outputs_;
  maybeEndJob();
}

asio::awaitable<void> Session::stdinPump(std::shared_ptr<Pipe> pipe) {
  auto self = shared_from_this();
  for (;;) {
    while (stdin_.empty() && !stdin_end_ && !stdin_dead_) {
      stdin_wake_.expires_at(asio::steady_timer::time_point::max());
      co_await stdin_wake_.async_wait(kAwait);
    }
    if (stdin_dead_ || stdin_.empty()) break;  // stdin_end_ with nothing left: close the pipe
    auto [ec, n] = co_await asio::async_write(*pipe, asio::buffer(stdin_.front()), kAwait);
    if (ec) {
      // EPIPE: the program closed its stdin or ended. What it did not read is dropped, as a
      // local pipe would drop it.
      stdin_dead_ = true;
      stdin_.clear();
      stdin_bytes_ = 0;
      wake(stdin_space_wake_);
      break;
    }
    stdin_bytes_ -= stdin_.front().size() + kStdinFrameCost;
    stdin_.pop_front();
    wake(stdin_space_wake_);
  }
  error_code ignored;
  pipe->close(ignored);
}

asio::awaitable<void> Session::waitForStdinSpace() {
  auto full = [this] { return stdin_bytes_ >= kMaxStdinBuffered && !stdin_dead_ && !finished_; };
  if (!full()) co_return;
  // Not reading the connection also means not seeing its end: the FIN of a client killed now
  // waits behind the stdin it still had in flight, and its job would run on. But a closed socket
  // answers any byte we send with a reset; so the client is probed while we wait, and the
  // socket is watched for that reset.
  reader_parked_ = true;
  watchSocketErrors();
  checkPeerWhileParked();
  while (full()) {
    stdin_space_wake_.expires_at(asio::steady_timer::time_point::max());
    co_await stdin_space_wake_.async_wait(kAwait);
  }
  reader_parked_ = false;
  peer_check_timer_.cancel();
}

asio::awaitable<void> Session::sendResults() {
  auto self = shared_from_this();
  {
    ResultFiles files(env_->config.jobs_dir, job_ended_->results);
    std::vector<uint8_t> buffer(proto::kMaxDataChunk);
    bool broken = false;
    while (!client_gone_ && !finished_ && !broken) {
      auto next = files.next();
      if (!next) {
        PYRUN_LOG(kError) << "job " << job_id_ << ": results: " << next.error().detail();
        break;
      }
      if (!*next) break;
      auto& file = **next;
      std::vector<uint8_t> header = proto::encode(file.header, proto::FrameType::kResult);
      co_await outbox_.waitForRoom();
      if (client_gone_ || finished_) break;
      push(std::move(header));
      for (uint64_t left = file.header.size; left > 0;) {
        const size_t want = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
        ssize_t n = ::read(file.fd.get(), buffer.data(), want);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          // The announced size cannot be kept: the session cannot go on in step.
          PYRUN_LOG(kError) << "job " << job_id_ << ": result " << file.header.name
                            << " shrank while being sent";
          broken = true;
          break;
        }
        co_await outbox_.waitForRoom();
        if (client_gone_ || finished_) break;
        outbox_.push(
            proto::encodeData(proto::FrameType::kResultData,
                              std::span<const uint8_t>(buffer.data(), static_cast<size_t>(n))),
            Outbox::Kind::kData);
        left -= static_cast<uint64_t>(n);
      }
    }
    if (broken) {
      results_done_ = true;
      fail(proto::ErrorCode::kInternal, "the server could not send the result files");
      co_return;
    }
  }  // the copies are removed here
  results_done_ = true;
  maybeEndJob();
}

}  // namespace pyrun::server
