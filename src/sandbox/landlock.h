// Landlock: the job's file system view narrowed to read-only system paths and a read-write working
// directory, TCP bind/connect denied (ABI >= 4) and abstract unix sockets and signals scoped to the
// job (ABI >= 6). The ruleset is built in the spawner; the child only enforces it.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"

namespace pyrun::sandbox {

// The running kernel's Landlock ABI version: 0 when Landlock is not built in or not enabled.
int landlockAbi() noexcept;

// A ruleset ready for applyLandlock(). Without kernel support it holds no descriptor and
// applyLandlock() does nothing (the log said so once).
class LandlockRuleset {
 public:
  LandlockRuleset() = default;
  // -1 when the kernel has no Landlock. Close-on-exec: it never reaches the job's program.
  int fd() const noexcept { return fd_.get(); }
  int abi() const noexcept { return abi_; }
  bool enforced() const noexcept { return fd_.valid(); }
  bool restrictsTcp() const noexcept { return restricts_tcp_; }
  bool scopesSignalsAndAbstractSockets() const noexcept { return scoped_; }
  // Paths that were asked for but do not exist on this host (e.g. /lib64 on arm64): no rule.
  const std::vector<std::string>& missingPaths() const noexcept { return missing_; }

 private:
  friend Result<LandlockRuleset> prepareLandlock(const std::vector<std::string>&,
                                                 const std::vector<std::string>&, bool);
  UniqueFd fd_;
  int abi_ = 0;
  bool restricts_tcp_ = false;
  bool scoped_ = false;
  std::vector<std::string> missing_;
};

// Builds the ruleset in the parent: every file system access right the kernel's ABI knows is
// handled; read_only_paths get read, list and execute, read_write_paths everything but execute
// and device creation; with ABI >= 4 and !allow_tcp all TCP bind and connect is denied; with ABI >=
// 6 abstract unix sockets and signals cannot leave the job. Paths must be absolute; ones that do
// not exist are skipped (missingPaths()). Errors (kSandbox, naming the path or step) when Landlock
// exists but a step fails: the caller fails the job rather than run it with less confinement.
Result<LandlockRuleset> prepareLandlock(const std::vector<std::string>& read_only_paths,
                                        const std::vector<std::string>& read_write_paths,
                                        bool allow_tcp);

// Rights of a path rule: what prepareLandlock grants system paths and the working directory.
enum class LandlockAccess {
  kReadOnly,           // read, list, execute
  kReadOnlyNoExecute,  // read, list (e.g. /proc)
  kReadWrite,          // everything but execute and device creation
  kListOnly,           // list the directory; its entries need rules of their own (e.g. /dev)
  kTerminal,           // read, write, list and terminal ioctls: the job's own /dev/pts
};

// Adds a path-beneath rule to a ruleset that is not enforced yet, from the child: for paths that
// exist only in the job's own mount namespace (its private /tmp, /dev/shm, /proc). abi is the
// ruleset's (LandlockRuleset::abi()); path must be a directory. No allocation, no exceptions, no
// logging. Returns 0 or errno; ruleset_fd -1 is a no-op.
int addLandlockRuleInChild(int ruleset_fd, int abi, const char* path,
                           LandlockAccess access) noexcept;

// Enforces the ruleset on the calling thread and everything it later forks or execs
// (landlock_restrict_self). Call after PR_SET_NO_NEW_PRIVS (else EPERM without CAP_SYS_ADMIN) and
// before loading seccomp. No allocation, no exceptions, no logging: callable between fork and
// exec. ruleset_fd -1 (no kernel support) is a no-op. Returns 0 or errno.
int applyLandlock(int ruleset_fd) noexcept;

}  // namespace pyrun::sandbox
