// The front's end of the spawner socket: sending never blocks the front's one thread, requests
// that wait for a busy spawner arrive in order, and a spawner that stops reading fails closed.
#include "server/spawner_link.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <variant>
#include <vector>

#include "sandbox/channel.h"

namespace pyrun::server {
namespace {

struct Pair {
  UniqueFd front;    // the link's end, non-blocking as startSpawner leaves it
  UniqueFd spawner;  // the test plays the spawner
};

Pair socketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
  // A small buffer, so that a few requests fill it.
  int size = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// The job id of the next KillJob the spawner end has, or nullopt when none is there.
std::optional<uint64_t> nextKill(int socket) {
  auto d = sandbox::channel::receiveDatagram(socket, sandbox::channel::kMaxRequestBytes, true);
  if (!d || !*d) return std::nullopt;
  auto request = sandbox::channel::decodeRequest((*d)->bytes, std::move((*d)->fds));
  if (!request) return std::nullopt;
  const auto* kill = std::get_if<sandbox::KillJob>(&*request);
  return kill ? std::optional<uint64_t>(kill->job_id) : std::nullopt;
}

TEST(SpawnerLink, RequestsWaitingForABusySpawnerArriveInOrder) {
  boost::asio::io_context io;
  Pair pair = socketPair();
  SpawnerLink link(io.get_executor(), std::move(pair.front));
  int failures = 0;
  link.start([](uint64_t) {}, [&](const Error&) { ++failures; });
  // More than the socket holds: the rest wait in the link's queue, and send() returns at once.
  constexpr uint64_t kRequests = 300;
  for (uint64_t id = 1; id <= kRequests; ++id) {
    ASSERT_TRUE(link.send(sandbox::KillJob{id})) << id;
  }
  std::vector<uint64_t> received;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (received.size() < kRequests && std::chrono::steady_clock::now() < deadline) {
    io.poll();
    while (auto id = nextKill(pair.spawner.get())) received.push_back(*id);
  }
  ASSERT_EQ(received.size(), kRequests);
  for (uint64_t i = 0; i < kRequests; ++i) EXPECT_EQ(received[i], i + 1);
  EXPECT_EQ(failures, 0);
}

TEST(SpawnerLink, SpawnerThatStopsReadingFailsClosedWithoutBlocking) {
  boost::asio::io_context io;
  Pair pair = socketPair();
  SpawnerLink link(io.get_executor(), std::move(pair.front));
  int failures = 0;
  link.start([](uint64_t) {}, [&](const Error&) { ++failures; });
  // Nobody reads: a blocking send would hang this test (and ctest's timeout would fail it).
  std::optional<Error> refused;
  uint64_t id = 1;
  for (; id <= 100000 && !refused; ++id) {
    auto r = link.send(sandbox::KillJob{id});
    if (!r) refused = r.error();
    io.poll();
  }
  ASSERT_TRUE(refused) << "the queue never filled";
  EXPECT_TRUE(refused->is(Errc::kBusy)) << refused->detail();
  EXPECT_GT(id, SpawnerLink::kMaxQueuedRequests);
  EXPECT_EQ(failures, 1);
}

}  // namespace
}  // namespace pyrun::server
