// libFuzzer target for the spawner's codec: the request datagrams and the JobSpec that the root
// spawner decodes from its (unprivileged) front, and the messages the front decodes back. Besides
// memory errors (ASan/UBSan) it checks that the encoding is canonical: whatever a decoder accepts
// re-encodes to exactly the bytes it came from.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <variant>
#include <vector>

#include "sandbox/channel.h"
#include "sandbox/spawner.h"

namespace {

using namespace pyrun;
using namespace pyrun::sandbox;

bool same(const std::vector<uint8_t>& again, std::span<const uint8_t> input) {
  return again.size() == input.size() && std::equal(input.begin(), input.end(), again.begin());
}

// A descriptor for SpawnJob, which must come with exactly one: /dev/null stands in for the memfd.
std::vector<UniqueFd> oneDescriptor() {
  std::vector<UniqueFd> fds;
  fds.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  return fds;
}

void decodeRequests(std::span<const uint8_t> input) {
  for (bool with_fd : {false, true}) {
    auto request =
        channel::decodeRequest(input, with_fd ? oneDescriptor() : std::vector<UniqueFd>{});
    if (!request) continue;
    // Only SpawnJob takes a descriptor, and only it arrives without its spec in the datagram.
    if (with_fd != std::holds_alternative<channel::SpawnRequest>(*request)) __builtin_trap();
    ToSpawner again;
    if (auto* s = std::get_if<channel::SpawnRequest>(&*request)) {
      if (!s->spec_memfd) __builtin_trap();
      SpawnJob spawn;
      spawn.spec.job_id = s->job_id;
      again = std::move(spawn);
    } else if (auto* g = std::get_if<SignalJob>(&*request)) {
      again = *g;
    } else if (auto* k = std::get_if<KillJob>(&*request)) {
      again = *k;
    } else {
      again = std::get<ReloadPolicies>(*request);
    }
    if (!same(channel::encodeRequest(again), input)) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);
  decodeRequests(input);
  if (auto spec = decodeJobSpec(input)) {
    if (!same(encodeJobSpec(*spec), input)) __builtin_trap();
  }
  if (auto message = decodeFromSpawner(input)) {
    if (!same(encodeMessage(*message), input)) __builtin_trap();
  }
  return 0;
}
