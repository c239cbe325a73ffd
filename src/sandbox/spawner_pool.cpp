// The warm pool: jobs parked per policy, built and confined exactly like a cold job, whose
// interpreter waits in the boot module for one job each; the hand-off that gives a parked job its
// client's files, limits and argv; and the refill that replaces it (docs/SANDBOX.md, "The warm
// pool").
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "common/log.h"
#include "sandbox/boot_module.h"
#include "sandbox/results.h"
#include "sandbox/spawner_process.h"

namespace pyrun::sandbox::detail {
namespace {

// The longest pause between attempts to build a parked job after failures.
constexpr uint64_t kMaxPoolBackoffUs = 30'000'000;
constexpr uint64_t kMinPoolBackoffUs = 100'000;
// How long a replacement waits after a hand-off at most (spawner_process.h).
constexpr uint64_t kRefillDelayUs = 100'000;

// utime + stime of a process, in microseconds, from /proc/PID/stat (0 when it cannot be read).
uint64_t cpuMicrosOf(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return 0;
  char buf[1024];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return 0;
  // Fields 14 and 15 (utime, stime); the ')' ends field 2.
  unsigned long long values[16] = {};
  int field = 2;
  for (++p; *p != '\0' && field < 15;) {
    while (*p == ' ') ++p;
    ++field;
    char* end = nullptr;
    values[field] = std::strtoull(p, &end, 10);
    p = end != nullptr && end != p ? end : p + 1;
    while (*p != ' ' && *p != '\0') ++p;
  }
  long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return 0;
  return (values[14] + values[15]) * 1'000'000ull / static_cast<unsigned long long>(ticks);
}

// Whether the process behind pidfd has exited (its pidfd polls readable).
bool hasExited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

struct CopyFailure {
  int32_t step = -1;  // index into the steps, -1: reaching /job
  int32_t error = 0;
};

// Runs in a child of the spawner that joined the job's cgroup, so that the pages of the job's
// files in its /job tmpfs are charged to the job, as when its init copies them in a cold start.
// Nothing of a client has run in the job (its interpreter waits for the hand-off, which comes
// after this copy), so /job holds nothing but what we make here; the staged sources, written by
// the front, are opened with openat2 below the staging directory without following any link.
[[noreturn]] void copyIntoJob(pid_t init_pid, const CgroupJoin* join, int staged_fd,
                              const std::vector<MountStep>& steps, std::optional<uid_t> uid,
                              int report_fd) {
  auto failed = [&](int32_t step, int error) {
    CopyFailure f{step, error};
    (void)!::write(report_fd, &f, sizeof f);
    _exit(1);
  };
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Root, but with nothing of the spawner's beyond what the copy needs: no other job's pipes or
  // pidfds, no front socket; and no way to gain privileges by exec.
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  std::vector<int> keep = {staged_fd, report_fd};
  if (join != nullptr) keep.insert(keep.end(), join->fds, join->fds + join->count);
  std::sort(keep.begin(), keep.end());
  unsigned from = 3;
  for (int fd : keep) {
    if (fd < 3) continue;
    if (static_cast<unsigned>(fd) > from) ::close_range(from, static_cast<unsigned>(fd) - 1, 0);
    from = static_cast<unsigned>(fd) + 1;
  }
  ::close_range(from, ~0u, 0);
  if (join != nullptr) {
    if (int err = joinCgroup(*join); err != 0) failed(-1, err);
  }
  const std::string root_path = "/proc/" + std::to_string(init_pid) + "/root";
  UniqueFd root(::open(root_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) failed(-1, errno);
  UniqueFd job(::openat(root.get(), "job", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!job) failed(-1, errno);
  const std::string prefix = std::string(kJobDirInRoot).substr(1) + "/";
  for (size_t i = 0; i < steps.size(); ++i) {
    const MountStep& m = steps[i];
    if (m.kind != MountKind::kJobDir && m.kind != MountKind::kJobFile) continue;
    if (m.target.compare(0, prefix.size(), prefix) != 0) failed(static_cast<int32_t>(i), EINVAL);
    const std::string rel = m.target.substr(prefix.size());
    const auto step = static_cast<int32_t>(i);
    UniqueFd out;
    if (m.kind == MountKind::kJobDir) {
      if (::mkdirat(job.get(), rel.c_str(), 0700) != 0) failed(step, errno);
      out.reset(::openat(job.get(), rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!out) failed(step, errno);
    } else {
      open_how how{};
      how.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK;
      how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
      UniqueFd in(
          static_cast<int>(::syscall(SYS_openat2, staged_fd, m.source.c_str(), &how, sizeof how)));
      if (!in) failed(step, errno);
      struct stat st {};
      if (::fstat(in.get(), &st) != 0) failed(step, errno);
      // One link, checked on what was opened: the plan's check (planJobRoot) was on the path, and
      // a file swapped for a hard link to another since must not be copied with root's rights.
      if (!S_ISREG(st.st_mode) || st.st_nlink != 1) failed(step, EINVAL);
      out.reset(::openat(job.get(), rel.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!out) failed(step, errno);
      for (;;) {
        ssize_t n = ::sendfile(out.get(), in.get(), nullptr, 1 << 30);
        if (n > 0) continue;
        if (n == 0) break;
        if (errno == EINTR) continue;
        failed(step, errno);
      }
    }
    if (uid && ::fchown(out.get(), *uid, static_cast<gid_t>(*uid)) != 0) failed(step, errno);
    // After the chown, which would clear set-id bits; permission bits only anyway.
    if (::fchmod(out.get(), m.mode & 0777) != 0) failed(step, errno);
  }
  _exit(0);
}

}  // namespace

size_t Spawner::activeJobs() const {
  return static_cast<size_t>(
      std::count_if(jobs_.begin(), jobs_.end(), [](const auto& j) { return !j.second->retired; }));
}

bool Spawner::isParked(uint64_t job_id) const {
  auto it = jobs_.find(job_id);
  return it != jobs_.end() && it->second->parked;
}

void Spawner::backOffPool() {
  pool_backoff_us_ = std::clamp(pool_backoff_us_ * 2, kMinPoolBackoffUs, kMaxPoolBackoffUs);
  pool_retry_us_ = monotonicMicros() + pool_backoff_us_;
}

void Spawner::retireParked(Job& job, const char* why) {
  if (!job.parked || job.retired) return;
  PYRUN_LOG(kInfo) << "retiring parked job " << job.id << " of policy " << job.pool_policy << ": "
                   << why;
  job.retired = true;
  job.kill_requested = true;
  // SIGKILL to its init kills the whole namespace; finishJob reaps it without a message.
  if (sendSignal(job.pidfd.get(), SIGKILL, nullptr, 0) != 0) {
    PYRUN_PLOG(kWarning) << "kill parked job " << job.id;
  }
}

void Spawner::drainPool(const char* why) {
  for (auto& [id, job] : jobs_) retireParked(*job, why);
  pool_retry_us_ = 0;
  pool_backoff_us_ = 0;
}

bool Spawner::retireOneParked() {
  // The one most recently parked: the others are likelier to be ready.
  for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it) {
    if (it->second->parked && !it->second->retired) {
      retireParked(*it->second, "room is needed for a job that starts cold");
      return true;
    }
  }
  return false;
}

std::optional<std::string> Spawner::poolShortOf() const {
  if (front_gone_) return std::nullopt;
  if (config_.max_jobs != 0 && activeJobs() >= config_.max_jobs) return std::nullopt;
  for (const auto& [name, size] : pool_sizes_) {
    if (size == 0) continue;
    auto p = policies_.find(name);
    if (p == policies_.end()) continue;
    auto parked = std::count_if(jobs_.begin(), jobs_.end(), [&](const auto& j) {
      const Job& job = *j.second;
      return job.parked && !job.retired && job.pool_policy == name && job.policy == p->second;
    });
    if (static_cast<uint64_t>(parked) < size) return name;
  }
  return std::nullopt;
}

void Spawner::refillPool() {
  const uint64_t now = monotonicMicros();
  if (now < pool_retry_us_ || now < refill_not_before_us_) return;
  auto name = poolShortOf();
  if (!name) return;
  if (auto r = parkJob(*name, policies_.at(*name)); !r) {
    PYRUN_LOG(kWarning) << "cannot park a job of policy " << *name << ": " << r.error().detail();
    backOffPool();
  }
}

Result<void> Spawner::parkJob(const std::string& name,
                              const std::shared_ptr<const CompiledPolicy>& p) {
  // Parked jobs have no terminal (docs/SANDBOX.md, "Terminals").
  auto root_template = rootTemplateFor(p, false);
  if (!root_template) return root_template.error();
  auto job = std::make_unique<Job>();
  job->id = next_pool_id_++;
  job->parked = true;
  job->pool_policy = name;
  job->policy = p;
  job->interpreter = p->policy.interpreter;
  // Parked with the policy's limits; the hand-off lowers them to the client's.
  job->limits = jobLimitsOf(p->policy.limits);
  if (root_) {
    uid_t uid = allocateUid(job->id);
    if (uid == static_cast<uid_t>(-1)) return Error(Errc::kBusy, "every job uid is in use");
    job->uid = uid;
  }
  // Its staging directory stays empty: the client's files are copied into its /job at the
  // hand-off. Removed at its end like any job's.
  WorkDir& wd = job->workdir;
  wd.name = std::to_string(job->id) + "-" + randomSuffix();
  wd.path = config_.jobs_dir + "/" + wd.name;
  if (::mkdirat(jobs_dir_.get(), wd.name.c_str(), 0700) != 0) {
    return errnoError("create working directory " + wd.path, errno);
  }
  wd.fd.reset(
      ::openat(jobs_dir_.get(), wd.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  auto undo = [&](Error e) -> Result<void> {
    job->cgroup.reset();
    (void)removeTree(jobs_dir_.get(), wd.name);
    return e;
  };
  if (!wd.fd) return undo(errnoError("open working directory " + wd.path, errno));
  if (job->uid && ::fchown(wd.fd.get(), *job->uid, static_cast<gid_t>(*job->uid)) != 0) {
    return undo(errnoError("chown working directory " + wd.path, errno));
  }
  if (auto r = createJobCgroup(*job, job->limits); !r) return undo(r.error());
  JobSpec spec;
  spec.job_id = job->id;
  spec.interpreter = job->interpreter;
  spec.policy = name;
  spec.limits = job->limits;
  if (auto f = startJob(*job, spec, *root_template)) {
    return undo(Error(f->error.code(), std::string(f->stage) + ": " + f->error.detail()));
  }
  // Its init copies nothing from it (no kJobFile step): it can go now, so that parked jobs leave
  // nothing in the jobs directory. removeTree at its end finds nothing.
  wd.fd.reset();
  (void)removeTree(jobs_dir_.get(), wd.name);
  // Not running anything of a client's: no wall-clock limit until the hand-off.
  job->deadline_us = UINT64_MAX;
  PYRUN_LOG(kDebug) << "parked job " << job->id << " of policy " << name << " pid " << job->pid;
  jobs_.emplace(job->id, std::move(job));
  return {};
}

bool Spawner::handOff(uint64_t id, JobSpec& spec,
                      const std::shared_ptr<const CompiledPolicy>& policy, std::string& upload) {
  // A parked job of this policy, as loaded now, whose interpreter has started.
  Job* parked = nullptr;
  for (auto& [pool_id, job] : jobs_) {
    if (!job->parked || job->retired || job->pool_policy != spec.policy) continue;
    if (job->policy != policy) {
      // Built under a policy set that is no longer loaded: never handed a job.
      retireParked(*job, "its policy was reloaded");
      continue;
    }
    if (!job->started || job->interpreter_pid <= 0 || hasExited(job->pidfd.get())) continue;
    parked = job.get();
    break;
  }
  if (parked == nullptr) return false;
  // The rlimits confineJob would give this job cold; the boot module lowers its own to them (it
  // counts the CPU limit from the hand-off).
  const JobLimits& l = spec.limits;
  const bool cgroup_memory = parked->cgroup.has_value() && cgroups_.hasMemory();
  const bool cgroup_pids = parked->cgroup.has_value() && cgroups_.hasPids();
  HandoffLimits rlimits;
  rlimits.cpu_seconds = l.cpu_seconds;
  rlimits.file_size_bytes = l.file_size_bytes;
  rlimits.open_files = l.open_files;
  rlimits.address_space_bytes = cgroup_memory ? l.memory_bytes * 4 : l.memory_bytes;
  // Unprivileged, RLIMIT_NPROC stays the policy's (on kernels before 5.14 it is not set at all).
  if (root_) rlimits.processes = cgroup_pids ? l.processes + 1 : l.processes;
  const std::string handoff =
      encodeHandoff(rlimits, std::string(kJobDirInRoot) + "/" + spec.script_name, spec.args);
  // The pipe holds it whole, so the write below never waits for the boot module.
  if (handoff.size() > kMaxHandoffBytes) return false;
  Job& job = *parked;

  // The client's files, staged as for a cold start (uploads moved into place, the script and
  // files written without following links), then listed as the cold init would copy them.
  spec.job_id = id;
  Owner owner{job.uid.value_or(0), static_cast<gid_t>(job.uid.value_or(0))};
  auto staged = createWorkDir(jobs_dir_.get(), config_.jobs_dir, spec, root_ ? &owner : nullptr,
                              uploads_dir_.get());
  if (!staged) {
    sendFailed(id, "workdir", EIO, staged.error().detail());
    return true;  // the parked job is untouched and stays in the pool
  }
  upload.clear();  // moved into the staging directory, removed with it
  auto drop_staged = [&] {
    staged->fd.reset();
    if (auto r = removeTree(jobs_dir_.get(), staged->name); !r) {
      PYRUN_LOG(kError) << r.error().detail();
    }
  };
  auto plan = planJobRoot(policy->policy, staged->path);
  if (!plan) {
    drop_staged();
    sendFailed(id, plan.error().code() == Errc::kPolicy ? "policy" : "workdir", EIO,
               plan.error().detail());
    return true;
  }

  // From here the parked job serves this job or dies: it is never handed another.
  job.parked = false;
  auto fail = [&](const std::string& stage, int error, const std::string& detail) {
    job.parked = true;  // so that its end is silent
    retireParked(job, "its hand-off failed");
    drop_staged();
    sendFailed(id, stage, error, detail);
    return true;
  };

  // Limits: only ever lowered, to what a cold start of this job would have had (the rlimits by
  // the boot module itself, above). Before the copy, which is charged to the job under the limit
  // its files are copied under in a cold start.
  if (job.cgroup) {
    CgroupLimits lower;
    if (cgroups_.hasMemory() && l.memory_bytes < job.limits.memory_bytes) {
      lower.memory_bytes = l.memory_bytes;
    }
    if (cgroups_.hasPids() && l.processes < job.limits.processes) lower.processes = l.processes;
    if (lower.memory_bytes != 0 || lower.processes != 0) {
      if (auto r = job.cgroup->setLimits(lower); !r) return fail("cgroup", EIO, r.error().detail());
    }
  }

  // The files, copied into its /job by a helper in its cgroup.
  UniqueFd staged_path(::openat(jobs_dir_.get(), staged->name.c_str(),
                                O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!staged_path) return fail("workdir", errno, "open " + staged->path);
  auto report = makePipe();
  if (!report) return fail("mount", EIO, report.error().detail());
  pid_t helper = ::fork();
  if (helper < 0) return fail("mount", errno, "fork the copy into the job");
  if (helper == 0) {
    report->first.reset();
    copyIntoJob(job.pid, job.cgroup ? &job.cgroup->join() : nullptr, staged_path.get(), plan->steps,
                root_ ? job.uid : std::nullopt, report->second.get());
  }
  report->second.reset();
  int status = 0;
  pid_t waited;
  do {
    waited = ::waitpid(helper, &status, 0);
  } while (waited < 0 && errno == EINTR);
  if (waited != helper) status = W_EXITCODE(1, 0);  // not known to have succeeded: it failed
  CopyFailure failure{};
  ssize_t got = ::read(report->first.get(), &failure, sizeof failure);
  staged_path.reset();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (got != static_cast<ssize_t>(sizeof failure)) {
      return fail("mount", EIO, "copying the job's files into the parked job failed");
    }
    std::string what = failure.step >= 0 && static_cast<size_t>(failure.step) < plan->steps.size()
                           ? describeMountStep(plan->steps[static_cast<size_t>(failure.step)])
                           : std::string("open the parked job's /job");
    return fail("mount", failure.error, what + ": " + std::strerror(failure.error));
  }

  // The CPU it used in its boot is not the client's: measured now and subtracted at its end.
  job.boot_cpu_us = cpuMicrosOf(job.pid) + cpuMicrosOf(job.interpreter_pid);
  // Its stamps are the job's from here: the parking ones (cgroup .. exec) predate the request.
  // Before the write: once the boot module has its argv, the job may end (and the init stamp its
  // exit) before this loop gets back to it.
  job.times = StageTimes{};
  job.times.stamp(JobStage::kWorkDir);  // the files staged above, copied in
  job.times.stamp(JobStage::kHandoff);
  // The client's results come from its /job, opened now, while the job cannot have ended; then the
  // init is released (contain.h, kExitAckTimeoutMs), before the job can reach its end.
  UniqueFd job_dir;
  std::string job_dir_error;
  if (!spec.results.empty()) {
    if (auto dir = openJobWorkdir(job.pid); dir) {
      job_dir = std::move(*dir);
    } else {
      job_dir_error = dir.error().detail();
      PYRUN_LOG(kError) << "job " << id << ": " << job_dir_error;
    }
  }
  releaseInit(job);
  // The job's argv: the boot module reads it, closes the pipe and runs the script.
  ssize_t w;
  do {
    w = ::write(job.handoff_w.get(), handoff.data(), handoff.size());
  } while (w < 0 && errno == EINTR);
  if (w != static_cast<ssize_t>(handoff.size())) {
    return fail("handoff", w < 0 ? errno : EIO, "hand the job to the parked interpreter");
  }
  job.handoff_w.reset();

  // From now on it is the client's job, under its id. The staging directory is its working
  // directory on the host, removed at its end as a cold job's.
  staged->fd.reset();
  auto node = jobs_.extract(job.id);
  Job& handed = *node.mapped();
  handed.id = id;
  handed.workdir = std::move(*staged);
  handed.limits = l;
  handed.results = spec.results;
  handed.results_max_files = spec.results_max_files;
  handed.results_max_bytes = spec.results_max_bytes;
  handed.started_us = monotonicMicros();
  handed.deadline_us =
      handed.started_us + (uint64_t{l.wall_seconds} + kWallGraceSeconds) * 1'000'000u;
  handed.job_dir = std::move(job_dir);
  handed.job_dir_error = std::move(job_dir_error);
  node.key() = id;
  auto inserted = jobs_.insert(std::move(node));
  Job& j = *inserted.position->second;
  int fds[3] = {j.stdin_w.get(), j.stdout_r.get(), j.stderr_r.get()};
  send(JobStarted{j.id, j.pid, j.times}, fds);
  j.stdin_w.reset();
  j.stdout_r.reset();
  j.stderr_r.reset();
  PYRUN_LOG(kInfo) << "job " << id << " pid " << j.pid << " handed to a parked interpreter";
  refill_not_before_us_ = monotonicMicros() + kRefillDelayUs;
  return true;
}

}  // namespace pyrun::sandbox::detail
