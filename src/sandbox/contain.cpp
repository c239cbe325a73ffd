// The job's init and the interpreter's confinement. Runs between fork and exec: only system calls
// and stack buffers, no allocation, no exceptions, no logging (the spawner's heap and locks are a
// copy that nobody will ever release). Each failure is one ReportRecord and _exit(127).
#include "sandbox/contain.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/boot_module.h"
#include "sandbox/landlock.h"
#include "sandbox/terminal_relay.h"

namespace pyrun::sandbox {
namespace {

constexpr int kReportFd = 3;    // the init's report pipe, and in the interpreter its failure pipe
constexpr int kLandlockFd = 4;  // the job's Landlock ruleset until it is enforced

// A failing step: the record to send. stage 0 means success.
struct Failure {
  Stage stage{};
  int error = 0;
  int arg = 0;
  bool failed() const { return error != 0; }
};

Failure fail(Stage stage, int arg = 0) { return {stage, errno != 0 ? errno : EINVAL, arg}; }
Failure fail(UserNamespaceStep step) { return fail(Stage::kUserNamespace, static_cast<int>(step)); }
Failure fail(PivotRootStep step) { return fail(Stage::kPivotRoot, static_cast<int>(step)); }
Failure fail(LandlockStep step) { return fail(Stage::kLandlock, static_cast<int>(step)); }
Failure fail(TerminalStep step) { return fail(Stage::kTerminal, static_cast<int>(step)); }

// The job's pseudo-terminal as the init holds it: the master stays with the init, the slave goes
// to the interpreter. -1 without a terminal.
struct TerminalFds {
  int master = -1;
  int slave = -1;
};

void writeRecord(int fd, const ReportRecord& record) {
  while (::write(fd, &record, sizeof record) < 0 && errno == EINTR) {
  }
}

// A stage reached, with the clock now (best effort: a lost stamp only leaves a gap in --timings).
void writeStamp(int fd, JobStage stage) {
  writeRecord(fd, {static_cast<int32_t>(ReportKind::kStamp), static_cast<int32_t>(stage), 0, 0,
                   stageClockMicros()});
}

[[noreturn]] void reportAndExit(int fd, const Failure& f) {
  writeRecord(fd, {static_cast<int32_t>(ReportKind::kFailed), static_cast<int32_t>(f.stage),
                   f.error, f.arg, 0});
  _exit(127);
}

// "<n> <n> 1\n" into buf, for uid_map/gid_map; returns the length.
size_t formatIdentityMap(char* buf, unsigned n) {
  char digits[16];
  size_t d = 0;
  do {
    digits[d++] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  size_t len = 0;
  for (int copy = 0; copy < 2; ++copy) {
    for (size_t i = d; i-- > 0;) buf[len++] = digits[i];
    buf[len++] = ' ';
  }
  buf[len++] = '1';
  buf[len++] = '\n';
  return len;
}

bool writeProcFile(const char* path, const char* data, size_t len) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, data, len) == static_cast<ssize_t>(len);
  int saved = errno;
  ::close(fd);
  errno = saved;
  return ok;
}

// ---- the init's steps ----

Failure newSession() {
  if (::setsid() < 0) return fail(Stage::kSetsid);
  return {};
}

Failure dieWithSpawner() {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return fail(Stage::kParentDeathSignal);
  return {};
}

// The job's pipes become 0-2 and the report pipe 3; every other descriptor (the front's socket,
// other jobs' pipes, the jobs directory) is closed. The spawner keeps 0-2 open, so the pipe ends
// are all >= 3 and the dup2 calls cannot overwrite one another.
Failure setUpDescriptors(const ChildPlan& plan) {
  if (::dup2(plan.stdin_fd, 0) < 0 || ::dup2(plan.stdout_fd, 1) < 0 ||
      ::dup2(plan.stderr_fd, 2) < 0) {
    return fail(Stage::kStdio);
  }
  if (plan.report_fd != kReportFd && ::dup3(plan.report_fd, kReportFd, O_CLOEXEC) < 0) {
    return fail(Stage::kStdio);
  }
  // The spawner's descriptors 3 and 4 are its socket and jobs directory, so the ruleset's
  // descriptor is above both and this dup cannot overwrite one we still need.
  int keep_from = kReportFd + 1;
  if (plan.landlock_fd >= 0) {
    if (::dup3(plan.landlock_fd, kLandlockFd, O_CLOEXEC) < 0) return fail(Stage::kStdio);
    keep_from = kLandlockFd + 1;
  }
  // The hand-off pipe of a parked job, at kHandoffFd (5), inherited across execve. Its source is
  // above 4 as well; after the ruleset's dup, so that neither overwrites the other's source.
  if (plan.handoff_fd >= 0) {
    static_assert(kHandoffFd == kLandlockFd + 1);
    if (plan.handoff_fd == kHandoffFd) {
      if (::fcntl(kHandoffFd, F_SETFD, 0) != 0) return fail(Stage::kStdio);
    } else if (::dup2(plan.handoff_fd, kHandoffFd) < 0) {
      return fail(Stage::kStdio);
    }
    if (plan.landlock_fd < 0) ::close(kLandlockFd);
    keep_from = kHandoffFd + 1;
  }
  if (::close_range(static_cast<unsigned>(keep_from), ~0u, 0) != 0) return fail(Stage::kCloseFds);
  return {};
}

// The init is a clone of the spawner, so its command line (/proc/1/cmdline inside the job, which
// every process there may read) would be the daemon's, with its configuration paths, and its
// environment the daemon's. Both live in this process's own copy of the spawner's stack: the
// argument area gets our name and the environment area is zeroed. The area's last byte is left
// non-zero, which makes the kernel show the argument area up to its first NUL (the setproctitle
// convention), i.e. the name alone. Where the areas are found: /proc/self/stat's fields 48-51.
// Failing to read them leaves the old text: not a confinement step, so the job goes on.
void renameInit(const char* name) {
  ::prctl(PR_SET_NAME, name, 0, 0, 0);
  char buf[2048];
  int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return;
  buf[n] = '\0';
  // The fields after the command name, which may itself hold spaces and parentheses.
  char* p = std::strrchr(buf, ')');
  if (p == nullptr) return;
  unsigned long fields[52] = {};
  int field = 2;  // the ')' ends field 2
  for (++p; *p != '\0' && field < 51;) {
    while (*p == ' ') ++p;
    ++field;
    unsigned long v = 0;
    bool digits = false;
    for (; *p >= '0' && *p <= '9'; ++p, digits = true)
      v = v * 10 + static_cast<unsigned long>(*p - '0');
    if (digits) fields[field] = v;
    while (*p != ' ' && *p != '\0') ++p;
  }
  unsigned long arg_start = fields[48], arg_end = fields[49];
  unsigned long env_start = fields[50], env_end = fields[51];
  if (env_start != 0 && env_end > env_start) {
    std::memset(reinterpret_cast<void*>(env_start), 0, env_end - env_start);
  }
  if (arg_start == 0 || arg_end <= arg_start + 1) return;
  char* area = reinterpret_cast<char*>(arg_start);
  size_t size = arg_end - arg_start;
  std::memset(area, 0, size);
  size_t len = std::strlen(name);
  if (len > size - 2) len = size - 2;
  std::memcpy(area, name, len);
  area[size - 1] = ' ';
}

// PR_SET_PDEATHSIG only covers a parent that dies after the prctl. getppid() is 0 inside a new pid
// namespace, so the check is the report socket instead: its other end is the spawner's only (ours
// was just closed), and a connected socket whose peer is gone polls POLLHUP.
Failure checkSpawnerAlive() {
  pollfd p{kReportFd, POLLOUT, 0};
  if (::poll(&p, 1, 0) < 0) return fail(Stage::kParentGone);
  if ((p.revents & (POLLERR | POLLHUP)) != 0) {
    errno = ESRCH;
    return fail(Stage::kParentGone);
  }
  return {};
}

Failure mapUser(const ChildPlan& plan) {
  if (!plan.map_user) return {};
  char buf[48];
  // A process that changed its uid (a daemon started as root that dropped it) is not dumpable,
  // which makes its /proc/self files root's and unwritable. We stay the same uid, so nothing is
  // exposed that was not already: the interpreter's execve makes it dumpable again anyway.
  if (::prctl(PR_SET_DUMPABLE, 1) != 0) return fail(UserNamespaceStep::kDumpable);
  // setgroups must be denied before an unprivileged process may write gid_map.
  if (!writeProcFile("/proc/self/setgroups", "deny", 4)) {
    return fail(UserNamespaceStep::kSetgroups);
  }
  size_t n = formatIdentityMap(buf, plan.outer_uid);
  if (!writeProcFile("/proc/self/uid_map", buf, n)) return fail(UserNamespaceStep::kUidMap);
  n = formatIdentityMap(buf, plan.outer_gid);
  if (!writeProcFile("/proc/self/gid_map", buf, n)) return fail(UserNamespaceStep::kGidMap);
  return {};
}

// Ignored dispositions survive execve (the spawner ignores SIGPIPE): restore the defaults, then
// block everything so that the init receives signals only through sigwaitinfo. Blocked signals
// also reach a namespace init from outside even without a handler (they are never "ignored").
Failure takeOverSignals() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);  // fails only for the signals glibc reserves: harmless
  }
  sigset_t all;
  sigfillset(&all);
  if (::sigprocmask(SIG_SETMASK, &all, nullptr) != 0) return fail(Stage::kSignals);
  return {};
}

