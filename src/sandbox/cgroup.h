// Job cgroups: memory (swap included), process count and CPU limits, one action that kills every
// process of a job, and end-of-job statistics, over cgroup v1 or v2 behind one interface. Used by
// the spawner (single-threaded, privileged); only joinCgroup() runs in the child, and only where
// the child cannot be cloned into its cgroup (JobCgroup::cloneIntoFd). docs/CGROUPS.md explains
// how the host must be set up.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"

namespace pyrun::sandbox {

enum class CgroupVersion { kNone, kV1, kV2 };
const char* cgroupVersionName(CgroupVersion version) noexcept;

struct CgroupOptions {
  // Name of pyrun's subtree below the spawner's own cgroup (or below the root when that one is
  // not usable). Each pyrund on a host needs its own: startup cleanup empties it.
  std::string subtree = "pyrun";
  // kNone: never use cgroups. Otherwise the first usable of: the given version, then the other.
  CgroupVersion prefer = CgroupVersion::kV2;
  // Fail detectCgroups() instead of falling back to rlimits alone.
  bool require = false;
};

// openCgroupV2At's choices (tests and tools).
struct CgroupV2TestOptions {
  // false: killAll takes the freeze-and-kill path of kernels older than 5.14.
  bool use_cgroup_kill = true;
  // false: jobs join their cgroup after the clone, as on kernels older than 5.7 (true: they are
  // cloned into it where this kernel can, as detectCgroups decides).
  bool clone_into_cgroup = true;
};

// Limits of one job; 0 leaves that limit unset.
struct CgroupLimits {
  uint64_t memory_bytes = 0;    // resident memory plus swap
  uint32_t processes = 0;       // pids.max: tasks (threads included) alive at once
  uint32_t cpu_millicores = 0;  // CPU bandwidth: 1000 = one core
};

struct CgroupStats {
  uint64_t peak_memory_bytes = 0;  // 0 when the memory controller is not in use
  bool oom_killed = false;         // the kernel's OOM killer killed a process of the job
  bool pids_limit_hit = false;     // a fork or clone failed because of pids.max
};

// What the child needs to join its job's cgroup(s): descriptors of the cgroup.procs files, opened
// by the parent before fork (one per v1 hierarchy, one on v2). Plain data: safe after fork.
struct CgroupJoin {
  static constexpr int kMaxFds = 4;
  int fds[kMaxFds] = {-1, -1, -1, -1};
  int count = 0;
};

// Moves the calling process into the job's cgroup(s) by writing "0" to each descriptor. No
// allocation, no exceptions, no logging: callable between fork and exec. Returns 0, or the errno of
// the first failing write. Call it in the job's first process, before it forks, so that every
// later process of the job is born inside.
int joinCgroup(const CgroupJoin& join) noexcept;

class CgroupBackend;

// One job's cgroup(s). Move-only; the destructor kills what is left and removes the cgroup(s)
// (errors are logged), so a job's cgroup never outlives its owner.
class JobCgroup {
 public:
  JobCgroup(JobCgroup&&) noexcept;
  JobCgroup& operator=(JobCgroup&&) noexcept;
  JobCgroup(const JobCgroup&) = delete;
  JobCgroup& operator=(const JobCgroup&) = delete;
  ~JobCgroup();

  // Valid until the JobCgroup is destroyed or removed.
  const CgroupJoin& join() const noexcept { return join_; }
  // The job's cgroup v2 directory (O_PATH), for clone3's CLONE_INTO_CGROUP (cloneProcess): a
  // process cloned with it is born inside, and never runs a moment outside the job's limits. -1
  // where the setup cannot (v1, a kernel before 5.7): the job's first process joins with
  // joinCgroup(join()) instead. Valid until the JobCgroup is destroyed or removed.
  int cloneIntoFd() const noexcept { return clone_into_.get(); }
  // The job's directory in each hierarchy (for logs and tests).
  const std::vector<std::string>& paths() const noexcept { return paths_; }

