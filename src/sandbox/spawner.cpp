// The front's side of the spawner (spawner.h): forking it, and the messages to and from it.
#include "sandbox/spawner.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "sandbox/channel.h"
#include "sandbox/spawner_process.h"
#include "sandbox/workdir.h"

namespace pyrun::sandbox {

Result<SpawnerProcess> startSpawner(const SpawnerConfig& config) {
  // Before the fork, so that an invalid policy is the caller's error with its file:line:col.
  auto policies = detail::loadPolicySet(config.policy_files);
  if (!policies) return policies.error();
  auto jobs_dir = openJobsDir(config.jobs_dir);
  if (!jobs_dir) return jobs_dir.error();
  auto pair = makeSocketPair(SOCK_SEQPACKET);
  if (!pair) return pair.error();
  pid_t front = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return errnoError("fork the spawner", errno);
  if (pid == 0) {
    pair->first.reset();
    detail::spawnerMain(config, pair->second.get(), std::move(*jobs_dir), front,
                        std::move(*policies));
  }
  pair->second.reset();
  if (::fcntl(pair->first.get(), F_SETFL, O_NONBLOCK) != 0) {
    return errnoError("make the spawner socket non-blocking", errno);
  }
  return SpawnerProcess{pid, std::move(pair->first)};
}

Result<EncodedRequest> encodeForSpawner(const ToSpawner& message) {
  EncodedRequest out;
  out.bytes = channel::encodeRequest(message);
  if (out.bytes.size() > channel::kMaxRequestBytes) {
    return Error(Errc::kLimit, "the policy reload request is " + std::to_string(out.bytes.size()) +
                                   " bytes, more than the spawner accepts (" +
                                   std::to_string(channel::kMaxRequestBytes) + ")");
  }
  if (const auto* s = std::get_if<SpawnJob>(&message)) {
    auto memfd = channel::makeSealedSpec(s->spec);
    if (!memfd) return memfd.error();
    out.memfd = std::move(*memfd);
  }
  return out;
}

namespace {

Result<void> sendEncoded(int socket, const EncodedRequest& request, bool wait) {
  if (request.memfd) {
    int fd = request.memfd.get();
    return channel::sendDatagram(socket, request.bytes, std::span<const int>(&fd, 1), wait);
  }
  return channel::sendDatagram(socket, request.bytes, {}, wait);
}

}  // namespace

Result<bool> trySendToSpawner(int socket, const EncodedRequest& request) {
  auto r = sendEncoded(socket, request, false);
  if (r) return true;
  if (r.error().is(Errc::kBusy)) return false;
  return r.error();
}

Result<void> sendToSpawner(int socket, const ToSpawner& message) {
  auto request = encodeForSpawner(message);
  if (!request) return request.error();
  return sendEncoded(socket, *request, true);
}

Result<std::optional<Received>> receiveFromSpawner(int socket) {
  auto d = channel::receiveDatagram(socket, kMaxFromSpawnerBytes, true);
  if (!d) {
    if (d.error().is(Errc::kClosed)) return Error(Errc::kClosed, "spawner exited");
    return d.error();
  }
  if (!*d) return std::optional<Received>();
  auto message = decodeFromSpawner((*d)->bytes);
  if (!message) return message.error();
  size_t want = std::holds_alternative<JobStarted>(*message) ? 3 : 0;
  if ((*d)->fds.size() != want) {
    return Error(Errc::kProtocol, "spawner message came with " + std::to_string((*d)->fds.size()) +
                                      " descriptors, expected " + std::to_string(want));
  }
  return std::optional<Received>(Received{std::move(*message), std::move((*d)->fds)});
}

}  // namespace pyrun::sandbox
