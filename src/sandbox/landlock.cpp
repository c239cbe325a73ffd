// Landlock rulesets: built in the spawner from O_PATH descriptors, enforced in the child.
#include "sandbox/landlock.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/log.h"

// Debian 12's <linux/landlock.h> stops at ABI 2 and glibc 2.36 has no wrappers: the UAPI values
// (stable by the kernel's ABI promise) are spelled out here, up to ABI 7.
#ifndef __NR_landlock_create_ruleset
#if defined(__x86_64__) || defined(__aarch64__)
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#else
#error "Landlock syscall numbers are not known for this architecture"
#endif
#endif

namespace pyrun::sandbox {
namespace {

constexpr uint32_t kCreateRulesetVersion = 1u << 0;
constexpr int kRulePathBeneath = 1;
// No port rules are added: allow_tcp leaves TCP unhandled instead of granting ports one by one.
[[maybe_unused]] constexpr int kRuleNetPort = 2;

// Access rights, with the ABI that introduced them.
constexpr uint64_t kFsExecute = 1ull << 0;                // 1
constexpr uint64_t kFsWriteFile = 1ull << 1;              // 1
constexpr uint64_t kFsReadFile = 1ull << 2;               // 1
constexpr uint64_t kFsReadDir = 1ull << 3;                // 1
constexpr uint64_t kFsRemoveDir = 1ull << 4;              // 1
constexpr uint64_t kFsRemoveFile = 1ull << 5;             // 1
constexpr uint64_t kFsMakeChar = 1ull << 6;               // 1
constexpr uint64_t kFsMakeDir = 1ull << 7;                // 1
constexpr uint64_t kFsMakeReg = 1ull << 8;                // 1
constexpr uint64_t kFsMakeSock = 1ull << 9;               // 1
constexpr uint64_t kFsMakeFifo = 1ull << 10;              // 1
constexpr uint64_t kFsMakeBlock = 1ull << 11;             // 1
constexpr uint64_t kFsMakeSym = 1ull << 12;               // 1
constexpr uint64_t kFsRefer = 1ull << 13;                 // 2
constexpr uint64_t kFsTruncate = 1ull << 14;              // 3
constexpr uint64_t kFsIoctlDev = 1ull << 15;              // 5
constexpr uint64_t kNetBindTcp = 1ull << 0;               // 4
constexpr uint64_t kNetConnectTcp = 1ull << 1;            // 4
constexpr uint64_t kScopeAbstractUnixSocket = 1ull << 0;  // 6
constexpr uint64_t kScopeSignal = 1ull << 1;              // 6

constexpr uint64_t kFsAbi1 = (kFsMakeSym << 1) - 1;

// Rights that make sense on a file (the kernel rejects directory rights on a non-directory).
constexpr uint64_t kFsFileRights =
    kFsExecute | kFsWriteFile | kFsReadFile | kFsTruncate | kFsIoctlDev;

struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;  // ABI 4
  uint64_t scoped;              // ABI 6
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

uint64_t fsRightsOf(int abi) {
  uint64_t rights = kFsAbi1;
  if (abi >= 2) rights |= kFsRefer;
  if (abi >= 3) rights |= kFsTruncate;
  if (abi >= 5) rights |= kFsIoctlDev;
  return rights;
}

uint64_t rightsFor(LandlockAccess access, int abi) {
  switch (access) {
    case LandlockAccess::kReadOnly:
      return kFsExecute | kFsReadFile | kFsReadDir;
    case LandlockAccess::kReadOnlyNoExecute:
      return kFsReadFile | kFsReadDir;
    case LandlockAccess::kListOnly:
      return kFsReadDir;
    case LandlockAccess::kTerminal:
      // The job's own devpts instance: reopening its terminal (/dev/tty) or making a pty with
      // /dev/ptmx needs ioctls on the device (IOCTL_DEV, ABI 5); seccomp limits which.
      return kFsReadFile | kFsWriteFile | kFsReadDir | (abi >= 5 ? kFsIoctlDev : 0);
    case LandlockAccess::kReadWrite:
      // Device nodes cannot be made in the working directory (mknod would need a capability
      // anyway, and IOCTL_DEV only concerns device files, which the working directory must not
      // hold). Nothing written there can be executed: the job cannot drop a binary and run it.
      return fsRightsOf(abi) & ~(kFsMakeChar | kFsMakeBlock | kFsIoctlDev | kFsExecute);
  }
  return 0;
}

Error sandboxErrno(const std::string& what, int err) {
  return Error(Errc::kSandbox, what + ": " + std::strerror(err));
}

Result<void> addPathRule(int ruleset, const std::string& path, uint64_t rights,
                         std::vector<std::string>& missing) {
  if (path.empty() || path[0] != '/') {
    return Error(Errc::kInvalidArgument, "Landlock path '" + path + "' is not absolute");
  }
  // O_PATH: a handle on the inode without read permission on it; symlinks such as /lib -> usr/lib
  // resolve here, and the rule binds to the inode they point at.
  UniqueFd fd(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) {
      missing.push_back(path);
      return {};
    }
    return sandboxErrno("open " + path + " for a Landlock rule", errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return sandboxErrno("stat " + path, errno);
  if (!S_ISDIR(st.st_mode)) rights &= kFsFileRights;
  PathBeneathAttr attr{rights, fd.get()};
  if (::syscall(__NR_landlock_add_rule, ruleset, kRulePathBeneath, &attr, 0) != 0) {
    return sandboxErrno("Landlock rule for " + path, errno);
  }
  return {};
}

}  // namespace

int landlockAbi() noexcept {
  long abi = ::syscall(__NR_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

Result<LandlockRuleset> prepareLandlock(const std::vector<std::string>& read_only_paths,
                                        const std::vector<std::string>& read_write_paths,
                                        bool allow_tcp) {
  LandlockRuleset ruleset;
  long abi = ::syscall(__NR_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  if (abi < 0) {
    int err = errno;
    // ENOSYS: not built in; EOPNOTSUPP: built in but not enabled (lsm= on the kernel command line).
    if (err != ENOSYS && err != EOPNOTSUPP) return sandboxErrno("query the Landlock ABI", err);
    static std::atomic<bool> logged{false};
    if (!logged.exchange(true)) {
      PYRUN_LOG(kWarning) << "the kernel has no Landlock (" << std::strerror(err)
                          << "): jobs are confined by namespaces, mounts and seccomp only";
    }
    return ruleset;
  }
  ruleset.abi_ = static_cast<int>(abi);
  const uint64_t fs = fsRightsOf(ruleset.abi_);
  RulesetAttr attr{fs, 0, 0};
  // Handling TCP rights without any port rule denies every TCP bind and connect.
  if (ruleset.abi_ >= 4 && !allow_tcp) {
    attr.handled_access_net = kNetBindTcp | kNetConnectTcp;
    ruleset.restricts_tcp_ = true;
  }
  // The job could otherwise reach the host's abstract unix sockets (outside every file system
  // rule) and signal processes of its uid outside the job.
  if (ruleset.abi_ >= 6) {
    attr.scoped = kScopeAbstractUnixSocket | kScopeSignal;
    ruleset.scoped_ = true;
  }
  // Older kernels take a shorter struct: pass only the fields their ABI knows.
  size_t size = ruleset.abi_ >= 6   ? sizeof attr
                : ruleset.abi_ >= 4 ? offsetof(RulesetAttr, scoped)
                                    : offsetof(RulesetAttr, handled_access_net);
  long fd = ::syscall(__NR_landlock_create_ruleset, &attr, size, 0);
  if (fd < 0) return sandboxErrno("create the Landlock ruleset", errno);
  ruleset.fd_.reset(static_cast<int>(fd));  // the kernel makes it close-on-exec

  const uint64_t read_only = rightsFor(LandlockAccess::kReadOnly, ruleset.abi_);
  const uint64_t read_write = rightsFor(LandlockAccess::kReadWrite, ruleset.abi_);
  for (const auto& path : read_only_paths) {
    if (auto r = addPathRule(ruleset.fd(), path, read_only, ruleset.missing_); !r) return r.error();
  }
  for (const auto& path : read_write_paths) {
    if (auto r = addPathRule(ruleset.fd(), path, read_write, ruleset.missing_); !r) {
      return r.error();
    }
  }
  for (const auto& path : ruleset.missing_) {
    PYRUN_LOG(kDebug) << "Landlock: " << path << " does not exist on this host; no rule for it";
  }
  return ruleset;
}

int addLandlockRuleInChild(int ruleset_fd, int abi, const char* path,
                           LandlockAccess access) noexcept {
  if (ruleset_fd < 0) return 0;
  int fd = ::open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  PathBeneathAttr attr{rightsFor(access, abi), fd};
  int err = 0;
  if (::syscall(__NR_landlock_add_rule, ruleset_fd, kRulePathBeneath, &attr, 0) != 0) err = errno;
  ::close(fd);
  return err;
}

int applyLandlock(int ruleset_fd) noexcept {
  if (ruleset_fd < 0) return 0;
  if (::syscall(__NR_landlock_restrict_self, ruleset_fd, 0) != 0) return errno;
  return 0;
}

}  // namespace pyrun::sandbox
