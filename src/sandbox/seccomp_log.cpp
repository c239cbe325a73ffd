// Reading the kernel's seccomp audit records (see seccomp_log.h for the sources).
#include "sandbox/seccomp_log.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/netlink.h>
#include <seccomp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace pyrun::sandbox {
namespace {

// Kill records read but not yet claimed by a job end (other processes of the host may be killed by
// seccomp filters of their own).
constexpr size_t kMaxRecent = 256;
// Records read per drain(): the loop comes back for the rest after serving its jobs.
constexpr size_t kMaxPerDrain = 256;

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

// Whether the kernel can write audit records at all: not when booted with audit=0. (AUDIT_GET's
// "enabled" says nothing here: it is 0 without auditd, and seccomp records are written anyway.)
bool auditBootEnabled() {
  UniqueFd fd(::open("/proc/cmdline", O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[4096] = {};
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n < 0) return false;
  std::string cmdline = " " + std::string(buf, static_cast<size_t>(n)) + " ";
  for (char& c : cmdline) c = c == '\n' ? ' ' : c;
  return cmdline.find(" audit=0 ") == std::string::npos &&
         cmdline.find(" audit=off ") == std::string::npos;
}

// Whether seccomp's kill_process action is audited (the admin may remove it).
bool killsLogged() {
  UniqueFd fd(::open("/proc/sys/kernel/seccomp/actions_logged", O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[512] = {};
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  std::string_view actions(buf, static_cast<size_t>(n));
  return actions.find("kill_process") != std::string_view::npos;
}

}  // namespace

std::optional<SeccompRecord> parseSeccompFields(std::string_view text) {
  auto pid = field(text, "pid");
  auto uid = field(text, "uid");
  auto arch = field(text, "arch");
  auto nr = field(text, "syscall");
  auto sig = field(text, "sig");
  auto code = field(text, "code");
  if (!pid || !uid || !arch || !nr || !sig || !code) return std::nullopt;
  if (code->size() < 3 || code->substr(0, 2) != "0x") return std::nullopt;
  SeccompRecord r;
  if (!number(*pid, r.pid) || !number(*uid, r.uid) || !number(*arch, r.arch, 16) ||
      !number(*nr, r.syscall) || !number(*sig, r.signal) || !number(code->substr(2), r.code, 16)) {
    return std::nullopt;
  }
  return r;
}

std::optional<SeccompRecord> parseKmsgRecord(std::string_view record) {
  size_t semicolon = record.find(';');
  if (semicolon == std::string_view::npos) return std::nullopt;
  std::string_view text = record.substr(semicolon);  // keeps the ';' so " key=" needs a space
  if (text.find(" type=1326 ") == std::string_view::npos) return std::nullopt;
  return parseSeccompFields(text);
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

std::optional<std::string> nativeSyscallName(uint32_t arch, int syscall) {
  if (arch != seccomp_arch_native()) return std::nullopt;
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, syscall);
  if (name == nullptr) return std::nullopt;
  std::string out = name;
  std::free(name);
  return out;
}

// ---- the audit netlink socket ----

Result<void> AuditSocket::open() {
  fd_.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_AUDIT));
  if (!fd_) return errnoError("audit netlink socket", errno);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = AUDIT_NLGRP_READLOG;
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int error = errno;
    fd_.reset();
    return errnoError("join the audit log multicast group (needs CAP_AUDIT_READ)", error);
  }
  // Room for bursts (a "log" policy logs every call of interpreter start-up). Best effort: only
  // root may exceed rmem_max, and an overflow is reported by lost(), not silently.
  int size = 8 << 20;
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  return {};
}

