// The job's file system view as a list of mount steps, built by the spawner before the clone and
// executed by the job's init (which may not allocate). See docs/SANDBOX.md, "What a job sees".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "policy/policy.h"

namespace pyrun::sandbox {

// Where the job's working directory appears inside its root.
inline constexpr const char* kJobDirInRoot = "/job";

enum class MountKind : int32_t {
  kDir,      // mkdir target (mode)
  kFile,     // an empty file as a bind target
  kSymlink,  // symlink target -> source
  kTmpfs,    // tmpfs on target, options in data
  kBind,     // bind source (host path) onto target, recursively; read-only unless writable; nodev
  kDeviceBind,  // bind a device node (host path) onto target: noexec, device access kept
  kProc,        // a fresh procfs on target
  kDevpts,  // a devpts instance of the job's own on target (its pseudo-terminals), options in data
  // The working directory: a tmpfs of the job's own, filled with copies of the files the spawner
  // staged on the host, everything owned by the job (its uid as root, the mapped caller's in a
  // user namespace).
  kJobTmpfs,  // tmpfs on target, options (size, inodes, mode) in data
  kJobDir,    // mkdir target (mode), a directory below the working directory
  kJobFile,   // copy source (relative to the host working directory) to target (mode)
  kDataFile,  // a new file at target holding data (NUL-terminated text), mode; owned by the init
};

// One step. target is relative to the new root (no leading '/'), so that the init can run the
// steps from inside the root's directory before pivot_root.
struct MountStep {
  MountKind kind = MountKind::kDir;
  std::string source;
  std::string target;
  std::string data;       // tmpfs options
  uint32_t mode = 0755;   // kDir, kJobDir, kJobFile
  bool writable = false;  // kBind, kDeviceBind
  bool noexec = false;    // kTmpfs
  bool optional = false;  // a missing source is skipped (host files that may not exist)
  // The job's own: mounted by its init in every case. The other steps are the same for every job
  // of a policy (and terminal option), and the spawner, as root, builds them once into the
  // policy's root template (root_template.h), which each job's init clones.
  bool per_job = false;
};

struct JobRootPlan {
  std::vector<MountStep> steps;
  // For the Landlock ruleset, which binds to the host inodes that the steps expose.
  std::vector<std::string> landlock_read_only;
  std::vector<std::string> landlock_read_write;
};

// The steps for a job: a tmpfs root holding read-only binds of /usr and the host's /bin, /sbin,
// /lib* (symlinks where the host has symlinks), a minimal /etc (a fixed list of non-secret files),
// the working directory at /job (a tmpfs of workdir_bytes and workdir_files, mode 0700, into which
// every directory and regular file below the host directory `workdir` is copied with its
// permission bits), /tmp and /dev/shm as tmpfs of tmp_bytes each, a /dev with null, zero, full,
// random, urandom and the /proc/self/fd links, a fresh /proc with /proc/sys and the other kernel
// knobs read-only, and the policy's filesystem extras at their own paths. `workdir` is read here,
// without following links: call it once the job's files are staged there. Errors: kPolicy for an
// extra that would shadow /job, /tmp, /dev or /proc; kIo when `workdir` cannot be read or holds
// something other than directories and regular files.
Result<JobRootPlan> planJobRoot(const policy::Policy& policy, const std::string& workdir);

// What a job's root has beyond the policy's.
struct JobRootOptions {
  // A devpts instance of the job's own at /dev/pts (docs/SANDBOX.md, "Terminals"), /dev/ptmx and
  // /dev/tty links into it. The host's ptys are never visible.
  bool terminal = false;
};
Result<JobRootPlan> planJobRoot(const policy::Policy& policy, const std::string& workdir,
                                const JobRootOptions& options);

// The steps of a policy's root template: planJobRoot's steps without the job's own (per_job) and
// without a working directory's files. Errors as planJobRoot's, kPolicy only.
Result<JobRootPlan> planRootTemplate(const policy::Policy& policy, const JobRootOptions& options);

// The devpts options of a job's terminal instance: a new instance (never the host's ptys),
// /dev/ptmx usable by the job (0666), slaves private to their owner, at most 16 of them.
inline constexpr const char* kJobDevptsOptions = "newinstance,ptmxmode=0666,mode=0600,max=16";
// Where the warm pool's boot module lives inside every job's root (docs/SANDBOX.md, "The warm
// pool"): a directory of the root's read-only tmpfs, owned by root, holding only the module.
inline constexpr const char* kBootDirInRoot = "/.pyrun";
inline constexpr const char* kBootModuleInRoot = "/.pyrun/boot.py";

// The steps that put the boot module into a job's root: its directory (0555) and the file (0444),
// written by the init before the root becomes read-only. Every job gets them, cold or warm, so
// that both see the same root.
std::vector<MountStep> bootModuleSteps();

// "<step>" for messages: "bind /usr onto /usr", "tmpfs on /tmp".
std::string describeMountStep(const MountStep& step);

}  // namespace pyrun::sandbox