// Every process of the job is born inside its cgroup: the init was cloned into it (cgroup v2,
// Linux 5.7+: plan.cgroup is empty), or joins it here, before it forks anything.
Failure joinJobCgroup(const ChildPlan& plan) {
  if (plan.cgroup.count != 0) {
    if (int err = joinCgroup(plan.cgroup); err != 0) {
      errno = err;
      return fail(Stage::kCgroup, static_cast<int32_t>(CgroupStep::kJoin));
    }
  }
  // Then a cgroup namespace rooted there (it is rooted where the caller is, hence not at the
  // clone): /proc/self/cgroup in the job shows "/", not the host's path, whose job-<id> would tell
  // a job how many jobs the server has run.
  if (::unshare(CLONE_NEWCGROUP) != 0) {
    return fail(Stage::kCgroup, static_cast<int32_t>(CgroupStep::kNamespace));
  }
  return {};
}

// The namespace's copy of the host's mounts must not propagate either way: a mount made for the
// job would otherwise appear on the host (shared is systemd's default for /).
Failure makeMountsPrivate() {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return fail(Stage::kMountPrivate);
  }
  return {};
}

int mountSetattr(const char* path, unsigned flags, uint64_t set) {
  mount_attr attr{};
  attr.attr_set = set;
  return static_cast<int>(::syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &attr, sizeof attr));
}

// Read-only (unless writable) and nosuid on the bind and every mount below it; nodev, except on a
// device bind, which keeps device access (its purpose) and is noexec instead. Only ever adds flags:
// in a user namespace, flags locked by the host's mount could not be cleared anyway.
int restrictBind(const ChildMount& m) {
  uint64_t set = MOUNT_ATTR_NOSUID;
  if (!m.writable) set |= MOUNT_ATTR_RDONLY;
  set |= m.kind == MountKind::kDeviceBind ? MOUNT_ATTR_NOEXEC : MOUNT_ATTR_NODEV;
  return mountSetattr(m.target, AT_RECURSIVE | AT_SYMLINK_NOFOLLOW, set);
}

