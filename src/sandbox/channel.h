// The spawner's socket: datagrams with attached descriptors, and the front -> spawner request
// encoding. Internal to the sandbox layer (and its tests, which craft malformed requests).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "sandbox/spawner.h"

namespace pyrun::sandbox::channel {

// Request datagrams (front -> spawner), integers little-endian:
//   SpawnJob  [u8 1][u64 job_id]           + one descriptor: the sealed memfd holding the JobSpec
//   SignalJob [u8 2][u64 job_id][i32 signal]
//   KillJob   [u8 3][u64 job_id]
//   ReloadPolicies [u8 4]                  (the spawner finds the files itself: no path travels)
enum class RequestType : uint8_t {
  kSpawnJob = 1,
  kSignalJob = 2,
  kKillJob = 3,
  kReloadPolicies = 4
};
// The largest request datagram is 13 bytes (a SignalJob); anything longer is refused.
inline constexpr size_t kMaxRequestBytes = 64;
// The most policies a PoliciesReloaded answer lists.
inline constexpr uint32_t kMaxPolicies = 64;
inline constexpr size_t kMaxDescriptors = 3;

// A SpawnJob as it arrives: the spec is still in its memfd, unverified.
struct SpawnRequest {
  uint64_t job_id = 0;
  UniqueFd spec_memfd;
};
using Request = std::variant<SpawnRequest, SignalJob, KillJob, ReloadPolicies>;

// Encodes the datagram bytes of a request (SpawnJob's spec is not included: it travels in a memfd).
std::vector<uint8_t> encodeRequest(const ToSpawner& request);
// Decodes one request datagram; fds are the descriptors that came with it (taken over).
// kProtocol errors for a wrong length, an unknown type or a wrong number of descriptors.
Result<Request> decodeRequest(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds);

// Writes spec into a new memfd sealed against writes, growing and shrinking (and further sealing).
Result<UniqueFd> makeSealedSpec(const JobSpec& spec);
// Reads a JobSpec from a memfd after checking that it is sealed (F_SEAL_WRITE, F_SEAL_GROW,
// F_SEAL_SHRINK) and at most kMaxJobSpecBytes long: the front cannot change it while it is read.
Result<JobSpec> readSealedSpec(int memfd);

// Sends one datagram with descriptors. While a non-blocking socket is full it waits with poll(),
// or, with wait false, returns kBusy at once (nothing sent). Never raises SIGPIPE.
Result<void> sendDatagram(int socket, std::span<const uint8_t> bytes, std::span<const int> fds,
                          bool wait = true);

struct Datagram {
  std::vector<uint8_t> bytes;
  std::vector<UniqueFd> fds;  // close-on-exec
};
// Receives one datagram of at most max_bytes with at most kMaxDescriptors descriptors. nullopt when
// none is ready (EAGAIN, with dont_wait). Errors: kClosed when the peer closed its end,
// kProtocol when the datagram or its descriptors were truncated.
Result<std::optional<Datagram>> receiveDatagram(int socket, size_t max_bytes, bool dont_wait);

}  // namespace pyrun::sandbox::channel
