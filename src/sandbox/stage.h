// The confinement steps of a job (docs/SANDBOX.md), the sub-steps of the stages that have several,
// and one table that names each stage and turns a failure record into a sentence.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "sandbox/job_root.h"

namespace pyrun::sandbox {

// A confinement step; its name is JobFailed::stage. The numbers travel in ReportRecord::stage
// between the job's init and the spawner (the same binary): they only have to agree within it.
enum class Stage : int32_t {
  kSetsid = 1,
  kParentDeathSignal,
  kStdio,
  kParentGone,
  kUserNamespace,  // arg: UserNamespaceStep
  kSignals,
  kFork,
  kCloseFds,
  kRlimit,  // arg: the RLIMIT_ resource
  kSetgroups,
  kSetgid,  // arg: the gid
  kSetuid,  // arg: the uid
  kCheckIds,
  kChdir,
  kNoNewPrivs,
  kExecve,
  kCgroup,        // joining the job's cgroup(s); arg: CgroupStep
  kMountPrivate,  // making the new mount namespace private (no propagation to or from the host)
  kRoot,          // the job's root: a tmpfs, or a clone of the policy's template (arg: RootStep)
  kMount,         // one MountStep (arg: its index)
  kHostname,      // the UTS namespace's host name
  kPivotRoot,     // arg: PivotRootStep
  kLandlock,      // arg: LandlockStep
  kSeccomp,       // loading the seccomp program
  kNetwork,       // bringing the namespace's loopback up (network: loopback)
  kTerminal,      // the job's pseudo-terminal (arg: TerminalStep)
};

// The sub-steps of the stages that have several (ReportRecord::arg).
enum class UserNamespaceStep : int32_t { kSetgroups = 0, kUidMap, kGidMap, kDumpable };
enum class RootStep : int32_t { kTmpfs = 0, kCloneTemplate, kAttachTemplate, kEnter };
enum class PivotRootStep : int32_t { kPivot = 1, kDetach, kChdir, kReadOnly };
enum class LandlockStep : int32_t { kJobMountRules = 1, kEnforce };
enum class CgroupStep : int32_t { kJoin = 0, kNamespace };
enum class TerminalStep : int32_t {
  kOpen = 1,
  kUnlock,
  kNumber,
  kSlave,
  kSize,
  kOwner,
  kControlling
};

// What a failure's sentence may name, from the spawner's view of the job.
struct StageContext {
  std::string_view interpreter;       // execve
  std::string_view root_mount_point;  // the host path the job's root is mounted on
  std::string_view policy;            // whose seccomp filter
  std::span<const MountStep> mounts;  // the job's mount steps, indexed by kMount's arg
};

// The stage's name as JobFailed::stage carries it ("pivot-root"); "unknown" for a number outside
// the enum. No allocation.
const char* stageName(Stage stage) noexcept;

// The failed step and the error, as JobFailed::detail tells them:
// "execve /usr/bin/python3: No such file or directory".
std::string describeStageFailure(Stage stage, int32_t arg, int error, const StageContext& context);

}  // namespace pyrun::sandbox
