// Naming the system call that the seccomp filter killed a job for: the kernel's audit record of
// the kill (type=1326, with the host pid and the syscall number) read from /dev/kmsg by the
// spawner. Only root may read it; elsewhere the name stays unknown and the verdict says why.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "common/fd.h"

namespace pyrun::sandbox {

struct SeccompRecord {
  pid_t pid = 0;      // host pid of the killed process
  uint32_t arch = 0;  // AUDIT_ARCH_* of the call
  int syscall = -1;
};

// Parses one /dev/kmsg record ("6,123,456,-;audit: type=1326 ... pid=N ... arch=c000003e
// syscall=101 ..."). nullopt for anything else, including seccomp records of allowed calls
// (SECCOMP_RET_LOG has no sig=).
std::optional<SeccompRecord> parseSeccompRecord(std::string_view record);

// "ptrace" for x86_64's 101; "syscall 999 (unknown on this architecture)" when libseccomp cannot
// name it; other ABIs get their name as well ("socketcall (x86)").
std::string syscallName(uint32_t arch, int syscall);

class SeccompLog {
 public:
  // Opens /dev/kmsg non-blocking, positioned at its end (older records are not ours). When it
  // cannot be opened, unavailableReason() says why.
  SeccompLog();
  bool available() const noexcept { return fd_.valid(); }
  const std::string& unavailableReason() const noexcept { return reason_; }

  // The name of the call that killed host pid `pid`, or a sentence starting "forbidden system
  // call (name unknown: " saying why not. Waits up to max_wait_ms for the record, because the
  // kernel prints audit records from a kernel thread after the kill.
  std::string nameFor(pid_t pid, int max_wait_ms = 1000);

 private:
  void drain();

  UniqueFd fd_;
  std::string reason_;
  std::deque<SeccompRecord> recent_;  // records read while looking for another job's
};

}  // namespace pyrun::sandbox
