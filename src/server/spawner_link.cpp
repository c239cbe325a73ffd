// The front's end of the spawner socket.
#include "server/spawner_link.h"

#include <type_traits>
#include <variant>

#include "common/log.h"

namespace pyrun::server {

namespace asio = boost::asio;

SpawnerLink::SpawnerLink(asio::any_io_executor executor, UniqueFd socket)
    : socket_(executor, socket.release()) {}

void SpawnerLink::start(std::function<void(uint64_t)> job_gone,
                        std::function<void(const Error&)> failed) {
  job_gone_ = std::move(job_gone);
  failed_ = std::move(failed);
  waitForMessages();
}

void SpawnerLink::waitForMessages() {
  // Readiness only: receiveFromSpawner() does the recvmsg itself, because the descriptors of a
  // JobStarted arrive as SCM_RIGHTS, which Asio's stream reads would drop.
  socket_.async_wait(asio::posix::stream_descriptor::wait_read,
                     [this](boost::system::error_code ec) {
                       if (ec == asio::error::operation_aborted || !socket_.is_open()) return;
                       if (ec)
                         return reportFailure(Error(Errc::kIo, "spawner socket: " + ec.message()));
                       for (;;) {
                         auto received = sandbox::receiveFromSpawner(socket_.native_handle());
                         if (!received) return reportFailure(received.error());
                         if (!received->has_value()) break;
                         dispatch(**received);
                         if (!socket_.is_open()) return;
                       }
                       waitForMessages();
                     });
}

void SpawnerLink::dispatch(sandbox::Received& received) {
  if (auto* reloaded = std::get_if<sandbox::PoliciesReloaded>(&received.message)) {
    if (policies_reloaded_) policies_reloaded_(*reloaded);
    return;
  }
  uint64_t job_id = std::visit(
      [](const auto& m) -> uint64_t {
        if constexpr (requires { m.job_id; }) {
          return m.job_id;
        } else {
          return 0;
        }
      },
      received.message);
  bool last = !std::holds_alternative<sandbox::JobStarted>(received.message);
  if (last && job_gone_) job_gone_(job_id);
  auto it = handlers_.find(job_id);
  if (it == handlers_.end()) {
    if (!last) {
      // Its session went away while the job was being spawned: the job must not outlive it.
      PYRUN_LOG(kDebug) << "job " << job_id << " started with no session left; killing it";
      (void)send(sandbox::KillJob{job_id});
    }
    return;  // descriptors in `received` close with it
  }
  Handler handler = last ? std::move(it->second) : it->second;
  if (last) handlers_.erase(it);
  handler(received);
}

Result<void> SpawnerLink::send(const sandbox::ToSpawner& message) {
  if (!socket_.is_open()) return Error(Errc::kIo, "the spawner is gone");
  auto request = sandbox::encodeForSpawner(message);
  if (!request) return request.error();
  if (outbox_.empty()) {
    auto sent = sandbox::trySendToSpawner(socket_.native_handle(), *request);
    if (!sent) return sent.error();
    if (*sent) return {};
  }
  // The spawner is busy (it writes a job's files or removes a working directory in its one
  // thread): the request waits here, behind those already waiting, rather than block every
  // session of the front. A spawner that stops reading altogether must not make the queue grow
  // without bound.
  if (outbox_.size() >= kMaxQueuedRequests) {
    Error stuck(Errc::kBusy, "the spawner has not taken " + std::to_string(outbox_.size()) +
                                 " requests: it is stuck");
    reportFailure(stuck);
    return stuck;
  }
  outbox_.push_back(std::move(*request));
  waitToSend();
  return {};
}

void SpawnerLink::waitToSend() {
  if (waiting_to_send_) return;
  waiting_to_send_ = true;
  socket_.async_wait(asio::posix::stream_descriptor::wait_write,
                     [this](boost::system::error_code ec) { sendQueued(ec); });
}

void SpawnerLink::sendQueued(boost::system::error_code ec) {
  waiting_to_send_ = false;
  if (ec == asio::error::operation_aborted || !socket_.is_open()) return;
  if (ec) return reportFailure(Error(Errc::kIo, "spawner socket: " + ec.message()));
  while (!outbox_.empty()) {
    auto sent = sandbox::trySendToSpawner(socket_.native_handle(), outbox_.front());
    if (!sent) return reportFailure(sent.error());
    if (!*sent) return waitToSend();
    outbox_.pop_front();
  }
}

void SpawnerLink::reportFailure(const Error& error) {
  if (failed_reported_ || !failed_) return;
  failed_reported_ = true;
  failed_(error);
}

void SpawnerLink::subscribe(uint64_t job_id, Handler handler) {
  handlers_[job_id] = std::move(handler);
}

void SpawnerLink::unsubscribe(uint64_t job_id) { handlers_.erase(job_id); }

void SpawnerLink::close() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

}  // namespace pyrun::server