// ---- the working directory's files ----

// Everything in /job belongs to the job: as root its uid, otherwise we already are the (mapped)
// caller, whose files they are.
int chownToJob(int fd, const ChildPlan& plan) {
  if (!plan.drop_to_job_ids) return 0;
  return ::fchown(fd, plan.uid, plan.gid) != 0 ? errno : 0;
}

// A file the spawner staged, by its path relative to the host working directory. Nothing of the
// job has run yet, so nothing there can be a link; refusing every link, "..", and other mounts is
// what keeps it that way should that change. O_NONBLOCK: a FIFO swapped in would otherwise block
// the init for ever before the caller's regular-file check. Without openat2 (Linux < 5.6, or a
// container's seccomp profile answering ENOSYS) the job fails at stage mount: openat alone would
// follow links in the middle of the path.
int openStagedFile(int workdir_fd, const char* rel) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  return static_cast<int>(::syscall(SYS_openat2, workdir_fd, rel, &how, sizeof how));
}

// Copies in to out from their current offsets: sendfile, which needs no buffer, else read and
// write through one on the stack. Returns 0 or the errno (ENOSPC when /job is full).
int copyContents(int in, int out) {
  for (;;) {
    ssize_t n = ::sendfile(out, in, nullptr, 1 << 30);
    if (n > 0) continue;
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EINVAL && errno != ENOSYS) return errno;
    break;
  }
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return 0;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(out, buf + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return errno;
      done += w;
    }
  }
}

int copyJobFile(const ChildMount& m, const ChildPlan& plan, int workdir_fd) {
  int in = openStagedFile(workdir_fd, m.source);
  if (in < 0) return errno;
  struct stat st {};
  int err = 0;
  if (::fstat(in, &st) != 0) {
    err = errno;
  } else if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
    // One link, checked on what was opened (planJobRoot checked the path, earlier).
    err = EINVAL;
  }
  int out = -1;
  if (err == 0) {
    out = ::open(m.target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) err = errno;
  }
  if (err == 0) err = copyContents(in, out);
  if (err == 0) err = chownToJob(out, plan);
  // After the chown, which would clear set-id bits; the mode is permission bits only anyway.
  if (err == 0 && ::fchmod(out, m.mode & 0777) != 0) err = errno;
  if (out >= 0) ::close(out);
  ::close(in);
  return err;
}