  // Host pids of the processes in the job's cgroup.
  Result<std::vector<pid_t>> pids() const;
  // Records the current memory use as a peak candidate (hosts without memory.peak).
  void sampleMemory();
  // SIGKILLs every process in the cgroup (also those that setsid'd or double-forked) and returns
  // once the cgroup is empty. v2: cgroup.kill; otherwise freeze, kill every listed pid, thaw,
  // repeated until empty. Errors name the file that failed.
  Result<void> killAll();
  // Writes new limits (0 in a field: left as it is). The warm pool lowers a parked job's limits to
  // its client's at the hand-off; the caller never passes a higher value than the job has.
  Result<void> setLimits(const CgroupLimits& limits);
  // Peak memory, OOM kill, pids limit hit. Read before remove().
  Result<CgroupStats> stats();
  // killAll(), then removes the cgroup(s), retrying briefly while the kernel releases them.
  Result<void> remove();

 private:
  friend class Cgroups;
  JobCgroup(std::shared_ptr<const CgroupBackend> backend, std::vector<std::string> paths,
            std::vector<UniqueFd> procs, UniqueFd clone_into);
  void closeJoinFds() noexcept;

  std::shared_ptr<const CgroupBackend> backend_;
  std::vector<std::string> paths_;  // [0] is the primary (v2 dir, or v1 memory/pids/...)
  std::vector<UniqueFd> procs_;     // cgroup.procs descriptors, mirrored in join_
  CgroupJoin join_;
  UniqueFd clone_into_;  // cloneIntoFd()
  uint64_t sampled_peak_ = 0;
  bool removed_ = false;
};

// The host's cgroup setup, detected once when the spawner starts.
class Cgroups {
 public:
  Cgroups();  // kNone
  CgroupVersion version() const noexcept;
  bool usable() const noexcept { return version() != CgroupVersion::kNone; }
  // Why cgroups are not used (kNone), or where pyrun's subtree is, one line for the log.
  const std::string& description() const noexcept;
  // Which limits this setup enforces (a v1 host may lack cpu; the v2 test hook may lack all).
  bool hasMemory() const noexcept;
  bool hasPids() const noexcept;
  bool hasCpu() const noexcept;
  // Whether jobs are cloned straight into their cgroup (v2 on Linux 5.7+: CLONE_INTO_CGROUP), or
  // their first process joins it after the clone (v1, older kernels).
  bool clonesIntoCgroup() const noexcept;
  // pyrun's subtree directory in each hierarchy used (empty for kNone).
  std::vector<std::string> subtreeDirs() const;

  // Creates <subtree>/job-<id> in every hierarchy used, sets the limits and opens cgroup.procs
  // for joinCgroup() (and on v2 with clonesIntoCgroup() the directory, for cloneIntoFd()). Fails
  // (kSandbox; nothing is left behind) when any step fails, when a job cgroup of that id already
  // exists, when a limit is asked for whose controller is missing, or when cgroups are not usable:
  // the caller reports stage "cgroup".
  Result<JobCgroup> createJob(uint64_t job_id, const CgroupLimits& limits) const;
  // Kills the processes of every leftover <subtree>/job-* cgroup (a crashed run's) and removes
  // them. Returns how many were removed.
  Result<int> removeLeftovers() const;

 private:
  friend Result<Cgroups> detectCgroups(const CgroupOptions&);
  friend Result<Cgroups> openCgroupV2At(const std::string&, const std::string&,
                                        const CgroupV2TestOptions&);
  explicit Cgroups(std::shared_ptr<const CgroupBackend> backend);
  std::shared_ptr<const CgroupBackend> backend_;
};

// Finds a usable cgroup setup (see CgroupOptions::prefer): v2 with memory and pids enabled for us
// (a delegated subtree, or as root pyrun's own subtree under the root), else v1 with memory and
// pids hierarchies writable by us (cpu when mounted). Creates pyrun's subtree. When none is
// usable, logs once at warning level that only rlimits confine memory and process count, and why,
// and returns a kNone Cgroups; with options.require it fails instead.
Result<Cgroups> detectCgroups(const CgroupOptions& options = {});

// Tests and tools: a v2 backend whose subtree is <dir>/<subtree>, using whichever of the memory,
// pids and cpu controllers <dir> can enable for it (possibly none: then only join, clone into,
// kill and remove work, and limits are refused). detectCgroups never builds one without the
// memory and pids controllers.
Result<Cgroups> openCgroupV2At(const std::string& dir, const std::string& subtree,
                               const CgroupV2TestOptions& options = {});

}  // namespace pyrun::sandbox
