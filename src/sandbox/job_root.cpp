// The job's root, as data: which host paths a job can see and how. Everything not listed here is
// absent from the job's mount namespace, not merely unreadable: /home, /root, /var, the server's
// key and the CA directory have no path inside the job at all.
#include "sandbox/job_root.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <set>

#include "common/dir.h"
#include "common/fd.h"
#include "policy/job_root_paths.h"
#include "sandbox/boot_module.h"

namespace pyrun::sandbox {
namespace {

// The system directories and /etc files of every job's root (policy/job_root_paths.h: the policy
// check follows the interpreter through the same list).
using policy::kJobEtcFiles;
using policy::kJobSystemPaths;

// Device nodes: bound from the host's (mknod is impossible in a user namespace, and a bind keeps
// the node's own file system, where device access is allowed).
constexpr const char* kWritableDevices[] = {"/dev/null", "/dev/zero", "/dev/full"};
constexpr const char* kReadableDevices[] = {"/dev/random", "/dev/urandom"};

// Kernel knobs of the fresh /proc that stay read-only even for a job that somehow were root in
// its namespace (the way container runtimes mask them).
constexpr const char* kProcReadOnly[] = {"proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus",
                                         "proc/fs"};

// Paths the job's own mounts occupy: an extra there would hide or be hidden by them.
constexpr const char* kReserved[] = {"/job", "/tmp", "/dev", "/proc"};

bool isUnder(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

std::string relative(const std::string& absolute) { return absolute.substr(1); }

class Builder {
 public:
  void dir(const std::string& rel, uint32_t mode = 0755) {
    if (!made_.insert(rel).second) return;
    MountStep s;
    s.kind = MountKind::kDir;
    s.target = rel;
    s.mode = mode;
    plan_.steps.push_back(std::move(s));
  }
  // Every missing parent of rel, then rel itself as a directory or an empty file.
  void mountPoint(const std::string& rel, bool is_dir) {
    for (size_t slash = rel.find('/'); slash != std::string::npos;
         slash = rel.find('/', slash + 1)) {
      dir(rel.substr(0, slash));
    }
    if (is_dir) {
      dir(rel);
    } else if (made_.insert(rel).second) {
      MountStep s;
      s.kind = MountKind::kFile;
      s.target = rel;
      plan_.steps.push_back(std::move(s));
    }
  }
  struct BindOptions {
    bool writable = false;
    bool optional = false;  // a missing source is skipped
    bool is_dir = false;    // the mount point is a directory, else an empty file
  };
  void bind(const std::string& source, const std::string& rel, BindOptions o) {
    bindAs(MountKind::kBind, source, rel, o);
  }
  // A device node keeps device access (its purpose); it can never be executed.
  void device(const std::string& source, const std::string& rel, BindOptions o) {
    bindAs(MountKind::kDeviceBind, source, rel, o);
  }
  struct TmpfsOptions {
    bool noexec = false;
  };
  void tmpfs(const std::string& rel, std::string data, TmpfsOptions o, bool per_job = false) {
    mountPoint(rel, true);
    MountStep s;
    s.kind = MountKind::kTmpfs;
    s.target = rel;
    s.data = std::move(data);
    s.noexec = o.noexec;
    s.per_job = per_job;
    plan_.steps.push_back(std::move(s));
  }
  void symlink(const std::string& to, const std::string& rel) {
    made_.insert(rel);
    MountStep s;
    s.kind = MountKind::kSymlink;
    s.source = to;
    s.target = rel;
    plan_.steps.push_back(std::move(s));
  }
  void jobStep(MountKind kind, std::string source, std::string rel, uint32_t mode,
               std::string data = {}) {
    MountStep s;
    s.kind = kind;
    s.source = std::move(source);
    s.target = std::move(rel);
    s.mode = mode;
    s.data = std::move(data);
    s.per_job = true;
    plan_.steps.push_back(std::move(s));
  }
  void proc(const std::string& rel) {
    mountPoint(rel, true);
    MountStep s;
    s.kind = MountKind::kProc;
    s.target = rel;
    s.per_job = true;  // mounted by the job's init: it shows the job's pid namespace
    plan_.steps.push_back(std::move(s));
  }
  JobRootPlan& plan() { return plan_; }

 private:
  void bindAs(MountKind kind, const std::string& source, const std::string& rel, BindOptions o) {
    mountPoint(rel, o.is_dir);
    MountStep s;
    s.kind = kind;
    s.source = source;
    s.target = rel;
    s.writable = o.writable;
    s.optional = o.optional;
    plan_.steps.push_back(std::move(s));
  }

  JobRootPlan plan_;
  std::set<std::string> made_;
};

// The directory rel (relative to the working directory top_fd, "" for itself), opened without
// following any link on the way (openat2; O_NOFOLLOW on the last component before Linux 5.6).
int openStagedDir(int top_fd, const std::string& rel) {
  const char* path = rel.empty() ? "." : rel.c_str();
  open_how how{};
  how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  int fd = static_cast<int>(::syscall(SYS_openat2, top_fd, path, &how, sizeof how));
  if (fd < 0 && errno == ENOSYS) {
    fd = ::openat(top_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  }
  return fd;
}

// A kJobDir or kJobFile step for every entry below the working directory top_fd (the host path
// `top`), each directory's step before those of its contents, in name order. Breadth first with
// one directory open at a time, so that no depth the spawner's staging allows can exhaust the
// stack or the descriptors. Nothing is followed: the staged tree holds only what the spawner
// wrote, so anything but directories and regular files is an error, not something to skip.
Result<void> addStagedFiles(Builder& b, int top_fd, const std::string& top) {
  std::deque<std::string> pending = {""};
  while (!pending.empty()) {
    const std::string rel = std::move(pending.front());
    pending.pop_front();
    const std::string where = rel.empty() ? top : top + "/" + rel;
    UniqueFd dir_fd(openStagedDir(top_fd, rel));
    if (!dir_fd) return errnoError("open directory " + where, errno);
    auto names = listNames(dir_fd.get(), where);
    if (!names) return names.error();
    for (const std::string& name : *names) {
      const std::string inside = rel.empty() ? name : rel + "/" + name;
      const std::string target = relative(kJobDirInRoot) + "/" + inside;
      struct stat st {};
      if (::fstatat(dir_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return errnoError("stat " + where + "/" + name, errno);
      }
      auto mode = static_cast<uint32_t>(st.st_mode & 0777);
      if (S_ISREG(st.st_mode)) {
        // Staged files are made by the spawner or by the front (uploads), each with O_EXCL: one
        // link. A second link means someone linked a file in from elsewhere (a compromised front
        // on a host without fs.protected_hardlinks), whose content the job must not get.
        if (st.st_nlink != 1) {
          return Error(Errc::kIo, where + "/" + name + " has " + std::to_string(st.st_nlink) +
                                      " links; staged files have one");
        }
        b.jobStep(MountKind::kJobFile, inside, target, mode);
      } else if (S_ISDIR(st.st_mode)) {
        b.jobStep(MountKind::kJobDir, "", target, mode);
        pending.push_back(inside);
      } else {
        return Error(Errc::kIo, where + "/" + name + " is neither a directory nor a regular file");
      }
    }
  }
  return {};
}

// The plan with the staged files of workdir, or without any when workdir is empty (a template).
Result<JobRootPlan> planSteps(const policy::Policy& policy, const std::string& workdir,
                              const JobRootOptions& options) {
  for (const auto* list : {&policy.filesystem.read_only, &policy.filesystem.read_write}) {
    for (const auto& path : *list) {
      if (path.empty() || path[0] != '/' || path == "/") {
        return Error(Errc::kPolicy, "policy " + policy.name + ": filesystem path '" + path +
                                        "' is not an absolute path below /");
      }
      for (const char* reserved : kReserved) {
        if (isUnder(path, reserved) || isUnder(reserved, path)) {
          return Error(Errc::kPolicy, "policy " + policy.name + ": filesystem path " + path +
                                          " overlaps the job's own " + reserved);
        }
      }
    }
  }

  Builder b;
  auto& plan = b.plan();
  std::vector<std::string> system_dirs;
  for (const char* path : kJobSystemPaths) {
    struct stat st {};
    if (::lstat(path, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(path, target, sizeof target - 1);
      if (n <= 0) continue;
      b.symlink(std::string(target, static_cast<size_t>(n)), relative(path));
    } else if (S_ISDIR(st.st_mode)) {
      b.bind(path, relative(path), {.is_dir = true});
      system_dirs.emplace_back(path);
    }
    plan.landlock_read_only.emplace_back(path);
  }
  b.dir("etc");
  for (const char* path : kJobEtcFiles) {
    struct stat st {};
    // stat, not lstat: /etc/localtime is a link into /usr/share/zoneinfo, bound as its target.
    if (::stat(path, &st) != 0) continue;
    b.bind(path, relative(path), {.optional = true, .is_dir = S_ISDIR(st.st_mode)});
    plan.landlock_read_only.emplace_back(path);
  }

  // The job's only writable places: its working directory, /tmp and /dev/shm. The working
  // directory is a tmpfs too, not a bind of the host directory: its size and inode bounds hold
  // the job's writes, which therefore never reach the host's disk, and its pages are charged to
  // the job's memory cgroup. nr_inodes counts the tmpfs's root as well. Its Landlock rule is added
  // by the child once it exists (like /tmp's).
  b.mountPoint(relative(kJobDirInRoot), true);
  b.jobStep(MountKind::kJobTmpfs, "", relative(kJobDirInRoot), 0700,
            "size=" + std::to_string(policy.limits.workdir_bytes) + ",nr_inodes=" +
                std::to_string(uint64_t{policy.limits.workdir_files} + 1) + ",mode=0700");
  if (!workdir.empty()) {
    UniqueFd staged(::open(workdir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!staged) return errnoError("open the job's working directory " + workdir, errno);
    if (auto r = addStagedFiles(b, staged.get(), workdir); !r) return r.error();
  }
  std::string tmp_options = "size=" + std::to_string(policy.limits.tmp_bytes) + ",mode=1777";
  b.tmpfs("tmp", tmp_options, {.noexec = false}, /*per_job=*/true);

  b.tmpfs("dev", "size=64k,mode=0755", {.noexec = true});
  for (const char* dev : kWritableDevices) {
    b.device(dev, relative(dev), {.writable = true});
    plan.landlock_read_write.emplace_back(dev);
  }
  for (const char* dev : kReadableDevices) {
    b.device(dev, relative(dev), {});
    plan.landlock_read_only.emplace_back(dev);
  }
  b.symlink("/proc/self/fd", "dev/fd");
  b.symlink("/proc/self/fd/0", "dev/stdin");
  b.symlink("/proc/self/fd/1", "dev/stdout");
  b.symlink("/proc/self/fd/2", "dev/stderr");
  // POSIX shared memory and multiprocessing's semaphores live here.
  b.tmpfs("dev/shm", tmp_options, {.noexec = true}, /*per_job=*/true);
  if (options.terminal) {
    // The job's own devpts instance: its ptmx makes pseudo-terminals in this instance only, and
    // nothing of the host's /dev/pts is reachable. The init opens the job's terminal as the
    // instance's first pty, pts/0, before any job process exists, so /dev/tty (the controlling
    // terminal) can be a link to it; a bind of the host's /dev/tty node would do the same with a
    // host inode more in the job's view. Its Landlock rule is added by the child.
    b.mountPoint("dev/pts", true);
    b.jobStep(MountKind::kDevpts, "devpts", "dev/pts", 0, kJobDevptsOptions);
    b.symlink("pts/ptmx", "dev/ptmx");
    b.symlink("pts/0", "dev/tty");
  }

  auto extra = [&](const std::string& path, bool writable) {
    // Already visible (read-only) through a system directory.
    for (const auto& dir : system_dirs) {
      if (isUnder(path, dir) && !writable) return;
    }
    struct stat st {};
    // A missing extra is bound anyway and fails the job at stage "mount": a policy that names a
    // path expects it to be there.
    bool is_dir = ::stat(path.c_str(), &st) != 0 || S_ISDIR(st.st_mode);
    b.bind(path, relative(path), {.writable = writable, .is_dir = is_dir});
    (writable ? plan.landlock_read_write : plan.landlock_read_only).push_back(path);
  };
  for (const auto& path : policy.filesystem.read_only) extra(path, false);
  for (const auto& path : policy.filesystem.read_write) extra(path, true);

  // The warm pool's boot module, in every job (cold ones too, so both see the same root).
  for (auto& step : bootModuleSteps()) plan.steps.push_back(std::move(step));

  // Last: the binds onto its knobs need the fresh /proc in place.
  b.proc("proc");
  for (const char* knob : kProcReadOnly) {
    MountStep s;
    s.kind = MountKind::kBind;
    s.source = knob;  // relative: the job's own /proc, seen from the root being built
    s.target = knob;
    s.optional = true;
    s.per_job = true;
    plan.steps.push_back(std::move(s));
  }
  return std::move(plan);
}

}  // namespace

Result<JobRootPlan> planJobRoot(const policy::Policy& policy, const std::string& workdir) {
  return planJobRoot(policy, workdir, JobRootOptions{});
}

Result<JobRootPlan> planJobRoot(const policy::Policy& policy, const std::string& workdir,
                                const JobRootOptions& options) {
  if (workdir.empty()) return Error(Errc::kInvalidArgument, "no working directory for the job");
  return planSteps(policy, workdir, options);
}

Result<JobRootPlan> planRootTemplate(const policy::Policy& policy, const JobRootOptions& options) {
  auto plan = planSteps(policy, "", options);
  if (!plan) return plan.error();
  std::erase_if(plan->steps, [](const MountStep& s) { return s.per_job; });
  return plan;
}

std::vector<MountStep> bootModuleSteps() {
  std::vector<MountStep> steps(2);
  steps[0].kind = MountKind::kDir;
  steps[0].target = relative(kBootDirInRoot);
  steps[0].mode = 0555;
  steps[1].kind = MountKind::kDataFile;
  steps[1].target = relative(kBootModuleInRoot);
  steps[1].data = bootModuleSource();
  steps[1].mode = 0444;
  return steps;
}

std::string describeMountStep(const MountStep& step) {
  switch (step.kind) {
    case MountKind::kDir:
      return "mkdir /" + step.target;
    case MountKind::kFile:
      return "create the mount point /" + step.target;
    case MountKind::kSymlink:
      return "symlink /" + step.target + " -> " + step.source;
    case MountKind::kTmpfs:
      return "mount a tmpfs on /" + step.target;
    case MountKind::kBind:
    case MountKind::kDeviceBind:
      return std::string("bind ") + (step.source[0] == '/' ? "" : "/") + step.source + " onto /" +
             step.target + (step.writable ? "" : " read-only");
    case MountKind::kProc:
      return "mount a fresh proc on /" + step.target;
    case MountKind::kDevpts:
      return "mount the job's own devpts on /" + step.target + " (" + step.data + ")";
    case MountKind::kJobTmpfs:
      return "mount the working directory /" + step.target + " (a tmpfs, " + step.data + ")";
    case MountKind::kJobDir:
      return "create the directory /" + step.target + " of the job's files";
    case MountKind::kJobFile:
      return "copy the job's file " + step.source + " to /" + step.target;
    case MountKind::kDataFile:
      return "write /" + step.target;
  }
  return "mount step";
}

}  // namespace pyrun::sandbox
