// The job's init and the interpreter's confinement. Runs between fork and exec: only system calls
// and stack buffers, no allocation, no exceptions, no logging (the spawner's heap and locks are a
// copy that nobody will ever release). Each failure is one ReportRecord and _exit(127).
#include "sandbox/contain.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace pyrun::sandbox {
namespace {

constexpr int kReportFd = 3;  // the init's report pipe, and in the interpreter its failure pipe

// A failing step: the record to send. stage 0 means success.
struct Failure {
  Stage stage{};
  int error = 0;
  int arg = 0;
  bool failed() const { return error != 0; }
};

Failure fail(Stage stage, int arg = 0) { return {stage, errno != 0 ? errno : EINVAL, arg}; }

void writeRecord(int fd, const ReportRecord& record) {
  while (::write(fd, &record, sizeof record) < 0 && errno == EINTR) {
  }
}

[[noreturn]] void reportAndExit(int fd, const Failure& f) {
  writeRecord(fd, {static_cast<int32_t>(ReportKind::kFailed), static_cast<int32_t>(f.stage),
                   f.error, f.arg});
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
  if (::close_range(kReportFd + 1, ~0u, 0) != 0) return fail(Stage::kCloseFds);
  return {};
}

// PR_SET_PDEATHSIG only covers a parent that dies after the prctl. getppid() is 0 inside a new pid
// namespace, so the check is the report pipe instead: its only read end is the spawner's (ours was
// just closed), and a pipe without readers polls POLLERR.
Failure checkSpawnerAlive() {
  pollfd p{kReportFd, POLLOUT, 0};
  if (::poll(&p, 1, 0) < 0) return fail(Stage::kParentGone);
  if ((p.revents & POLLERR) != 0) {
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
  if (::prctl(PR_SET_DUMPABLE, 1) != 0) return fail(Stage::kUserNamespace, 3);
  // setgroups must be denied before an unprivileged process may write gid_map.
  if (!writeProcFile("/proc/self/setgroups", "deny", 4)) return fail(Stage::kUserNamespace);
  size_t n = formatIdentityMap(buf, plan.outer_uid);
  if (!writeProcFile("/proc/self/uid_map", buf, n)) return fail(Stage::kUserNamespace, 1);
  n = formatIdentityMap(buf, plan.outer_gid);
  if (!writeProcFile("/proc/self/gid_map", buf, n)) return fail(Stage::kUserNamespace, 2);
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

// ---- the interpreter's confinement, in order ----

Failure restoreSignalMask() {
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) return fail(Stage::kSignals);
  return {};
}

// Leaves 0-2 and the failure pipe (moved to 3, close-on-exec, so the job never sees it): the report
// pipe is replaced by it, the init's other descriptors were closed before the fork.
Failure closeDescriptors(int failure_fd) {
  if (failure_fd != kReportFd && ::dup3(failure_fd, kReportFd, O_CLOEXEC) < 0) {
    return fail(Stage::kCloseFds);
  }
  if (::close_range(kReportFd + 1, ~0u, 0) != 0) return fail(Stage::kCloseFds);
  return {};
}

Failure setLimit(int resource, rlim_t value) {
  rlimit rl{value, value};
  if (::setrlimit(resource, &rl) != 0) return fail(Stage::kRlimit, resource);
  return {};
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
  if (auto f = setLimit(RLIMIT_AS, l.memory_bytes); f.failed()) return f;
  // RLIMIT_NPROC counts every process of the real uid: meaningful only for a per-job uid.
  if (plan.set_nproc) {
    if (auto f = setLimit(RLIMIT_NPROC, l.processes); f.failed()) return f;
  }
  return {};
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
  if (::chdir(plan.workdir) != 0) return fail(Stage::kChdir);
  return {};
}

Failure forbidNewPrivileges() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return fail(Stage::kNoNewPrivs);
  return {};
}

// The interpreter process's confinement, top to bottom. The sandbox issue inserts its steps
// (mount/net/ipc/uts namespaces, cgroup, Landlock, seccomp last) here; a warm interpreter pool
// would run the same steps in a forked, pre-initialised interpreter instead of ending in execve.
Failure confineJob(const ChildPlan& plan, int failure_fd) {
  // The init blocked every signal, and the mask survives execve.
  if (auto f = restoreSignalMask(); f.failed()) return f;
  // First, so that no later step can hand the job a descriptor it must not have.
  if (auto f = closeDescriptors(failure_fd); f.failed()) return f;
  // While still root: limits are set for this process and inherited by all it forks.
  if (auto f = setRlimits(plan); f.failed()) return f;
  if (auto f = dropPrivileges(plan); f.failed()) return f;
  // After the uid change, so that the working directory is entered with the job's own rights.
  if (auto f = enterWorkDir(plan); f.failed()) return f;
  // Last before exec: nothing after this needs a privilege, and set-id binaries lose theirs.
  if (auto f = forbidNewPrivileges(); f.failed()) return f;
  return {};
}

[[noreturn]] void runInterpreter(const ChildPlan& plan, int failure_fd) {
  if (auto f = confineJob(plan, failure_fd); f.failed()) reportAndExit(kReportFd, f);
  ::execve(plan.interpreter, plan.argv, plan.envp);
  reportAndExit(kReportFd, fail(Stage::kExecve));
}

// Waits until the interpreter process has exec'd (its close-on-exec failure pipe reaches end of
// file) or failed (a record arrives), and tells the spawner which.
void reportStart(int failure_read_fd) {
  ReportRecord record{};
  ssize_t n;
  do {
    n = ::read(failure_read_fd, &record, sizeof record);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof record)) {
    writeRecord(kReportFd, record);
  } else {
    writeRecord(kReportFd, {static_cast<int32_t>(ReportKind::kStarted), 0, 0, 0});
  }
  ::close(failure_read_fd);
}

