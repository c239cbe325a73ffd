// Reading the seccomp kill records of /dev/kmsg.
#include "sandbox/seccomp_log.h"

#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace pyrun::sandbox {
namespace {

constexpr size_t kMaxRecent = 64;

// The value of " key=" in text, up to the next space.
std::optional<std::string_view> field(std::string_view text, std::string_view key) {
  std::string needle = " " + std::string(key) + "=";
  size_t at = text.find(needle);
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view rest = text.substr(at + needle.size());
  return rest.substr(0, rest.find_first_of(" \n"));
}

template <class T>
bool number(std::string_view text, T& out, int base = 10) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

int64_t monotonicMillis() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

std::optional<SeccompRecord> parseSeccompRecord(std::string_view record) {
  size_t semicolon = record.find(';');
  if (semicolon == std::string_view::npos) return std::nullopt;
  std::string_view text = record.substr(semicolon);  // keeps the ';' so " key=" needs a space
  if (text.find("type=1326") == std::string_view::npos) return std::nullopt;
  auto pid = field(text, "pid");
  auto arch = field(text, "arch");
  auto nr = field(text, "syscall");
  auto sig = field(text, "sig");
  if (!pid || !arch || !nr || !sig) return std::nullopt;
  SeccompRecord r;
  int signal = 0;
  if (!number(*pid, r.pid) || !number(*arch, r.arch, 16) || !number(*nr, r.syscall) ||
      !number(*sig, signal) || signal == 0) {
    return std::nullopt;
  }
  return r;
}

std::string syscallName(uint32_t arch, int syscall) {
  // libseccomp's SCMP_ARCH_* tokens are the kernel's AUDIT_ARCH_* values.
  char* name = seccomp_syscall_resolve_num_arch(arch, syscall);
  if (name == nullptr) {
    return "syscall " + std::to_string(syscall) + " (unknown on this architecture)";
  }
  std::string out = name;
  std::free(name);
  if (arch != seccomp_arch_native()) {
    // Another ABI (int 0x80 on x86_64): the filter kills it whatever the call.
    out += arch == SCMP_ARCH_X86 ? " (x86)" : arch == SCMP_ARCH_X32 ? " (x32)" : " (other ABI)";
  }
  return out;
}

SeccompLog::SeccompLog() {
  fd_.reset(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd_) {
    reason_ = std::string("/dev/kmsg cannot be read: ") + std::strerror(errno);
    return;
  }
  // Records from before this spawner started are not about its jobs.
  ::lseek(fd_.get(), 0, SEEK_END);
}

void SeccompLog::drain() {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EPIPE)) continue;  // EPIPE: records were overwritten
    if (n <= 0) return;
    if (auto r = parseSeccompRecord(std::string_view(buf, static_cast<size_t>(n)))) {
      recent_.push_back(*r);
      if (recent_.size() > kMaxRecent) recent_.pop_front();
    }
  }
}

std::string SeccompLog::nameFor(pid_t pid, int max_wait_ms) {
  if (!fd_) return "forbidden system call (name unknown: " + reason_ + ")";
  const int64_t deadline = monotonicMillis() + max_wait_ms;
  for (;;) {
    drain();
    for (auto it = recent_.begin(); it != recent_.end(); ++it) {
      if (it->pid == pid) {
        std::string name = syscallName(it->arch, it->syscall);
        recent_.erase(it);
        return name;
      }
    }
    int64_t left = deadline - monotonicMillis();
    if (left <= 0) break;
    pollfd p{fd_.get(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left));
  }
  return "forbidden system call (name unknown: the kernel logged no seccomp record for the job; "
         "audit messages may be rate-limited or disabled)";
}

}  // namespace pyrun::sandbox
