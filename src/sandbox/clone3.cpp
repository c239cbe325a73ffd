// clone3 with the kernel's struct clone_args, and the probe for CLONE_INTO_CGROUP.
#include "sandbox/clone3.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace pyrun::sandbox {
namespace {

// struct clone_args of <linux/sched.h> up to its cgroup field (CLONE_ARGS_SIZE_VER2, Linux 5.7),
// declared here because that header clashes with glibc's <sched.h>. Kernels before 5.7 accept the
// larger struct as long as the fields they do not know are zero: without CLONE_INTO_CGROUP the
// call works on every kernel that has clone3.
struct CloneArgs {
  uint64_t flags = 0;
  uint64_t pidfd = 0;
  uint64_t child_tid = 0;
  uint64_t parent_tid = 0;
  uint64_t exit_signal = 0;
  uint64_t stack = 0;
  uint64_t stack_size = 0;
  uint64_t tls = 0;
  uint64_t set_tid = 0;
  uint64_t set_tid_size = 0;
  uint64_t cgroup = 0;
};
static_assert(sizeof(CloneArgs) == 88);

constexpr uint64_t kClonePidfd = 0x00001000;
constexpr uint64_t kCloneIntoCgroup = 0x200000000ULL;

int probeCloneIntoCgroup() noexcept {
  // "/" is a directory of no cgroup file system: a kernel that knows CLONE_INTO_CGROUP looks the
  // descriptor up before it lets the child run, refuses it (EBADF) and undoes the copy. An older
  // one refuses the struct's unknown cgroup field (E2BIG) or the flag (EINVAL) first.
  int fd = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno != 0 ? errno : EBADF;
  pid_t pid = cloneProcess({.cgroup_fd = fd});
  int err = errno;
  ::close(fd);
  if (pid == 0) _exit(0);  // no kernel does this; a child of the probe must not run on
  if (pid > 0) {
    // Nor this: the flag was taken but not honoured, which is no support to rely on.
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return EINVAL;
  }
  return err == EBADF ? 0 : err;
}

}  // namespace

pid_t cloneProcess(const CloneRequest& request) noexcept {
  CloneArgs args;
  args.flags = request.namespaces;
  if (request.pidfd != nullptr) {
    args.flags |= kClonePidfd;
    args.pidfd = reinterpret_cast<uintptr_t>(request.pidfd);
  }
  if (request.cgroup_fd >= 0) {
    args.flags |= kCloneIntoCgroup;
    args.cgroup = static_cast<uint64_t>(request.cgroup_fd);
  }
  args.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid >= 0 || errno != ENOSYS || request.cgroup_fd >= 0) return static_cast<pid_t>(pid);
  // No clone3: a kernel before 5.3, or a seccomp filter that hides it because it cannot see its
  // flags, which is what systemd's RestrictNamespaces= does to the packaged pyrund.service. The
  // older clone takes the same namespace flags (which such a filter can check) and CLONE_PIDFD,
  // storing the pidfd where its parent_tid argument points. Never for CLONE_INTO_CGROUP, which
  // clone lacks: that caller fails instead (the start-up probe saw ENOSYS and did not ask).
  const unsigned long flags =
      request.namespaces | SIGCHLD | (request.pidfd != nullptr ? kClonePidfd : 0);
#if defined(__s390__) || defined(__CRIS__)
  // CLONE_BACKWARDS2: the stack comes before the flags.
  return static_cast<pid_t>(::syscall(SYS_clone, nullptr, flags, request.pidfd, nullptr, 0));
#else
  // x86-64 and the CLONE_BACKWARDS architectures (arm64, ppc64el, ...) agree on the first three
  // arguments; the last two (child_tid, tls) are unused here.
  return static_cast<pid_t>(::syscall(SYS_clone, flags, nullptr, request.pidfd, nullptr, 0));
#endif
}

int cloneIntoCgroupSupport() noexcept {
  static const int support = probeCloneIntoCgroup();
  return support;
}

}  // namespace pyrun::sandbox
