// One job through a spawner, to its end, in one poll() loop (job_run.h).
#include "sandbox/job_run.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <utility>

#include "common/fd.h"

namespace pyrun::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

class JobRun final : public JobRunControl {
 public:
  JobRun(int socket, const JobSpec& spec, const JobRunOptions& options)
      : socket_(socket), job_id_(spec.job_id), options_(options) {}

  Result<JobRunOutcome> run(const JobSpec& spec);

  bool started() const override { return outcome_.started.has_value(); }
  void signal(int signal) override { (void)sendToSpawner(socket_, SignalJob{job_id_, signal}); }
  void stop(RunnerStop why) override {
    if (outcome_.stopped == RunnerStop::kNone) outcome_.stopped = why;
    (void)sendToSpawner(socket_, KillJob{job_id_});
  }
  void closeStdin() override {
    close_requested_ = true;
    closeStdinIfDone();
  }

 private:
  // Takes a message from the spawner; true once the run is over (JobFailed).
  Result<bool> receive();
  // Reads what is readable on one of the job's output streams; false at its end.
  bool pump(UniqueFd& from, int stream);
  void closeStdinIfDone() {
    if (job_in_ && pending_in_.empty() && !source_open_ &&
        (!options_.hold_stdin || close_requested_)) {
      job_in_.reset();
    }
  }

  int socket_;
  uint64_t job_id_;
  const JobRunOptions& options_;
  JobRunOutcome outcome_;
  UniqueFd job_in_, job_out_, job_err_;
  std::string pending_in_;  // for the job's stdin, not yet taken by it
  bool source_open_ = false;
  bool close_requested_ = false;
  uint64_t budget_ = 0;
  Clock::time_point wall_deadline_ = Clock::time_point::max();
};

