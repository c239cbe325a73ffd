// Compiling a policy's seccomp section into a BPF program (in the spawner, once per policy load)
// and loading that program in the job's child (after fork, without allocating).
#pragma once

#include <linux/filter.h>

#include <cstddef>
#include <vector>

#include "common/error.h"
#include "policy/policy.h"

namespace pyrun::sandbox {

// A classic BPF program for seccomp(SECCOMP_SET_MODE_FILTER), native architecture only.
class SeccompProgram {
 public:
  SeccompProgram() = default;
  explicit SeccompProgram(std::vector<sock_filter> instructions)
      : instructions_(std::move(instructions)) {}

  const std::vector<sock_filter>& instructions() const noexcept { return instructions_; }
  size_t size() const noexcept { return instructions_.size(); }
  bool empty() const noexcept { return instructions_.empty(); }

 private:
  std::vector<sock_filter> instructions_;
};

// Builds the filter: the policy's default action for everything not listed; its allow list; its
// rules (32-bit arguments compared on their low half); ENOSYS for the syscalls in seccomp.enosys;
// and kill_process for any other ABI (x86 and x32 on an x86_64 host), so a job cannot step around
// the filter by switching syscall tables. Names that do not exist on this architecture are
// skipped. Errors (kSandbox) name the syscall libseccomp refused.
Result<SeccompProgram> compileSeccompFilter(const policy::Seccomp& seccomp);

// Installs the program in the calling thread with seccomp(2); no_new_privs must already be set
// (or the caller must hold CAP_SYS_ADMIN). Async-signal-safe: no allocation, for use between fork
// and exec. Returns 0, or the errno of the failure.
int loadSeccompProgram(const SeccompProgram& program) noexcept;

}  // namespace pyrun::sandbox
