// Internal to the cgroup implementation (cgroup.cpp, cgroup_v1.cpp, cgroup_v2.cpp): the backend
// interface that each cgroup version implements, and the control-file helpers they share.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "sandbox/cgroup.h"

namespace pyrun::sandbox {

// Which files a hierarchy's job directory carries limits in (v1: one controller per hierarchy).
enum class Controller { kUnified, kMemory, kPids, kCpu, kFreezer };

struct Hierarchy {
  Controller controller;
  std::string base;  // <cgroup dir>/<subtree>
};

// The detected setup. Immutable once built; shared by the Cgroups and every JobCgroup. A job's
// `paths` are its directories, paths[i] in hierarchies[i] (empty when absent: a partial leftover).
class CgroupBackend {
 public:
  virtual ~CgroupBackend() = default;

  CgroupVersion version = CgroupVersion::kNone;
  std::string description;
  std::vector<Hierarchy> hierarchies;  // v2: one kUnified entry
  bool memory = false, pids = false, cpu = false;
  // v2 on Linux 5.7+: a job's first process is cloned into its cgroup (CLONE_INTO_CGROUP).
  bool clone_into = false;

  // Writes the limits into a new job's directories; 0 in a field means "not limited".
  virtual Result<void> setLimits(const std::vector<std::string>& paths,
                                 const CgroupLimits& limits) const = 0;
  // Freezes the job (returning once every task has stopped) or thaws it; does nothing without a
  // freezer.
  virtual Result<void> setFrozen(const std::vector<std::string>& paths, bool frozen) const = 0;
  // Kills every task of the job in one atomic step where the kernel can; false when it cannot,
  // and the caller kills pid by pid.
  virtual Result<bool> killAtOnce(const std::vector<std::string>& /*paths*/) const { return false; }
  // The file holding the job's current memory use (sampled for the peak where the kernel keeps
  // none).
  virtual std::string memoryCurrentFile(const std::vector<std::string>& paths) const = 0;
  // Peak memory, OOM kill and pids-limit hit of the job. peak_known false: the kernel keeps no
  // peak, the caller uses its samples.
  virtual Result<CgroupStats> stats(const std::vector<std::string>& paths,
                                    bool& peak_known) const = 0;

  // The job's directory in the hierarchy of controller c, or "" when there is none.
  std::string pathOf(const std::vector<std::string>& paths, Controller c) const;
};

namespace cgroupfs {

using Clock = std::chrono::steady_clock;

// How long killAll and remove wait for the kernel: SIGKILLed tasks leave within milliseconds unless
// stuck in uninterruptible I/O, which these bounds turn into an error instead of a hang.
inline constexpr auto kDrainTimeout = std::chrono::seconds(10);
inline constexpr auto kRemoveTimeout = std::chrono::seconds(5);
inline constexpr uint64_t kCpuPeriodUs = 100000;

bool exists(const std::string& path);
Error sandboxError(std::string detail);
Error sandboxErrno(const std::string& what, int err);
// cgroup files are small and their size is reported as 0 (or 4096): read until end of file.
Result<std::string> readSmall(const std::string& path);
// One write(2): the kernel parses each write to a control file as a whole.
Result<void> writeControl(const std::string& path, std::string_view value);
// "key value" lines (memory.events, pids.events, memory.oom_control, cgroup.events).
std::optional<uint64_t> keyedValue(std::string_view text, std::string_view key);
Result<uint64_t> readNumber(const std::string& path);
Result<std::vector<pid_t>> readPids(const std::string& dir);
std::set<std::string> splitWords(std::string_view text, char sep);
std::string trim(std::string s);
Result<void> makeDir(const std::string& path);
// Sleeps for step, then doubles it (up to 20 ms).
void pause(Clock::duration& step);

// Waits until `done` returns true (or an error), polling with a short, growing pause.
template <class Done>
Result<void> waitUntil(Done done, Clock::duration timeout, const std::string& what) {
  auto deadline = Clock::now() + timeout;
  Clock::duration step = std::chrono::milliseconds(1);
  for (;;) {
    Result<bool> d = done();
    if (!d) return d.error();
    if (*d) return {};
    if (Clock::now() > deadline) return sandboxError(what);
    pause(step);
  }
}

// A cgroup file system mounted in this process's view.
struct Mount {
  std::string root;   // the cgroup path shown at the mount point
  std::string point;  // where it is mounted
  bool v2 = false;
  std::set<std::string> controllers;  // v1: from the super options
};
// Our cgroup's directory in a mount, or nullopt when the mount does not show it.
std::optional<std::string> dirInMount(const Mount& m, const std::string& own_path);

}  // namespace cgroupfs

// own: this process's cgroups, keyed by controller ("" for v2). Errors (kSandbox) say why the
// version cannot be used here.
Result<std::shared_ptr<CgroupBackend>> detectCgroupV1(const std::vector<cgroupfs::Mount>& mounts,
                                                      const std::map<std::string, std::string>& own,
                                                      const std::string& subtree);
Result<std::shared_ptr<CgroupBackend>> detectCgroupV2(const std::vector<cgroupfs::Mount>& mounts,
                                                      const std::map<std::string, std::string>& own,
                                                      const std::string& subtree);
// pyrun's subtree in the v2 cgroup `dir` (own: `dir` is the cgroup this process is in, whose
// processes may be moved to a leaf so that controllers can be enabled).
// need_memory_and_pids is false for openCgroupV2At (tests and tools) only.
Result<std::shared_ptr<CgroupBackend>> buildCgroupV2(const std::string& dir,
                                                     const std::string& subtree,
                                                     bool need_memory_and_pids, bool own,
                                                     const CgroupV2TestOptions& options);

}  // namespace pyrun::sandbox
