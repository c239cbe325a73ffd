// Datagrams with descriptors over the spawner's SOCK_SEQPACKET socket, and sealed memfds.
#include "sandbox/channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pyrun::sandbox::channel {
namespace {

constexpr unsigned kRequiredSeals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK;

void putU64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint64_t getU64(std::span<const uint8_t> b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[static_cast<size_t>(i)];
  return v;
}

Error protocolError(const std::string& what) {
  return Error(Errc::kProtocol, "malformed spawner request: " + what);
}

}  // namespace

std::vector<uint8_t> encodeRequest(const ToSpawner& request) {
  std::vector<uint8_t> out;
  if (const auto* s = std::get_if<SpawnJob>(&request)) {
    out.push_back(static_cast<uint8_t>(RequestType::kSpawnJob));
    putU64(out, s->spec.job_id);
  } else if (const auto* g = std::get_if<SignalJob>(&request)) {
    out.push_back(static_cast<uint8_t>(RequestType::kSignalJob));
    putU64(out, g->job_id);
    putU64(out, static_cast<uint32_t>(g->signal));
    out.resize(out.size() - 4);  // the signal is an i32
  } else if (std::holds_alternative<ReloadPolicies>(request)) {
    out.push_back(static_cast<uint8_t>(RequestType::kReloadPolicies));
  } else {
    out.push_back(static_cast<uint8_t>(RequestType::kKillJob));
    putU64(out, std::get<KillJob>(request).job_id);
  }
  return out;
}

Result<Request> decodeRequest(std::span<const uint8_t> bytes, std::vector<UniqueFd> fds) {
  if (bytes.empty()) return protocolError("empty datagram");
  auto type = static_cast<RequestType>(bytes[0]);
  auto body = bytes.subspan(1);
  size_t want_fds = type == RequestType::kSpawnJob ? 1 : 0;
  switch (type) {
    case RequestType::kSpawnJob:
    case RequestType::kKillJob:
      if (body.size() != 8) return protocolError("wrong length " + std::to_string(bytes.size()));
      break;
    case RequestType::kSignalJob:
      if (body.size() != 12) return protocolError("wrong length " + std::to_string(bytes.size()));
      break;
    case RequestType::kReloadPolicies:
      if (!body.empty()) return protocolError("wrong length " + std::to_string(bytes.size()));
      break;
    default:
      return protocolError("unknown type " + std::to_string(bytes[0]));
  }
  if (fds.size() != want_fds) {
    return protocolError(std::to_string(fds.size()) + " descriptors attached, expected " +
                         std::to_string(want_fds));
  }
  if (type == RequestType::kReloadPolicies) return Request(ReloadPolicies{});
  uint64_t job_id = getU64(body);
  if (type == RequestType::kSpawnJob) return Request(SpawnRequest{job_id, std::move(fds[0])});
  if (type == RequestType::kKillJob) return Request(KillJob{job_id});
  uint32_t sig = 0;
  for (int i = 3; i >= 0; --i) sig = (sig << 8) | body[8 + static_cast<size_t>(i)];
  return Request(SignalJob{job_id, static_cast<int>(sig)});
}

Result<UniqueFd> makeSealedSpec(const JobSpec& spec) {
  std::vector<uint8_t> bytes = encodeJobSpec(spec);
  if (bytes.size() > kMaxJobSpecBytes) {
    return Error(Errc::kLimit, "job spec of " + std::to_string(bytes.size()) +
                                   " bytes exceeds the spawner's limit of " +
                                   std::to_string(kMaxJobSpecBytes) + " bytes");
  }
  UniqueFd fd(::memfd_create("pyrun-job-spec", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return errnoError("memfd_create", errno);
  if (auto r =
          writeAll(fd.get(),
                   std::span<const char>(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                   "job spec memfd");
      !r) {
    return r.error();
  }
  if (::fcntl(fd.get(), F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) != 0) {
    return errnoError("seal job spec memfd", errno);
  }
  return fd;
}

Result<JobSpec> readSealedSpec(int memfd) {
  // Without these seals the front could rewrite the spec between our checks and our use of it.
  int seals = ::fcntl(memfd, F_GET_SEALS);
  if (seals < 0) return errnoError("job spec descriptor is not a sealable memfd", errno);
  if ((static_cast<unsigned>(seals) & kRequiredSeals) != kRequiredSeals) {
    return Error(Errc::kProtocol,
                 "job spec memfd is not sealed against writing, growing and shrinking");
  }
  struct stat st {};
  if (::fstat(memfd, &st) != 0) return errnoError("fstat job spec memfd", errno);
  if (!S_ISREG(st.st_mode) || st.st_size < 0 ||
      static_cast<uint64_t>(st.st_size) > kMaxJobSpecBytes) {
    return Error(Errc::kLimit, "job spec memfd of " + std::to_string(st.st_size) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(kMaxJobSpecBytes) + " bytes");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pread(memfd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("read job spec memfd", errno);
    if (n == 0) return Error(Errc::kProtocol, "job spec memfd is shorter than its size");
    done += static_cast<size_t>(n);
  }
  return decodeJobSpec(bytes);
}

Result<void> sendDatagram(int socket, std::span<const uint8_t> bytes, std::span<const int> fds,
                          bool wait) {
  if (fds.size() > kMaxDescriptors) {
    return Error(Errc::kInternal, "too many descriptors for one spawner message");
  }
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDescriptors)] = {};
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n >= 0) return {};
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      if (!wait) return Error(Errc::kBusy, "the spawner socket is full");
      pollfd p{socket, POLLOUT, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) return errnoError("poll spawner socket", errno);
      continue;
    }
    return errnoError("send to spawner socket", errno);
  }
}

Result<std::optional<Datagram>> receiveDatagram(int socket, size_t max_bytes, bool dont_wait) {
  Datagram d;
  // One spare byte: a datagram that fills it is longer than max_bytes (MSG_TRUNC says so too).
  d.bytes.resize(max_bytes + 1);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxDescriptors)] = {};
  iovec iov{d.bytes.data(), d.bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | (dont_wait ? MSG_DONTWAIT : 0));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return std::optional<Datagram>();
    return errnoError("receive from spawner socket", errno);
  }
  // Take ownership of every descriptor first, so that none leaks whatever else is wrong.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      d.fds.emplace_back(fd);
    }
  }
  // SOCK_SEQPACKET: 0 bytes is the peer's orderly close (this protocol never sends empty
  // datagrams).
  if (n == 0 && d.fds.empty()) return Error(Errc::kClosed, "closed");
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || static_cast<size_t>(n) > max_bytes) {
    return Error(Errc::kProtocol, "spawner socket message or its descriptors were truncated");
  }
  d.bytes.resize(static_cast<size_t>(n));
  return std::optional<Datagram>(std::move(d));
}

}  // namespace pyrun::sandbox::channel
