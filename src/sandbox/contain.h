// The job's side of a spawn: the init that runs as pid 1 of the job's pid namespace, and the
// confinement of the interpreter process, step by step (see docs/SANDBOX.md). Everything here runs
// between fork and exec: no allocation, no exceptions, no logging; failures travel as fixed-size
// records over a pipe.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "common/stage_times.h"
#include "sandbox/cgroup.h"
#include "sandbox/job_root.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/spawner.h"
#include "sandbox/stage.h"

namespace pyrun::sandbox {

// What the job's init tells the spawner over the report socket (one record per datagram).
// kStamp records (the times of kRootBuilt, kConfined, kExec and kExit) come before the kStarted or
// kExited record they lead up to.
enum class ReportKind : int32_t { kStarted = 1, kFailed = 2, kExited = 3, kStamp = 4 };
struct ReportRecord {
  int32_t kind = 0;
  int32_t stage = 0;    // kFailed: the Stage; kStamp: the JobStage
  int32_t value = 0;    // kFailed: errno; kExited: the interpreter's wait status
  int32_t arg = 0;      // kFailed: the stage's sub-step or argument (stage.h), else 0
  uint64_t micros = 0;  // kStamp: stageClockMicros() when the stage was reached
};
static_assert(sizeof(ReportRecord) == 24);
// After its kExited record the init waits, at most this long, for the spawner's release (one byte
// on the same socket) before it exits: until then the job's namespaces, and so its /job, still
// exist. A spawner slow to read the records (a loaded host) would otherwise find /job gone when it
// opens it for the results at the kStarted record of a short job (spawner_job_end.cpp). The
// spawner sends the release as soon as it has what it needs (at kStarted, or at a parked job's
// hand-off), so the init normally finds it waiting and exits at once: no extra round trip at the
// end of every job.
constexpr int kExitAckTimeoutMs = 10'000;

// A MountStep as the child reads it: plain pointers into strings the spawner keeps.
struct ChildMount {
  MountKind kind = MountKind::kDir;
  const char* source = nullptr;
  const char* target = nullptr;
  const char* data = nullptr;
  uint32_t mode = 0755;
  bool writable = false;
  bool noexec = false;
  bool optional = false;
};

// Everything the job's processes need, prepared by the spawner before it clones: after the clone
// only these pointers are read.
struct ChildPlan {
  const char* interpreter = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  // The host working directory holding the files the spawner staged: the kJobFile mount steps
  // copy them from there into the job's /job (a tmpfs). Never mounted into the job.
  const char* workdir = nullptr;
  JobLimits limits;
  // RLIMIT_NPROC for the job's uid (as root: a uid of its own). With map_user it is set whatever
  // this says, on kernels that count processes per user namespace (5.14+), see contain.cpp.
  bool set_nproc = false;
  bool drop_to_job_ids = false;  // as root: become uid:gid
  uid_t uid = 0;
  gid_t gid = 0;
  bool map_user = false;  // unprivileged: map outer_uid/outer_gid onto themselves in the new userns
  uid_t outer_uid = 0;
  gid_t outer_gid = 0;
  int stdin_fd = -1;   // read end of the job's stdin pipe
  int stdout_fd = -1;  // write ends of stdout and stderr
  int stderr_fd = -1;
  int report_fd = -1;  // the init's end of the report socket (the other is the spawner's)
  // A parked job (the warm pool): the read end of the pipe its job arrives on, which the
  // interpreter keeps at kHandoffFd (boot_module.h) across execve; -1 for a cold job.
  int handoff_fd = -1;

  // The fresh root.
  const char* root_dir = nullptr;  // an empty directory on the host: the new root's mount point
  // The policy's root template (root_template.h), a path of the spawner's mount namespace that the
  // job's copy of it holds too: the root is a clone of it, and mounts are only the per_job steps.
  // Null: the root is a fresh tmpfs and mounts are every step (without root, or templates off).
  const char* root_template = nullptr;
  const ChildMount* mounts = nullptr;
  size_t mount_count = 0;
  const char* hostname = "pyrun";
  // What the job sees as its init's command line (/proc/1/cmdline) and name: not the daemon's.
  const char* init_name = "pyrun-init";
  bool loopback_up = false;             // network: loopback; otherwise lo stays down
  const char* job_dir = kJobDirInRoot;  // the working directory, seen from inside the root
  // Limits the rlimits set (the spawner relaxes RLIMIT_AS and RLIMIT_NPROC to backstops when
  // cgroups enforce memory and processes).
  uint64_t address_space_bytes = 0;
  uint32_t nproc = 0;
  // count 0: no cgroup, or the init was cloned into it (JobCgroup::cloneIntoFd)
  CgroupJoin cgroup;
  int landlock_fd = -1;  // a prepared ruleset, or -1 without Landlock
  int landlock_abi = 0;
  const SeccompProgram* seccomp = nullptr;  // required: null fails the job (fail closed)
  // A job with a terminal (JobSpec::terminal): the root has a devpts of its own (job_root.h), the
  // init opens its first pty there and relays between the master and stdin/stdout, and stderr_fd
  // is the read end of the window-size pipe instead (terminal_relay.h).
  bool terminal = false;
  uint16_t terminal_rows = 24;
  uint16_t terminal_cols = 80;
};

// Runs the steps of a root template (none of them per_job) from the current directory, the
// template's top, as a job's init runs them in a root built step by step. For the spawner, which
// builds the templates; no allocation. Returns 0, or the errno with the failed step's index in
// *failed.
int runTemplateSteps(const ChildMount* mounts, size_t count, size_t* failed);

// Runs in the child cloned into a new pid namespace, as its pid 1. Prepares the session, stdio and
// descriptors, forks the interpreter process (confined by confineJob, then execve), forwards every
// signal it receives to it, reaps every process of the namespace, kills the rest when the
// interpreter ends and reports its wait status. Never returns.
[[noreturn]] void runJobInit(const ChildPlan& plan);

}  // namespace pyrun::sandbox
