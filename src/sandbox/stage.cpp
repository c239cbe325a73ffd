// The one table of confinement stages: name and failure sentence of each.
#include "sandbox/stage.h"

#include <sys/resource.h>

#include <cstring>
#include <iterator>

namespace pyrun::sandbox {
namespace {

const char* rlimitName(int resource) {
  switch (resource) {
    case RLIMIT_CPU:
      return "RLIMIT_CPU";
    case RLIMIT_FSIZE:
      return "RLIMIT_FSIZE";
    case RLIMIT_NOFILE:
      return "RLIMIT_NOFILE";
    case RLIMIT_CORE:
      return "RLIMIT_CORE";
    case RLIMIT_AS:
      return "RLIMIT_AS";
    case RLIMIT_NPROC:
      return "RLIMIT_NPROC";
    default:
      return "an rlimit";
  }
}

std::string userNamespaceStep(const StageContext&, int32_t arg) {
  switch (static_cast<UserNamespaceStep>(arg)) {
    case UserNamespaceStep::kSetgroups:
      return "write /proc/self/setgroups";
    case UserNamespaceStep::kUidMap:
      return "write /proc/self/uid_map";
    case UserNamespaceStep::kGidMap:
      return "write /proc/self/gid_map";
    case UserNamespaceStep::kDumpable:
      break;
  }
  return "prctl PR_SET_DUMPABLE";
}

std::string pivotRootStep(const StageContext&, int32_t arg) {
  switch (static_cast<PivotRootStep>(arg)) {
    case PivotRootStep::kPivot:
      return "pivot_root into the job's root";
    case PivotRootStep::kDetach:
      return "detach the host's root";
    case PivotRootStep::kChdir:
      return "chdir / in the job's root";
    case PivotRootStep::kReadOnly:
      break;
  }
  return "make the job's root read-only";
}

std::string landlockStep(const StageContext&, int32_t arg) {
  return static_cast<LandlockStep>(arg) == LandlockStep::kJobMountRules
             ? "add Landlock rules for /job, /tmp, /dev/shm, /proc and /dev"
             : "enforce the Landlock ruleset";
}

std::string terminalStep(const StageContext&, int32_t arg) {
  switch (static_cast<TerminalStep>(arg)) {
    case TerminalStep::kOpen:
      return "open the job's /dev/ptmx";
    case TerminalStep::kUnlock:
      return "unlock the job's pseudo-terminal";
    case TerminalStep::kNumber:
      return "check that the job's terminal is /dev/pts/0";
    case TerminalStep::kSlave:
      return "open the job's terminal";
    case TerminalStep::kSize:
      return "set the job's terminal size";
    case TerminalStep::kOwner:
      return "give the job's terminal to the job's uid";
    case TerminalStep::kControlling:
      return "make the terminal the job's controlling terminal";
  }
  return "set up the job's terminal";
}

std::string rootStep(const StageContext& c, int32_t arg) {
  switch (static_cast<RootStep>(arg)) {
    case RootStep::kCloneTemplate:
      return "clone the policy's root template (open_tree)";
    case RootStep::kAttachTemplate:
      return "attach the clone of the root template on " + std::string(c.root_mount_point);
    case RootStep::kEnter:
      return "enter the job's root at " + std::string(c.root_mount_point);
    case RootStep::kTmpfs:
      break;
  }
  return "mount the job's root on " + std::string(c.root_mount_point);
}

std::string mountStep(const StageContext& c, int32_t arg) {
  return arg >= 0 && static_cast<size_t>(arg) < c.mounts.size()
             ? describeMountStep(c.mounts[static_cast<size_t>(arg)])
             : "a mount step";
}

struct StageInfo {
  Stage stage;
  const char* name;
  // The failed step, before ": <strerror>"; null: the stage's name says it.
  std::string (*describe)(const StageContext&, int32_t arg);
};

constexpr StageInfo kStages[] = {
    {Stage::kSetsid, "setsid", nullptr},
    {Stage::kParentDeathSignal, "pdeathsig", nullptr},
    {Stage::kStdio, "stdio", nullptr},
    {Stage::kParentGone, "parent", nullptr},
    {Stage::kUserNamespace, "userns", userNamespaceStep},
    {Stage::kSignals, "signals", nullptr},
    {Stage::kFork, "fork", nullptr},
    {Stage::kCloseFds, "close-fds", nullptr},
    {Stage::kRlimit, "rlimit",
     [](const StageContext&, int32_t arg) { return std::string("setrlimit ") + rlimitName(arg); }},
    {Stage::kSetgroups, "setgroups", nullptr},
    {Stage::kSetgid, "setgid",
     [](const StageContext&, int32_t arg) { return "setresgid " + std::to_string(arg); }},
    {Stage::kSetuid, "setuid",
     [](const StageContext&, int32_t arg) { return "setresuid " + std::to_string(arg); }},
    {Stage::kCheckIds, "check-ids",
     [](const StageContext&, int32_t) {
       return std::string("the job's uid and gid after the change");
     }},
    {Stage::kChdir, "chdir",
     [](const StageContext&, int32_t) { return std::string("chdir ") + kJobDirInRoot; }},
    {Stage::kNoNewPrivs, "no-new-privs", nullptr},
    {Stage::kExecve, "execve",
     [](const StageContext& c, int32_t) { return "execve " + std::string(c.interpreter); }},
    {Stage::kCgroup, "cgroup",
     [](const StageContext&, int32_t arg) {
       return std::string(arg == static_cast<int32_t>(CgroupStep::kNamespace)
                              ? "enter a cgroup namespace of the job's own"
                              : "join the job's cgroup");
     }},
    {Stage::kMountPrivate, "mount-private",
     [](const StageContext&, int32_t) {
       return std::string("make the job's mount namespace private");
     }},
    {Stage::kRoot, "root", rootStep},
    {Stage::kMount, "mount", mountStep},
    {Stage::kHostname, "hostname",
     [](const StageContext&, int32_t) { return std::string("set the job's host name"); }},
    {Stage::kPivotRoot, "pivot-root", pivotRootStep},
    {Stage::kLandlock, "landlock", landlockStep},
    {Stage::kSeccomp, "seccomp",
     [](const StageContext& c, int32_t) {
       return "load the seccomp filter of policy " + std::string(c.policy);
     }},
    {Stage::kNetwork, "network",
     [](const StageContext&, int32_t) {
       return std::string("bring up the job's loopback interface");
     }},
    {Stage::kTerminal, "terminal", terminalStep},
};

// Every stage has its row, at index stage - 1.
constexpr bool coversEveryStage() {
  for (size_t i = 0; i < std::size(kStages); ++i) {
    if (static_cast<size_t>(kStages[i].stage) != i + 1) return false;
  }
  return std::size(kStages) == static_cast<size_t>(Stage::kTerminal);
}
static_assert(coversEveryStage());

const StageInfo* find(Stage stage) noexcept {
  auto i = static_cast<size_t>(stage);
  return i >= 1 && i <= std::size(kStages) ? &kStages[i - 1] : nullptr;
}

}  // namespace

const char* stageName(Stage stage) noexcept {
  const StageInfo* info = find(stage);
  return info != nullptr ? info->name : "unknown";
}

std::string describeStageFailure(Stage stage, int32_t arg, int error, const StageContext& context) {
  const StageInfo* info = find(stage);
  std::string what = info == nullptr             ? std::string("unknown")
                     : info->describe == nullptr ? std::string(info->name)
                                                 : info->describe(context, arg);
  return what + ": " + std::strerror(error);
}

}  // namespace pyrun::sandbox
