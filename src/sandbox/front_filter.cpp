// The front's seccomp filter (see front_filter.h).
#include "sandbox/front_filter.h"

#include <sched.h>
#include <seccomp.h>
#include <sys/prctl.h>

#include <cerrno>
#include <memory>

namespace pyrun::sandbox {
namespace {

constexpr const char* kDenied[] = {
    "execve",
    "execveat",
    "fork",
    "vfork",
#if !defined(__SANITIZE_ADDRESS__)
    // The leak checker of sanitizer builds ptraces the process's threads from a helper task at
    // exit; only those builds let ptrace through.
    "ptrace",
#endif
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "fspick",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "setgroups",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "personality",
    "quotactl",
    "syslog",
};

struct CtxFree {
  void operator()(scmp_filter_ctx ctx) const noexcept { seccomp_release(ctx); }
};

Error seccompError(const std::string& what, int rc) {
  return errnoError("front seccomp filter: " + what, -rc);
}

}  // namespace

std::vector<std::string> frontDeniedSyscalls() {
  std::vector<std::string> out(std::begin(kDenied), std::end(kDenied));
  out.push_back("clone (without CLONE_THREAD)");
  return out;
}

Result<void> confineFront() {
  // no_new_privs first: it is what lets an unprivileged process load a filter, and it makes sure
  // no later exec (were one possible) could gain privileges.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return errnoError("cannot set no_new_privs on the front", errno);
  }
  std::unique_ptr<void, CtxFree> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return Error(Errc::kIo, "front seccomp filter: seccomp_init failed");
  const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
  for (const char* name : kDenied) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture (e.g. fork on arm64)
    if (int rc = seccomp_rule_add(ctx.get(), deny, nr, 0); rc < 0) {
      return seccompError(std::string("cannot deny ") + name, rc);
    }
  }
  // Threads (CLONE_THREAD) are the only clones the front may make. Under AddressSanitizer the
  // leak checker clones a tracer task with CLONE_VM at exit; the sanitizer build lets CLONE_VM
  // through so that its report still runs (a CLONE_VM child shares, and so cannot escape, our
  // memory and filter).
#if defined(__SANITIZE_ADDRESS__)
  constexpr uint64_t kAllowedCloneBits = CLONE_THREAD | CLONE_VM;
#else
  constexpr uint64_t kAllowedCloneBits = CLONE_THREAD;
#endif
  if (int rc = seccomp_rule_add(ctx.get(), deny, SCMP_SYS(clone), 1,
                                SCMP_A0(SCMP_CMP_MASKED_EQ, kAllowedCloneBits, 0));
      rc < 0) {
    return seccompError("cannot restrict clone", rc);
  }
  if (int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0); rc < 0) {
    return seccompError("cannot answer ENOSYS to clone3", rc);
  }
  if (int rc = seccomp_load(ctx.get()); rc < 0) return seccompError("cannot load it", rc);
  return {};
}

}  // namespace pyrun::sandbox