// Forwards signals to the interpreter and reaps every process of the namespace (orphans are
// re-parented to us). When the interpreter ends, everything left is killed and reaped too, so the
// spawner's wait4 on us counts the CPU time of the whole job.
[[noreturn]] void superviseJob(pid_t interpreter) {
  sigset_t all;
  sigfillset(&all);
  int interpreter_status = 0;
  for (;;) {
    siginfo_t info{};
    int sig = ::sigwaitinfo(&all, &info);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      ::kill(interpreter, sig);
      continue;
    }
    bool interpreter_done = false;
    for (;;) {
      int status = 0;
      pid_t p = ::waitpid(-1, &status, WNOHANG);
      if (p <= 0) break;
      if (p == interpreter) {
        interpreter_status = status;
        interpreter_done = true;
      }
    }
    if (!interpreter_done) continue;
    // From pid 1, kill(-1) reaches every other process of the namespace.
    ::kill(-1, SIGKILL);
    int status = 0;
    while (::waitpid(-1, &status, 0) > 0 || errno == EINTR) {
    }
    writeRecord(kReportFd, {static_cast<int32_t>(ReportKind::kExited), 0, interpreter_status, 0});
    _exit(WIFEXITED(interpreter_status) ? WEXITSTATUS(interpreter_status)
                                        : 128 + WTERMSIG(interpreter_status));
  }
}

}  // namespace

const char* stageName(Stage stage) noexcept {
  switch (stage) {
    case Stage::kSetsid:
      return "setsid";
    case Stage::kParentDeathSignal:
      return "pdeathsig";
    case Stage::kStdio:
      return "stdio";
    case Stage::kParentGone:
      return "parent";
    case Stage::kUserNamespace:
      return "userns";
    case Stage::kSignals:
      return "signals";
    case Stage::kFork:
      return "fork";
    case Stage::kCloseFds:
      return "close-fds";
    case Stage::kRlimit:
      return "rlimit";
    case Stage::kSetgroups:
      return "setgroups";
    case Stage::kSetgid:
      return "setgid";
    case Stage::kSetuid:
      return "setuid";
    case Stage::kCheckIds:
      return "check-ids";
    case Stage::kChdir:
      return "chdir";
    case Stage::kNoNewPrivs:
      return "no-new-privs";
    case Stage::kExecve:
      return "execve";
  }
  return "unknown";
}

void runJobInit(const ChildPlan& plan) {
  // A session of its own: no terminal, and no process group the daemon's could signal.
  if (auto f = newSession(); f.failed()) reportAndExit(plan.report_fd, f);
  if (auto f = dieWithSpawner(); f.failed()) reportAndExit(plan.report_fd, f);
  if (auto f = setUpDescriptors(plan); f.failed()) reportAndExit(plan.report_fd, f);
  // After the prctl (the race it closes) and after our copy of the read end is gone.
  if (auto f = checkSpawnerAlive(); f.failed()) _exit(127);
  // Before anything that depends on our ids inside the namespace.
  if (auto f = mapUser(plan); f.failed()) reportAndExit(kReportFd, f);
  // Before the fork, so that no signal sent to the job can slip between fork and the wait loop.
  if (auto f = takeOverSignals(); f.failed()) reportAndExit(kReportFd, f);

  int failure_pipe[2];
  if (::pipe2(failure_pipe, O_CLOEXEC) != 0) reportAndExit(kReportFd, fail(Stage::kFork));
  pid_t interpreter = ::fork();
  if (interpreter < 0) reportAndExit(kReportFd, fail(Stage::kFork));
  if (interpreter == 0) {
    ::close(failure_pipe[0]);
    runInterpreter(plan, failure_pipe[1]);
  }
  ::close(failure_pipe[1]);
  reportStart(failure_pipe[0]);
  superviseJob(interpreter);
}

}  // namespace pyrun::sandbox
