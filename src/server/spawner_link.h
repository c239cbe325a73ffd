// The front's end of the spawner socket: sends requests and dispatches the spawner's reports to the
// session waiting for each job. One per pyrund front; single-threaded (one io_context thread).
#pragma once

// <utility> first: Asio's headers use std::exchange.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <unordered_map>
#include <utility>

#include "common/error.h"
#include "common/fd.h"
#include "sandbox/spawner.h"

namespace pyrun::server {

class SpawnerLink {
 public:
  using Handler = std::function<void(sandbox::Received&)>;

  SpawnerLink(boost::asio::any_io_executor executor, UniqueFd socket);
  SpawnerLink(const SpawnerLink&) = delete;
  SpawnerLink& operator=(const SpawnerLink&) = delete;

  // Starts reading. job_gone(id) runs for every JobEnded and JobFailed before the job's handler
  // (the scheduler frees the job's slot there, whether or not a session still waits for it).
  // failed(error) runs once if the spawner exits or sends something malformed.
  void start(std::function<void(uint64_t)> job_gone, std::function<void(const Error&)> failed);

  // Sends one request without ever blocking the front's thread: when the spawner is not reading
  // (its socket is full), the request waits in a bounded queue, in order, until the socket is
  // writable. Errors when the spawner is gone, and when kMaxQueuedRequests already wait: then the
  // spawner is stuck, and failed() is told (fail closed: pyrund stops).
  Result<void> send(const sandbox::ToSpawner& message);
  static constexpr size_t kMaxQueuedRequests = 1024;

  // The handler receives the job's JobStarted (with its three descriptors), JobFailed and JobEnded;
  // it is dropped after JobEnded or JobFailed. Reports for a job nobody waits for are discarded
  // (their descriptors closed); a JobStarted nobody waits for also gets a KillJob.
  void subscribe(uint64_t job_id, Handler handler);
  void unsubscribe(uint64_t job_id);

  // Where the spawner's answer to a ReloadPolicies goes (answers arrive in request order).
  void onPoliciesReloaded(std::function<void(const sandbox::PoliciesReloaded&)> handler) {
    policies_reloaded_ = std::move(handler);
  }

  // Closes the socket: the spawner kills every job and exits.
  void close();

 private:
  void waitForMessages();
  void waitToSend();
  void sendQueued(boost::system::error_code ec);
  void dispatch(sandbox::Received& received);
  void reportFailure(const Error& error);

  boost::asio::posix::stream_descriptor socket_;
  std::unordered_map<uint64_t, Handler> handlers_;
  std::deque<sandbox::EncodedRequest> outbox_;  // requests the full socket has not taken yet
  bool waiting_to_send_ = false;
  std::function<void(uint64_t)> job_gone_;
  std::function<void(const Error&)> failed_;
  std::function<void(const sandbox::PoliciesReloaded&)> policies_reloaded_;
  bool failed_reported_ = false;
};

}  // namespace pyrun::server