std::optional<std::string_view> AuditSocket::next() {
  // NLMSG_OK and friends are macros full of C casts; the walk is spelled out instead.
  constexpr size_t kAlign = NLMSG_ALIGNTO;
  constexpr size_t kHeader = (sizeof(nlmsghdr) + kAlign - 1) & ~(kAlign - 1);
  for (;;) {
    while (offset_ + kHeader <= length_) {
      nlmsghdr h;
      std::memcpy(&h, buffer_ + offset_, sizeof h);
      if (h.nlmsg_len < kHeader || h.nlmsg_len > length_ - offset_) {
        offset_ = length_;  // malformed: drop the rest of this datagram
        break;
      }
      size_t at = offset_;
      offset_ += std::min<size_t>((h.nlmsg_len + kAlign - 1) & ~(kAlign - 1), length_ - offset_);
      if (h.nlmsg_type == AUDIT_SECCOMP) {
        return std::string_view(buffer_ + at + kHeader, h.nlmsg_len - kHeader);
      }
    }
    if (!fd_) return std::nullopt;
    ssize_t n = ::recv(fd_.get(), buffer_, sizeof buffer_, 0);
    if (n < 0 && errno == ENOBUFS) {
      lost_ = true;  // the socket overflowed: some records are gone
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      length_ = offset_ = 0;
      return std::nullopt;
    }
    length_ = static_cast<size_t>(n);
    offset_ = 0;
  }
}

// ---- the spawner's view ----

SeccompLog::SeccompLog() {
  auto opened = netlink_.open();
  if (opened) {
    source_ = Source::kNetlink;
    kills_logged_ = auditBootEnabled() && killsLogged();
    return;
  }
  kmsg_.reset(::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!kmsg_) {
    reason_ =
        opened.error().detail() + "; /dev/kmsg cannot be read either: " + std::strerror(errno);
    return;
  }
  source_ = Source::kKmsg;
  // Records from before this spawner started are not about its jobs.
  ::lseek(kmsg_.get(), 0, SEEK_END);
}

int SeccompLog::fd() const noexcept {
  switch (source_) {
    case Source::kNetlink:
      return netlink_.fd();
    case Source::kKmsg:
      return kmsg_.get();
    case Source::kNone:
      break;
  }
  return -1;
}

void SeccompLog::keep(const SeccompRecord& r, const std::function<bool(pid_t)>& wanted) {
  if (r.signal == 0) return;  // the call was allowed (logged only), nothing was killed
  if (!wanted(r.pid)) return;
  recent_.push_back(r);
  if (recent_.size() > kMaxRecent) recent_.pop_front();
}

void SeccompLog::drain(const std::function<bool(pid_t)>& wanted) {
  auto sink = [&](const SeccompRecord& r) { keep(r, wanted); };
  if (source_ == Source::kNetlink) {
    netlink_.drain(sink, kMaxPerDrain);
    return;
  }
  if (source_ != Source::kKmsg) return;
  char buf[8192];
  for (size_t records = 0; records < kMaxPerDrain;) {
    ssize_t n = ::read(kmsg_.get(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EPIPE)) continue;  // EPIPE: records were overwritten
    if (n <= 0) return;
    ++records;
    if (auto r = parseKmsgRecord(std::string_view(buf, static_cast<size_t>(n)))) sink(*r);
  }
}

void SeccompLog::forget(pid_t pid) {
  std::erase_if(recent_, [pid](const SeccompRecord& r) { return r.pid == pid; });
}

std::optional<std::string> SeccompLog::takeName(pid_t pid) {
  for (auto it = recent_.begin(); it != recent_.end(); ++it) {
    if (it->pid == pid) {
      std::string name = syscallName(it->arch, it->syscall);
      recent_.erase(it);
      return name;
    }
  }
  return std::nullopt;
}

std::string SeccompLog::unknownName() const {
  if (source_ == Source::kNone) return "forbidden system call (name unknown: " + reason_ + ")";
  if (source_ == Source::kKmsg) {
    return "forbidden system call (name unknown: no seccomp record for the job reached "
           "/dev/kmsg, where the kernel rate-limits them; run pyrund as root to read the audit "
           "socket instead)";
  }
  return "forbidden system call (name unknown: the kernel sent no seccomp audit record for the "
         "job; is the kernel built with CONFIG_AUDIT?)";
}

}  // namespace pyrun::sandbox