bool JobRun::pump(UniqueFd& from, int stream) {
  char buf[65536];
  ssize_t n = ::read(from.get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  auto len = static_cast<uint64_t>(n);
  if (len > budget_) {
    len = budget_;
    outcome_.output_truncated = true;
  }
  budget_ -= len;
  if (len > 0) {
    std::string_view bytes(buf, static_cast<size_t>(len));
    if (options_.on_output) {
      options_.on_output(stream, bytes, *this);
    } else {
      (stream == 1 ? outcome_.out : outcome_.err).append(bytes);
    }
  }
  if (outcome_.output_truncated && outcome_.stopped == RunnerStop::kNone) {
    stop(RunnerStop::kOutputLimit);
  }
  return true;
}

Result<bool> JobRun::receive() {
  auto received = receiveFromSpawner(socket_);
  if (!received) return received.error();
  if (!*received) return false;
  auto& message = (*received)->message;
  auto other = [&](uint64_t id) {
    return Error(Errc::kProtocol, "the spawner sent a message about job " + std::to_string(id) +
                                      " while running job " + std::to_string(job_id_));
  };
  if (auto* failed = std::get_if<JobFailed>(&message)) {
    if (failed->job_id != job_id_) return other(failed->job_id);
    outcome_.failed = std::move(*failed);
    return true;
  }
  if (auto* started = std::get_if<JobStarted>(&message)) {
    if (started->job_id != job_id_) return other(started->job_id);
    if (outcome_.started) return Error(Errc::kProtocol, "the spawner started the job twice");
    auto& fds = (*received)->fds;
    if (fds.size() != 3) {
      return Error(Errc::kProtocol, "the spawner sent a job start without its three pipes");
    }
    job_in_ = std::move(fds[0]);
    job_out_ = std::move(fds[1]);
    job_err_ = std::move(fds[2]);
    ::fcntl(job_in_.get(), F_SETFL, O_NONBLOCK);
    outcome_.started = *started;
    if (options_.wall_seconds != 0) {
      wall_deadline_ = Clock::now() + std::chrono::seconds(options_.wall_seconds);
    }
    pending_in_ = options_.stdin_data;
    source_open_ = options_.stdin_fd >= 0;
    closeStdinIfDone();
    if (options_.on_started) options_.on_started(*outcome_.started, *this);
    return false;
  }
  if (auto* ended = std::get_if<JobEnded>(&message)) {
    if (ended->job_id != job_id_) return other(ended->job_id);
    if (!outcome_.started) return Error(Errc::kProtocol, "the spawner ended a job never started");
    outcome_.ended = std::move(*ended);
    return false;
  }
  return Error(Errc::kProtocol, "the spawner sent a message that is not about a job");
}

Result<JobRunOutcome> JobRun::run(const JobSpec& spec) {
  budget_ = options_.output_limit_bytes;
  if (auto sent = sendToSpawner(socket_, SpawnJob{spec}); !sent) return sent.error();
  auto idle_deadline = [&] {
    return options_.idle_timeout_ms < 0
               ? Clock::time_point::max()
               : Clock::now() + std::chrono::milliseconds(options_.idle_timeout_ms);
  };
  Clock::time_point idle_until = idle_deadline();
  while (!(outcome_.ended && !job_out_ && !job_err_)) {
    std::vector<pollfd> fds;
    fds.push_back({socket_, POLLIN, 0});
    int out_i = -1, err_i = -1, in_i = -1, source_i = -1;
    if (job_out_) {
      out_i = static_cast<int>(fds.size());
      fds.push_back({job_out_.get(), POLLIN, 0});
    }
    if (job_err_) {
      err_i = static_cast<int>(fds.size());
      fds.push_back({job_err_.get(), POLLIN, 0});
    }
    if (job_in_ && !pending_in_.empty()) {
      in_i = static_cast<int>(fds.size());
      fds.push_back({job_in_.get(), POLLOUT, 0});
    } else if (job_in_ && source_open_) {
      source_i = static_cast<int>(fds.size());
      fds.push_back({options_.stdin_fd, POLLIN, 0});
    }
    const size_t watches_at = fds.size();
    for (const auto& w : options_.watches) fds.push_back({w.fd, POLLIN, 0});

    Clock::time_point deadline = idle_until;
    const bool wall_running = started() && outcome_.stopped == RunnerStop::kNone;
    if (wall_running) deadline = std::min(deadline, wall_deadline_);
    int timeout_ms = -1;
    if (deadline != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 60'000));
    }
    int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) return errnoError("poll the spawner and the job", errno);
    const auto now = Clock::now();
    if (wall_running && now >= wall_deadline_) stop(RunnerStop::kWallLimit);
    if (ready <= 0) {
      if (ready == 0 && now >= idle_until) {
        return Error(Errc::kLimit, "nothing from the job or the spawner within " +
                                       std::to_string(options_.idle_timeout_ms) + " ms");
      }
      continue;
    }
    idle_until = idle_deadline();
    for (size_t i = 0; i < options_.watches.size(); ++i) {
      if (fds[watches_at + i].revents != 0) options_.watches[i].on_readable(*this);
    }
    if (out_i >= 0 && fds[static_cast<size_t>(out_i)].revents != 0 && !pump(job_out_, 1)) {
      job_out_.reset();
    }
    if (err_i >= 0 && fds[static_cast<size_t>(err_i)].revents != 0 && !pump(job_err_, 2)) {
      job_err_.reset();
    }
    if (source_i >= 0 && fds[static_cast<size_t>(source_i)].revents != 0) {
      char buf[65536];
      ssize_t n = ::read(options_.stdin_fd, buf, sizeof buf);
      if (n > 0) {
        pending_in_.assign(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        source_open_ = false;  // end of input for the program
        closeStdinIfDone();
      }
    }
    if (in_i >= 0 && job_in_ && fds[static_cast<size_t>(in_i)].revents != 0) {
      ssize_t n = ::write(job_in_.get(), pending_in_.data(), pending_in_.size());
      if (n > 0) {
        pending_in_.erase(0, static_cast<size_t>(n));
        closeStdinIfDone();
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        pending_in_.clear();  // the program closed its stdin (EPIPE)
        source_open_ = false;
        job_in_.reset();
      }
    }
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    auto over = receive();
    if (!over) return over.error();
    if (*over) break;
  }
  return std::move(outcome_);
}

}  // namespace

Result<JobRunOutcome> runJobThroughSpawner(int spawner_socket, const JobSpec& spec,
                                           const JobRunOptions& options) {
  JobRun run(spawner_socket, spec, options);
  return run.run(spec);
}

}  // namespace pyrun::sandbox