int makeJobDir(const ChildMount& m, const ChildPlan& plan) {
  if (::mkdir(m.target, 0700) != 0) return errno;
  int fd = ::open(m.target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = chownToJob(fd, plan);
  if (err == 0 && ::fchmod(fd, m.mode & 0777) != 0) err = errno;
  ::close(fd);
  return err;
}

int mountJobTmpfs(const ChildMount& m, const ChildPlan& plan) {
  unsigned long flags = MS_NOSUID | MS_NODEV | (m.noexec ? MS_NOEXEC : 0);
  if (::mount("tmpfs", m.target, "tmpfs", flags, m.data) != 0) return errno;
  int fd = ::open(m.target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = chownToJob(fd, plan);
  ::close(fd);
  return err;
}

// A file of the root (the boot module), owned by the init (root, or the mapped caller), written
// before the root becomes read-only.
int writeDataFile(const ChildMount& m) {
  int fd = ::open(m.target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return errno;
  int err = 0;
  const char* data = m.data != nullptr ? m.data : "";
  for (size_t left = std::strlen(data); left > 0 && err == 0;) {
    ssize_t w = ::write(fd, data, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      err = errno;
      break;
    }
    data += w;
    left -= static_cast<size_t>(w);
  }
  if (err == 0 && ::fchmod(fd, m.mode & 0777) != 0) err = errno;
  ::close(fd);
  return err;
}

// workdir_fd: the host working directory (O_PATH), for kJobFile; -1 when there is none.
int runMountStep(const ChildMount& m, const ChildPlan& plan, int workdir_fd) {
  switch (m.kind) {
    case MountKind::kDir:
      if (::mkdir(m.target, m.mode) != 0 && errno != EEXIST) return errno;
      // The umask must not narrow it (1777 for nothing here, but 0755 for the job's view).
      return ::chmod(m.target, m.mode) != 0 ? errno : 0;
    case MountKind::kFile: {
      int fd = ::open(m.target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
      if (fd < 0) return errno;
      ::close(fd);
      return 0;
    }
    case MountKind::kSymlink:
      return ::symlink(m.source, m.target) != 0 ? errno : 0;
    case MountKind::kTmpfs: {
      unsigned long flags = MS_NOSUID | MS_NODEV | (m.noexec ? MS_NOEXEC : 0);
      return ::mount("tmpfs", m.target, "tmpfs", flags, m.data) != 0 ? errno : 0;
    }
    case MountKind::kBind:
    case MountKind::kDeviceBind: {
      // A relative source is a path of the root being built (the fresh /proc's knobs).
      if (::mount(m.source, m.target, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
        return m.optional && errno == ENOENT ? 0 : errno;
      }
      // Private before the flags: a bind copies its source's propagation, and a root template is
      // built in the spawner's namespace, a slave of the host's, where a mount the host makes below
      // the source would otherwise keep arriving with its own flags. One that arrived before this
      // line is covered by the recursive flags below. (A job's own namespace is private already.)
      if (::mount(nullptr, m.target, nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno;
      return restrictBind(m) != 0 ? errno : 0;
    }
    case MountKind::kProc:
      // Mounted by the namespace's pid 1, so it shows the job's processes only.
      return ::mount("proc", m.target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0
                 ? errno
                 : 0;
    case MountKind::kDevpts:
      // Not nodev: the ptys are its purpose. A new instance, so the host's ptys stay out of reach.
      return ::mount("devpts", m.target, "devpts", MS_NOSUID | MS_NOEXEC, m.data) != 0 ? errno : 0;
    case MountKind::kJobTmpfs:
      return mountJobTmpfs(m, plan);
    case MountKind::kJobDir:
      return makeJobDir(m, plan);
    case MountKind::kJobFile:
      return workdir_fd < 0 ? EINVAL : copyJobFile(m, plan, workdir_fd);
    case MountKind::kDataFile:
      return writeDataFile(m);
  }
  return EINVAL;
}

// The policy's root template, cloned onto the (empty) mount point: one open_tree call copies its
// whole tree (the root tmpfs, the system, /etc and device binds, /dev, the extras, each with its
// flags), where a root built step by step takes dozens of mounts. The template is a path of the
// spawner's mount namespace, which CLONE_NEWNS copied into ours: Linux 6.1 (Debian 12) clones
// only mounts of the caller's own namespace (check_mnt in __do_loopback), so a detached template
// (an open_tree fd the spawner held) could not be cloned by the init there. The clone is
// private (makeMountsPrivate ran) and detached from the template's mounts; its tmpfs superblocks
// are the template's, read-only (root_template.cpp), so nothing a job does reaches another job.
Failure cloneRootTemplate(const ChildPlan& plan) {
  int tree = static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, plan.root_template,
                                        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
  if (tree < 0) return fail(Stage::kRoot, static_cast<int>(RootStep::kCloneTemplate));
  int rc = static_cast<int>(
      ::syscall(SYS_move_mount, tree, "", AT_FDCWD, plan.root_dir, MOVE_MOUNT_F_EMPTY_PATH));
  int err = errno;
  ::close(tree);
  if (rc != 0) {
    errno = err;
    return fail(Stage::kRoot, static_cast<int>(RootStep::kAttachTemplate));
  }
  return {};
}

int runMountSteps(const ChildMount* mounts, size_t count, const ChildPlan& plan, size_t* failed) {
  // The host working directory, whose staged files are copied into the job's /job: opened (by
  // absolute path, O_PATH: only a starting point for openat2) at the first copy, so that a failure
  // names that step. Root in the host's user namespace, or the caller mapped, we can read them.
  int workdir_fd = -1;
  int err = 0;
  for (size_t i = 0; i < count && err == 0; ++i) {
    const ChildMount& m = mounts[i];
    *failed = i;
    if (m.kind == MountKind::kJobFile && workdir_fd < 0 && plan.workdir != nullptr) {
      workdir_fd = ::open(plan.workdir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (workdir_fd < 0) err = errno;
    }
    if (err == 0) err = runMountStep(m, plan, workdir_fd);
  }
  // Closed before pivot_root: no descriptor of the host's tree survives into the job's.
  if (workdir_fd >= 0) ::close(workdir_fd);
  return err;
}

// The root: a clone of the policy's template, or a tmpfs on the (empty) mount point; the steps
// fill it from inside (every target is relative to it), then pivot_root swaps it in and the
// host's tree is detached, so no path of the job leads back to the host's root.
Failure buildRoot(const ChildPlan& plan) {
  if (plan.root_dir == nullptr) {
    errno = EINVAL;
    return fail(Stage::kRoot);
  }
  if (plan.root_template != nullptr) {
    if (auto f = cloneRootTemplate(plan); f.failed()) return f;
  } else if (::mount("tmpfs", plan.root_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") !=
             0) {
    return fail(Stage::kRoot);
  }
  if (::chdir(plan.root_dir) != 0) return fail(Stage::kRoot, static_cast<int>(RootStep::kEnter));
  size_t failed = 0;
  if (int err = runMountSteps(plan.mounts, plan.mount_count, plan, &failed); err != 0) {
    errno = err;
    return fail(Stage::kMount, static_cast<int>(failed));
  }
  return {};
}

}  // namespace

int runTemplateSteps(const ChildMount* mounts, size_t count, size_t* failed) {
  // A template holds no job's step: no working directory, no job's uid.
  ChildPlan none;
  return runMountSteps(mounts, count, none, failed);
}

namespace {

Failure setHostname(const ChildPlan& plan) {
  if (::sethostname(plan.hostname, std::strlen(plan.hostname)) != 0) return fail(Stage::kHostname);
  return {};
}

// A fresh network namespace has a loopback interface, down: with network "none" it stays down,
// so nothing (not even the job itself) is reachable over IP.
Failure bringUpLoopback(const ChildPlan& plan) {
  if (!plan.loopback_up) return {};
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Stage::kNetwork);
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, "lo", 3);
  int rc = ::ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    rc = ::ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    errno = err;
    return fail(Stage::kNetwork);
  }
  return {};
}

// pivot_root(".", ".") stacks the old root on top of the new one at "/"; detaching it leaves the
// new root alone (no directory for the old root is needed, and none remains).
Failure pivotIntoRoot() {
  if (::syscall(SYS_pivot_root, ".", ".") != 0) return fail(PivotRootStep::kPivot);
  if (::umount2(".", MNT_DETACH) != 0) return fail(PivotRootStep::kDetach);
  if (::chdir("/") != 0) return fail(PivotRootStep::kChdir);
  // The root's own directories and mount points are fixed from here on.
  if (mountSetattr("/", 0, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV) != 0) {
    return fail(PivotRootStep::kReadOnly);
  }
  return {};
}

// The ruleset the spawner prepared covers the host inodes the job sees through binds; /job, /tmp,
// /dev/shm and /proc exist only in this namespace, so their rules are added here, once they are
// mounted (the ruleset belongs to this job alone).
Failure addRulesForJobMounts(const ChildPlan& plan) {
  if (plan.landlock_fd < 0) return {};
  const int abi = plan.landlock_abi;
  // /job is a tmpfs of this namespace as well.
  int err = addLandlockRuleInChild(kLandlockFd, abi, kJobDirInRoot, LandlockAccess::kReadWrite);
  if (err == 0) err = addLandlockRuleInChild(kLandlockFd, abi, "/tmp", LandlockAccess::kReadWrite);
  if (err == 0) {
    err = addLandlockRuleInChild(kLandlockFd, abi, "/dev/shm", LandlockAccess::kReadWrite);
  }
  // Read and list only (/proc/self/fd, /proc/self/status); writes to /proc are never needed.
  if (err == 0) {
    err = addLandlockRuleInChild(kLandlockFd, abi, "/proc", LandlockAccess::kReadOnlyNoExecute);
  }
  // Listing /dev; its nodes have rules of their own (the host inodes bound there).
  if (err == 0) err = addLandlockRuleInChild(kLandlockFd, abi, "/dev", LandlockAccess::kListOnly);
  // The job's own devpts: /dev/tty and /dev/ptmx lead there.
  if (err == 0 && plan.terminal) {
    err = addLandlockRuleInChild(kLandlockFd, abi, "/dev/pts", LandlockAccess::kTerminal);
  }
  // The boot module, a file of this root's own tmpfs.
  if (err == 0) {
    err = addLandlockRuleInChild(kLandlockFd, abi, kBootDirInRoot,
                                 LandlockAccess::kReadOnlyNoExecute);
  }
  if (err != 0) {
    errno = err;
    return fail(LandlockStep::kJobMountRules);
  }
  return {};
}

// The job's terminal, from its own devpts instance (mounted by buildRoot, so /dev/ptmx is the
// job's and never the host's): the first pty of a fresh instance is pts/0, which /dev/tty links
// to. The slave is opened through the master (TIOCGPTPEER), not by a path the job could have
// influenced, and belongs to the job's uid, as a login's terminal belongs to its user.
Failure openTerminal(const ChildPlan& plan, TerminalFds& tty) {
  if (!plan.terminal) return {};
  tty.master = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty.master < 0) return fail(TerminalStep::kOpen);
  int unlock = 0;
  if (::ioctl(tty.master, TIOCSPTLCK, &unlock) != 0) return fail(TerminalStep::kUnlock);
  unsigned number = ~0u;
  if (::ioctl(tty.master, TIOCGPTN, &number) != 0) return fail(TerminalStep::kNumber);
  if (number != 0) {
    errno = EEXIST;
    return fail(TerminalStep::kNumber);
  }
  tty.slave = ::ioctl(tty.master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty.slave < 0) return fail(TerminalStep::kSlave);
  winsize ws{};
  ws.ws_row = plan.terminal_rows;
  ws.ws_col = plan.terminal_cols;
  if (::ioctl(tty.master, TIOCSWINSZ, &ws) != 0) return fail(TerminalStep::kSize);
  if (plan.drop_to_job_ids && ::fchown(tty.slave, plan.uid, plan.gid) != 0) {
    return fail(TerminalStep::kOwner);
  }
  return {};
}

// ---- the interpreter's confinement, in order ----

// The terminal becomes stdin, stdout and stderr, and the controlling terminal of a session of the
// interpreter's own: Ctrl-C typed by the user reaches its foreground process group through the
// line discipline, and nothing of the init's session is involved.
Failure takeTerminal(const TerminalFds& tty) {
  if (tty.slave < 0) return {};
  if (::setsid() < 0) return fail(TerminalStep::kControlling);
  if (::ioctl(tty.slave, TIOCSCTTY, 0) != 0) return fail(TerminalStep::kControlling);
  if (::dup2(tty.slave, 0) < 0 || ::dup2(tty.slave, 1) < 0 || ::dup2(tty.slave, 2) < 0) {
    return fail(Stage::kStdio);
  }
  // The master and the slave's own descriptor are closed with the others by closeDescriptors.
  return {};
}

Failure restoreSignalMask() {
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return fail(Stage::kSignals);
  return {};
}

// Leaves 0-2 and the failure pipe (moved to 3, close-on-exec, so the job never sees it): the report
// pipe is replaced by it, the init's other descriptors were closed before the fork.
Failure closeDescriptors(const ChildPlan& plan, int failure_fd) {
  if (failure_fd != kReportFd && ::dup3(failure_fd, kReportFd, O_CLOEXEC) < 0) {
    return fail(Stage::kCloseFds);
  }
  // The Landlock ruleset (4) stays until it is enforced, and is closed right after; a parked
  // job's hand-off pipe (5) stays for the boot module, which closes it before the job's script
  // runs.
  unsigned keep_from = plan.landlock_fd >= 0 ? kLandlockFd + 1 : kReportFd + 1;
  if (plan.handoff_fd >= 0) keep_from = kHandoffFd + 1;
  if (::close_range(keep_from, ~0u, 0) != 0) return fail(Stage::kCloseFds);
  return {};
}

Failure setLimit(int resource, rlim_t value) {
  rlimit rl{value, value};
  if (::setrlimit(resource, &rl) != 0) return fail(Stage::kRlimit, resource);
  return {};
}

// Whether RLIMIT_NPROC, set in a user namespace of the job's own, bounds the job alone. Since
// Linux 5.14 the process count lives in ucounts, one per (user namespace, uid), charged at every
// level up to the initial namespace; fork compares the count of the child's own namespace with
// RLIMIT_NPROC, and each ancestor's with the limit that namespace's creator had when it created
// it (is_rlimit_overlimit; the daemon's own limit still covers all its processes). The job's
// namespace holds only the job (its init included), so the limit counts exactly those. Before
// 5.14 the count was the user_struct's, one per host uid: the daemon's uid, shared with the front,
// the spawner and every other job, so a limit there would bound them all together.
bool userNamespaceCountsProcesses() {
  utsname u{};
  if (::uname(&u) != 0) return false;
  unsigned major = 0, minor = 0;
  const char* p = u.release;
  for (; *p >= '0' && *p <= '9'; ++p) major = major * 10 + static_cast<unsigned>(*p - '0');
  if (*p++ != '.') return false;
  for (; *p >= '0' && *p <= '9'; ++p) minor = minor * 10 + static_cast<unsigned>(*p - '0');
  return major > 5 || (major == 5 && minor >= 14);
}

// RLIMIT_NPROC counts the processes (threads included) of the real uid. As root the job has a uid
// of its own (set_nproc), so the count is the job's. Unprivileged (map_user) it is the caller's
// uid, but in the job's own user namespace, which kernels since 5.14 count apart; there it counts
// the init too, as the pids cgroup does. The hard limit the caller has cannot be raised without
// privilege, and a lower one bounds the job as well.
Failure setProcessLimit(const ChildPlan& plan) {
  const bool wanted = plan.set_nproc || plan.map_user;
  if (!wanted || (plan.map_user && !userNamespaceCountsProcesses())) return {};
  rlim_t value = plan.nproc != 0 ? plan.nproc : plan.limits.processes;
  if (plan.map_user) {
    rlimit current{};
    if (::getrlimit(RLIMIT_NPROC, &current) != 0) return fail(Stage::kRlimit, RLIMIT_NPROC);
    if (current.rlim_max < value) value = current.rlim_max;
  }
  return setLimit(RLIMIT_NPROC, value);
}

Failure setRlimits(const ChildPlan& plan) {
  const JobLimits& l = plan.limits;
  // The soft CPU limit sends SIGXCPU; the hard limit one second later is SIGKILL for a program
  // that catches or ignores SIGXCPU.
  rlimit cpu{l.cpu_seconds, static_cast<rlim_t>(l.cpu_seconds) + 1};
  if (::setrlimit(RLIMIT_CPU, &cpu) != 0) return fail(Stage::kRlimit, RLIMIT_CPU);
  if (auto f = setLimit(RLIMIT_FSIZE, l.file_size_bytes); f.failed()) return f;
  if (auto f = setLimit(RLIMIT_NOFILE, l.open_files); f.failed()) return f;
  if (auto f = setLimit(RLIMIT_CORE, 0); f.failed()) return f;
  uint64_t address_space =
      plan.address_space_bytes != 0 ? plan.address_space_bytes : l.memory_bytes;
  if (auto f = setLimit(RLIMIT_AS, address_space); f.failed()) return f;
  return setProcessLimit(plan);
}

Failure dropPrivileges(const ChildPlan& plan) {
  if (!plan.drop_to_job_ids) return {};
  // Groups first, then gid, then uid: after setresuid we could no longer change the others.
  if (::setgroups(0, nullptr) != 0) return fail(Stage::kSetgroups);
  if (::setresgid(plan.gid, plan.gid, plan.gid) != 0)
    return fail(Stage::kSetgid, static_cast<int>(plan.gid));
  if (::setresuid(plan.uid, plan.uid, plan.uid) != 0) {
    return fail(Stage::kSetuid, static_cast<int>(plan.uid));
  }
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0) {
    return fail(Stage::kCheckIds);
  }
  if (ru != plan.uid || eu != plan.uid || su != plan.uid || rg != plan.gid || eg != plan.gid ||
      sg != plan.gid || ::getgroups(0, nullptr) != 0) {
    errno = EPERM;
    return fail(Stage::kCheckIds);
  }
  return {};
}

Failure enterWorkDir(const ChildPlan& plan) {
  if (::chdir(plan.job_dir) != 0) return fail(Stage::kChdir);
  return {};
}

Failure forbidNewPrivileges() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(Stage::kNoNewPrivs);
  return {};
}

Failure enforceLandlock(const ChildPlan& plan) {
  if (plan.landlock_fd < 0) return {};
  if (int err = applyLandlock(kLandlockFd); err != 0) {
    errno = err;
    return fail(LandlockStep::kEnforce);
  }
  ::close(kLandlockFd);
  return {};
}

// Last before execve: every earlier step needs system calls the filter may deny (mount, setuid,
// prctl, landlock_*), and execve itself must be allowed by it.
Failure loadSeccompFilter(const ChildPlan& plan) {
  if (plan.seccomp == nullptr) {
    errno = EINVAL;  // fail closed: a job without its filter never runs
    return fail(Stage::kSeccomp);
  }
  if (int err = loadSeccompProgram(*plan.seccomp); err != 0) {
    errno = err;
    return fail(Stage::kSeccomp);
  }
  return {};
}

// The interpreter process's confinement, top to bottom; the namespaces, the fresh root and the
// cgroup were set up by the init, so this process and all it forks inherit them. A warm
// interpreter pool would run the same steps in a forked, pre-initialised interpreter instead of
// ending in execve.
Failure confineJob(const ChildPlan& plan, const TerminalFds& tty, int failure_fd) {
  // The init blocked every signal, and the mask survives execve.
  if (auto f = restoreSignalMask(); f.failed()) return f;
  // Before closeDescriptors, which closes the master (never the job's) and the slave's copy.
  if (auto f = takeTerminal(tty); f.failed()) return f;
  // First, so that no later step can hand the job a descriptor it must not have.
  if (auto f = closeDescriptors(plan, failure_fd); f.failed()) return f;
  // While still root: limits are set for this process and inherited by all it forks.
  if (auto f = setRlimits(plan); f.failed()) return f;
  if (auto f = dropPrivileges(plan); f.failed()) return f;
  // After the uid change, so that the working directory is entered with the job's own rights.
  if (auto f = enterWorkDir(plan); f.failed()) return f;
  // Nothing after this needs a privilege, and set-id binaries lose theirs; Landlock and an
  // unprivileged seccomp filter require it.
  if (auto f = forbidNewPrivileges(); f.failed()) return f;
  if (auto f = enforceLandlock(plan); f.failed()) return f;
  if (auto f = loadSeccompFilter(plan); f.failed()) return f;
  return {};
}

[[noreturn]] void runInterpreter(const ChildPlan& plan, const TerminalFds& tty, int failure_fd) {
  if (auto f = confineJob(plan, tty, failure_fd); f.failed()) reportAndExit(kReportFd, f);
  // Through the failure pipe, which the init reads until the execve closes it (reportStart).
  writeStamp(kReportFd, JobStage::kConfined);
  ::execve(plan.interpreter, plan.argv, plan.envp);
  reportAndExit(kReportFd, fail(Stage::kExecve));
}

// The start record, with the interpreter's pid as SCM_CREDENTIALS: the kernel translates it into
// the spawner's pid namespace, and it still names the interpreter because only we reap it, later.
// Naming a process other than ourselves needs CAP_SYS_ADMIN over our pid namespace, which the init
// has (root, or its own user namespace). Should the kernel refuse, the record goes without it and
// the spawner, seeing our own pid, knows the interpreter's is unknown.
void writeStartRecord(pid_t interpreter) {
  ReportRecord record{static_cast<int32_t>(ReportKind::kStarted), 0, 0, 0, 0};
  iovec iov{&record, sizeof record};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_CREDENTIALS;
  c->cmsg_len = CMSG_LEN(sizeof(ucred));
  ucred cred{interpreter, ::getuid(), ::getgid()};
  std::memcpy(CMSG_DATA(c), &cred, sizeof cred);
  ssize_t n;
  do {
    n = ::sendmsg(kReportFd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) writeRecord(kReportFd, record);
}

// Waits until the interpreter process has exec'd (its close-on-exec failure pipe reaches end of
// file) or failed (a record arrives), and tells the spawner which.
void reportStart(int failure_read_fd, pid_t interpreter) {
  for (;;) {
    ReportRecord record{};
    ssize_t n;
    do {
      n = ::read(failure_read_fd, &record, sizeof record);
    } while (n < 0 && errno == EINTR);
    // The interpreter's stamps pass through; anything else it wrote is its failure.
    if (n == static_cast<ssize_t>(sizeof record) &&
        record.kind == static_cast<int32_t>(ReportKind::kStamp)) {
      writeRecord(kReportFd, record);
      continue;
    }
    if (n == static_cast<ssize_t>(sizeof record)) {
      writeRecord(kReportFd, record);
    } else {
      writeStamp(kReportFd, JobStage::kExec);
      writeStartRecord(interpreter);
    }
    break;
  }
  ::close(failure_read_fd);
}

// Forwards signals to the interpreter and reaps every process of the namespace (orphans are
// re-parented to us). When the interpreter ends, everything left is killed and reaped too, so the
// spawner's wait4 on us counts the CPU time of the whole job.
// One signal taken by the init: forwarded to the interpreter, or (SIGCHLD) the reaping of every
// ended process. True when the interpreter has ended; its status is then in *status.
bool handleSignal(pid_t interpreter, int sig, int* status) {
  if (sig != SIGCHLD) {
    ::kill(interpreter, sig);
    return false;
  }
  bool interpreter_done = false;
  for (;;) {
    int s = 0;
    pid_t p = ::waitpid(-1, &s, WNOHANG);
    if (p <= 0) break;
    if (p == interpreter) {
      *status = s;
      interpreter_done = true;
    }
  }
  return interpreter_done;
}

// The interpreter's status, once every process of the job is waited for (sigwaitinfo: the
// signals stay blocked, see takeOverSignals).
int waitForJob(pid_t interpreter) {
  sigset_t all;
  sigfillset(&all);
  int status = 0;
  for (;;) {
    siginfo_t info{};
    int sig = ::sigwaitinfo(&all, &info);
    if (sig >= 0 && handleSignal(interpreter, sig, &status)) return status;
  }
}

// The same while relaying the job's terminal: the signals arrive through a signalfd, polled with
// the relay's descriptors. Fails the job should the signalfd be refused (it never is for pid 1
// of a namespace with every signal blocked): without it the init could not supervise at all.
int relayUntilJobEnds(pid_t interpreter, TerminalRelay& relay) {
  sigset_t all;
  sigfillset(&all);
  int sfd = ::signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    ::kill(-1, SIGKILL);
    _exit(127);
  }
  int status = 0;
  for (;;) {
    pollfd slots[TerminalRelay::kPollSlots + 1];
    relay.prepare(slots);
    slots[TerminalRelay::kPollSlots] = {sfd, POLLIN, 0};
    if (::poll(slots, TerminalRelay::kPollSlots + 1, -1) < 0) continue;
    relay.transfer(slots);
    if ((slots[TerminalRelay::kPollSlots].revents & POLLIN) == 0) continue;
    signalfd_siginfo info{};
    while (::read(sfd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      // The relay's own write to a stdout pipe the front closed raises SIGPIPE here: it is not
      // the program's (clients may send only SIGHUP, SIGINT, SIGQUIT, SIGKILL, SIGUSR1, SIGUSR2
      // and SIGTERM).
      if (info.ssi_signo == SIGPIPE) continue;
      if (handleSignal(interpreter, static_cast<int>(info.ssi_signo), &status)) {
        ::close(sfd);
        return status;
      }
    }
  }
}

// Keeps the job's namespaces, and so its /job, until the spawner has read the records (contain.h,
// kExitAckTimeoutMs). Every other process of the job is gone by now; a spawner that is gone or
// never answers only delays the end by the timeout.
void awaitSpawnersAnswer() {
  pollfd slot{kReportFd, POLLIN, 0};
  int left = kExitAckTimeoutMs;
  const uint64_t start = stageClockMicros();
  while (left > 0) {
    int rc = ::poll(&slot, 1, left);
    if (rc > 0) {
      // Taken out of the socket: an AF_UNIX socket closed with unread data makes its peer's next
      // read fail with ECONNRESET ahead of the records still queued there (our last ones).
      char release;
      (void)!::recv(kReportFd, &release, 1, MSG_DONTWAIT);
      return;
    }
    if (rc < 0 && errno != EINTR) return;
    left = kExitAckTimeoutMs - static_cast<int>((stageClockMicros() - start) / 1000);
  }
}

// Forwards signals to the interpreter and reaps every process of the namespace (orphans are
// re-parented to us); with a terminal, relays it meanwhile. When the interpreter ends, everything
// left is killed and reaped too, so the spawner's wait4 on us counts the CPU time of the whole
// job, and the terminal's last output is delivered before we report.
[[noreturn]] void superviseJob(pid_t interpreter, const TerminalFds& tty) {
  int interpreter_status = 0;
  if (tty.master >= 0) {
    // The pipes: 0 the front's input, 1 output to the front, 2 the window sizes (setUpDescriptors).
    TerminalRelay relay(tty.master, 0, 1, 2);
    interpreter_status = relayUntilJobEnds(interpreter, relay);
    writeStamp(kReportFd, JobStage::kExit);
    ::kill(-1, SIGKILL);
    int status = 0;
    while (::waitpid(-1, &status, 0) > 0 || errno == EINTR) {
    }
    relay.drain();
  } else {
    interpreter_status = waitForJob(interpreter);
    writeStamp(kReportFd, JobStage::kExit);
    // From pid 1, kill(-1) reaches every other process of the namespace.
    ::kill(-1, SIGKILL);
    int status = 0;
    while (::waitpid(-1, &status, 0) > 0 || errno == EINTR) {
    }
  }
  writeRecord(kReportFd, {static_cast<int32_t>(ReportKind::kExited), 0, interpreter_status, 0, 0});
  awaitSpawnersAnswer();
  _exit(WIFEXITED(interpreter_status) ? WEXITSTATUS(interpreter_status)
                                      : 128 + WTERMSIG(interpreter_status));
}

}  // namespace

void runJobInit(const ChildPlan& plan) {
  // Where every step reports its failure: the report pipe, which the stdio step moves to kReportFd.
  int report_fd = plan.report_fd;
  // While the host's /proc is still ours to read our own areas from.
  renameInit(plan.init_name);
  // A session of its own: no terminal, and no process group the daemon's could signal.
  if (auto f = newSession(); f.failed()) reportAndExit(report_fd, f);
  if (auto f = dieWithSpawner(); f.failed()) reportAndExit(report_fd, f);
  // Before the cgroup descriptors are closed with the others, and before anything forks.
  if (auto f = joinJobCgroup(plan); f.failed()) reportAndExit(report_fd, f);
  if (auto f = setUpDescriptors(plan); f.failed()) reportAndExit(report_fd, f);
  report_fd = kReportFd;
  // After the prctl (the race it closes) and after our copy of the read end is gone.
  if (auto f = checkSpawnerAlive(); f.failed()) _exit(127);
  // Before anything that depends on our ids inside the namespace (files made in the new root
  // need a mapped owner).
  if (auto f = mapUser(plan); f.failed()) reportAndExit(report_fd, f);
  if (auto f = makeMountsPrivate(); f.failed()) reportAndExit(report_fd, f);
  // By the init, because the fresh /proc must be mounted by a process of the job's pid namespace.
  if (auto f = buildRoot(plan); f.failed()) reportAndExit(report_fd, f);
  if (auto f = setHostname(plan); f.failed()) reportAndExit(report_fd, f);
  if (auto f = bringUpLoopback(plan); f.failed()) reportAndExit(report_fd, f);
  if (auto f = pivotIntoRoot(); f.failed()) reportAndExit(report_fd, f);
  if (auto f = addRulesForJobMounts(plan); f.failed()) reportAndExit(report_fd, f);
  writeStamp(report_fd, JobStage::kRootBuilt);
  // After pivot_root: /dev/ptmx must be the job's own devpts instance.
  TerminalFds tty;
  if (auto f = openTerminal(plan, tty); f.failed()) reportAndExit(report_fd, f);
  // Before the fork, so that no signal sent to the job can slip between fork and the wait loop.
  if (auto f = takeOverSignals(); f.failed()) reportAndExit(report_fd, f);

  int failure_pipe[2];
  if (::pipe2(failure_pipe, O_CLOEXEC) != 0) reportAndExit(report_fd, fail(Stage::kFork));
  // _Fork (glibc 2.34), not fork: this process is the child of a raw clone3 that glibc never saw.
  // fork() runs the atfork handlers and takes the malloc and stdio locks, state that is a frozen
  // copy of the spawner's (nobody here may allocate, and a lock copied while held would never be
  // released). _Fork runs no handler and takes none of those locks (it is async-signal-safe), and
  // still points the kernel's CLONE_CHILD_SETTID at the thread descriptor, so the interpreter's
  // cached tid is its own (a raw clone would leave it the spawner's, for raise() and recursive
  // locks to misuse).
  pid_t interpreter = ::_Fork();
  if (interpreter < 0) reportAndExit(report_fd, fail(Stage::kFork));
  if (interpreter == 0) {
    ::close(failure_pipe[0]);
    runInterpreter(plan, tty, failure_pipe[1]);
  }
  ::close(failure_pipe[1]);
  // The slave is the job's alone: once every job process has closed it, the master reads EIO.
  if (tty.slave >= 0) ::close(tty.slave);
  reportStart(failure_pipe[0], interpreter);
  superviseJob(interpreter, tty);
}

}  // namespace pyrun::sandbox
