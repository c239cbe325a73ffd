// A job's launch: the spawn request checked against its policy, the working directory and cgroup
// made, the child's plan built and the job cloned into its namespaces.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <set>
#include <utility>

#include "common/log.h"
#include "sandbox/clone3.h"
#include "sandbox/landlock.h"
#include "sandbox/spawner_process.h"

namespace pyrun::sandbox::detail {
namespace {

// The CLONE_NEW* flags of <linux/sched.h>, which clashes with glibc's <sched.h>.
constexpr uint64_t kCloneNewPid = 0x20000000;
constexpr uint64_t kCloneNewUser = 0x10000000;
constexpr uint64_t kCloneNewNs = 0x00020000;
constexpr uint64_t kCloneNewUts = 0x04000000;
constexpr uint64_t kCloneNewIpc = 0x08000000;
constexpr uint64_t kCloneNewNet = 0x40000000;

}  // namespace

uid_t Spawner::allocateUid(uint64_t job_id) const {
  std::set<uid_t> used;
  for (const auto& [id, job] : jobs_) {
    if (job->uid) used.insert(*job->uid);
  }
  uint32_t count = config_.job_uid_count == 0 ? 1 : config_.job_uid_count;
  // Two running jobs never share a uid: they could signal and ptrace each other.
  for (uint32_t i = 0; i < count; ++i) {
    auto uid = static_cast<uid_t>(config_.job_uid_base + (job_id + i) % count);
    if (used.count(uid) == 0) return uid;
  }
  return static_cast<uid_t>(-1);
}

void Spawner::spawn(channel::SpawnRequest request) {
  uint64_t id = request.job_id;
  auto spec = channel::readSealedSpec(request.spec_memfd.get());
  request.spec_memfd.reset();
  if (!spec) return sendFailed(id, "spec", EINVAL, spec.error().detail());
  // A job refused before its working directory exists still must not leave its upload behind.
  struct DropUpload {
    int dir;
    std::string name;
    ~DropUpload() {
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
        return;
      if (auto r = removeTree(dir, name); !r) {
        PYRUN_LOG(kError) << r.error().detail();
      }
    }
  } drop_upload{uploads_dir_.get(), spec->upload};
  auto bad = [&](const std::string& why) { sendFailed(id, "spec", EINVAL, why); };
  if (spec->job_id != id) {
    return bad("job spec is for job " + std::to_string(spec->job_id) + ", not job " +
               std::to_string(id));
  }
  if (jobs_.count(id) != 0) return bad("job " + std::to_string(id) + " is already running");
  // The warm pool's own ids: a front that used one could take the place of a parked job.
  if (id >= kFirstPoolId) return bad("job id " + std::to_string(id) + " is reserved");
  // Parked jobs count against the cap, but one can always give way (or take the job).
  if (config_.max_jobs != 0 && activeJobs() >= config_.max_jobs &&
      std::none_of(jobs_.begin(), jobs_.end(),
                   [](const auto& j) { return j.second->parked && !j.second->retired; })) {
    return sendFailed(
        id, "busy", EAGAIN,
        "the spawner already runs " + std::to_string(jobs_.size()) + " jobs, its cap");
  }
  auto policy = policies_.find(spec->policy);
  if (policy == policies_.end()) {
    return sendFailed(id, "policy", ENOENT, "policy '" + spec->policy + "' is not loaded");
  }
  // The policy this spawner compiled decides what runs and within which bounds; the front may
  // only ask for tighter limits (a client's RUN may lower them), never for another interpreter or
  // looser limits, so a compromised front gains nothing by lying in the spec.
  const policy::Policy& rules = policy->second->policy;
  if (spec->interpreter != rules.interpreter) {
    return bad("interpreter '" + spec->interpreter + "' is not policy " + spec->policy + "'s (" +
               rules.interpreter + ")");
  }
  JobLimits l = jobLimitsWithin(spec->limits, rules.limits);
  if (l.cpu_seconds == 0 || l.memory_bytes < (16u << 20) || l.file_size_bytes == 0 ||
      l.open_files < 8 || l.processes == 0) {
    return bad(
        "job limits are below the minimum (cpu 1 s, memory 16 MiB, file size 1 byte, "
        "8 open files, 1 process)");
  }
  spec->limits = l;
  // A parked interpreter of this policy, when there is one, takes the job; else it starts cold,
  // after a parked job of another policy gave way if the cap needs it.
  // A job with a terminal starts cold: parked jobs have none (docs/SANDBOX.md, "Terminals").
  if (!spec->terminal.enabled && handOff(id, *spec, policy->second, drop_upload.name)) return;
  if (config_.max_jobs != 0 && activeJobs() >= config_.max_jobs && !retireOneParked()) {
    return sendFailed(
        id, "busy", EAGAIN,
        "the spawner already runs " + std::to_string(jobs_.size()) + " jobs, its cap");
  }

  // Before anything is made for the job: a root that cannot be built fails it, never a weaker one.
  // A terminal is a policy's to allow (startJob refuses it otherwise).
  auto root_template = rootTemplateFor(policy->second, spec->terminal.enabled && rules.terminal);
  if (!root_template) {
    return sendFailed(id, root_template.error().code() == Errc::kPolicy ? "policy" : "root", EIO,
                      root_template.error().detail());
  }

  auto job = std::make_unique<Job>();
  job->id = id;
  job->interpreter = spec->interpreter;
  job->limits = l;
  job->policy = policy->second;
  job->results = spec->results;
  job->results_max_files = spec->results_max_files;
  job->results_max_bytes = spec->results_max_bytes;
  if (root_) {
    uid_t uid = allocateUid(id);
    if (uid == static_cast<uid_t>(-1)) {
      return sendFailed(id, "uid", EAGAIN, "every job uid is in use");
    }
    job->uid = uid;
  }
  Owner owner{job->uid.value_or(0), static_cast<gid_t>(job->uid.value_or(0))};
  auto workdir = createWorkDir(jobs_dir_.get(), config_.jobs_dir, *spec, root_ ? &owner : nullptr,
                               uploads_dir_.get());
  if (!workdir) return sendFailed(id, "workdir", EIO, workdir.error().detail());
  drop_upload.name.clear();  // moved into place: removed with the working directory from now on
  job->workdir = std::move(*workdir);
  job->times.stamp(JobStage::kWorkDir);
  auto undo = [&](const std::string& stage, int error, const std::string& detail) {
    job->cgroup.reset();  // kills nothing (nothing started) and removes it
    if (auto removed = removeTree(jobs_dir_.get(), job->workdir.name); !removed) {
      PYRUN_LOG(kError) << removed.error().detail();
    }
    sendFailed(id, stage, error, detail);
  };
  if (auto r = createJobCgroup(*job, l); !r) return undo("cgroup", EIO, r.error().detail());
  if (auto f = startJob(*job, *spec, *root_template)) {
    return undo(f->stage, EIO, f->error.detail());
  }
  PYRUN_LOG(kInfo) << "job " << id << " pid " << job->pid << " in " << job->workdir.path;
  jobs_.emplace(id, std::move(job));
}

Result<void> Spawner::createJobCgroup(Job& job, const JobLimits& l) {
  if (!cgroups_.usable()) return {};
  CgroupLimits limits;
  if (cgroups_.hasMemory()) limits.memory_bytes = l.memory_bytes;
  if (cgroups_.hasPids()) limits.processes = l.processes;
  // CPU bandwidth bounds a job whose many processes would each stay under RLIMIT_CPU.
  if (cgroups_.hasCpu()) limits.cpu_millicores = job.policy->policy.limits.cpu_millicores;
  auto cgroup = cgroups_.createJob(job.id, limits);
  if (!cgroup) return cgroup.error();
  job.cgroup.emplace(std::move(*cgroup));
  job.times.stamp(JobStage::kCgroup);
  return {};
}

Result<std::string> Spawner::rootTemplateFor(const std::shared_ptr<const CompiledPolicy>& policy,
                                             bool terminal) {
  if (!templates_) return std::string();
  return templates_->get(policy->policy, policy.get(), terminal);
}

void Spawner::buildRootTemplates() {
  if (!templates_) return;
  templates_->clear();
  for (const auto& [name, p] : policies_) {
    if (auto r = rootTemplateFor(p, false); !r) {
      PYRUN_LOG(kError) << "jobs of policy " << name
                        << " fail until its root template can be built: " << r.error().detail();
    }
  }
  PYRUN_LOG(kInfo) << "root templates: " << templates_->size() << " of " << policies_.size()
                   << " policies built";
}

std::optional<StartFailure> Spawner::startJob(Job& job, const JobSpec& spec,
                                              const std::string& root_template) {
  // Everything the child reads is built here, before the clone: the child may not allocate.
  const policy::Policy& policy = job.policy->policy;
  if (spec.terminal.enabled && !policy.terminal) {
    return StartFailure{
        "policy", Error(Errc::kPolicy, "policy " + policy.name + " does not allow a terminal")};
  }
  auto root = planJobRoot(policy, job.workdir.path, {.terminal = spec.terminal.enabled});
  if (!root) {
    return StartFailure{root.error().code() == Errc::kPolicy ? "policy" : "clone", root.error()};
  }
  // With a template, the init mounts only the job's own steps on its clone.
  job.mounts = root->steps;
  if (!root_template.empty())
    std::erase_if(job.mounts, [](const MountStep& m) { return !m.per_job; });
  std::vector<ChildMount> mounts;
  for (const auto& m : job.mounts) {
    mounts.push_back({m.kind, m.source.c_str(), m.target.c_str(), m.data.c_str(), m.mode,
                      m.writable, m.noexec, m.optional});
  }
  auto landlock = prepareLandlock(root->landlock_read_only, root->landlock_read_write,
                                  policy.network != policy::NetworkMode::kNone);
  if (!landlock) return StartFailure{"landlock", Error(Errc::kSandbox, landlock.error().detail())};

  // Paths as the job sees them: the host's layout does not leak into its argv or environment.
  std::string job_dir = kJobDirInRoot;
  std::string script_path = job_dir + "/" + spec.script_name;
  // -E -s, not -I: isolated mode would also drop the script's directory from sys.path, and a
  // program must import the modules sent beside it (sys.path[0] = /job), as it does locally.
  // The environment is ours anyway (-E), and there is no user site in the job (-s).
  // A parked job runs the boot module instead, with the same flags; its script and arguments come
  // at the hand-off, and it puts them into sys.argv as this argv would.
  std::vector<std::string> argv_strings = {
      spec.interpreter, "-E", "-s", "-B", "-u", job.parked ? kBootModuleInRoot : script_path};
  argv_strings.insert(argv_strings.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> env_strings = {"PATH=/usr/bin:/bin", "HOME=" + job_dir, "TMPDIR=/tmp",
                                          "LANG=C.UTF-8", "PYTHONUNBUFFERED=1"};
  // Checked by decodeJobSpec (isPlainTermName): letters, digits and '-' only.
  if (spec.terminal.enabled) env_strings.push_back("TERM=" + spec.terminal.term);
  std::string root_dir = config_.jobs_dir + "/" + kRootMountPoint;
  std::vector<char*> argv, envp;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  auto in = makePipe();
  auto out = makePipe();
  auto err = makePipe();
  // A socket, not a pipe: the start report carries the interpreter's pid as SCM_CREDENTIALS
  // (contain.cpp), which the kernel translates into our pid namespace and vouches for.
  auto report = makeSocketPair(SOCK_SEQPACKET);
  for (const auto* made : {&in, &out, &err}) {
    if (!*made) return StartFailure{"clone", made->error()};
  }
  if (!report) return StartFailure{"clone", report.error()};
  std::optional<std::pair<UniqueFd, UniqueFd>> handoff;
  if (job.parked) {
    auto pipe = makePipe();
    if (!pipe) return StartFailure{"clone", pipe.error()};
    handoff = std::move(*pipe);
  }
  if (int on = 1; ::setsockopt(report->first.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    const int error = errno;
    return StartFailure{
        "clone",
        errnoError("SO_PASSCRED on the report socket of job " + std::to_string(job.id), error)};
  }

  ChildPlan plan;
  plan.interpreter = spec.interpreter.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.workdir = job.workdir.path.c_str();
  plan.limits = spec.limits;
  // As root the job has a uid of its own; unprivileged, contain.cpp sets it where the kernel counts
  // the job's user namespace apart (5.14+).
  plan.set_nproc = true;
  plan.drop_to_job_ids = root_;
  plan.uid = job.uid.value_or(0);
  plan.gid = static_cast<gid_t>(job.uid.value_or(0));
  plan.map_user = !root_;
  plan.outer_uid = ::geteuid();
  plan.outer_gid = ::getegid();
  plan.stdin_fd = in->first.get();
  plan.stdout_fd = out->second.get();
  // With a terminal, the third pipe carries window sizes from the front to the init instead.
  plan.stderr_fd = spec.terminal.enabled ? err->first.get() : err->second.get();
  plan.terminal = spec.terminal.enabled;
  plan.terminal_rows = spec.terminal.rows;
  plan.terminal_cols = spec.terminal.cols;
  plan.report_fd = report->second.get();
  plan.handoff_fd = handoff ? handoff->first.get() : -1;
  plan.root_dir = root_dir.c_str();
  plan.root_template = root_template.empty() ? nullptr : root_template.c_str();
  plan.mounts = mounts.data();
  plan.mount_count = mounts.size();
  plan.job_dir = kJobDirInRoot;
  // With the memory and pids cgroups enforcing, the rlimits become backstops: RLIMIT_AS counts
  // reserved address space (thread stacks, arenas), far above what a job really uses, so it must
  // not fire before the cgroup's accounting of real memory does.
  bool cgroup_memory = job.cgroup.has_value() && cgroups_.hasMemory();
  bool cgroup_pids = job.cgroup.has_value() && cgroups_.hasPids();
  plan.address_space_bytes =
      cgroup_memory ? spec.limits.memory_bytes * 4 : spec.limits.memory_bytes;
  plan.nproc = cgroup_pids ? spec.limits.processes + 1 : spec.limits.processes;
  // On cgroup v2 (Linux 5.7+) the init is born inside the job's cgroup; elsewhere it joins first
  // thing after the clone (contain.cpp), before it runs anything else.
  const int cgroup_fd = job.cgroup ? job.cgroup->cloneIntoFd() : -1;
  if (job.cgroup && cgroup_fd < 0) plan.cgroup = job.cgroup->join();
  plan.landlock_fd = landlock->fd();
  plan.landlock_abi = landlock->abi();
  plan.seccomp = &job.policy->program;
  plan.loopback_up = policy.network == policy::NetworkMode::kLoopback;

  // A new pid namespace makes the job's init pid 1: when it dies the kernel kills every process
  // of the job, daemons that called setsid included. Unprivileged, a user namespace grants the
  // right to create it. CLONE_PIDFD gives a handle that cannot refer to a recycled pid.
  int pidfd = -1;
  CloneRequest clone;
  // Mount, network, IPC and UTS namespaces: the job's own file system view, no network interface
  // but a down loopback, no System V IPC or POSIX message queues shared with the host.
  clone.namespaces = kCloneNewPid | kCloneNewNs | kCloneNewNet | kCloneNewIpc | kCloneNewUts |
                     (root_ ? 0 : kCloneNewUser);
  clone.pidfd = &pidfd;
  // Not CLONE_NEWCGROUP here: a cgroup namespace made by clone3 is rooted at the spawner's cgroup,
  // not the job's. The init enters one of its own once it is in the job's cgroup (contain.cpp).
  clone.cgroup_fd = cgroup_fd;
  job.started_us = monotonicMicros();
  job.deadline_us =
      job.started_us + (uint64_t{spec.limits.wall_seconds} + kWallGraceSeconds) * 1'000'000u;
  pid_t pid = cloneProcess(clone);
  const int clone_errno = errno;
  if (pid < 0 && cgroup_fd >= 0) {
    // Fail closed, and never retry by joining: the kernel takes CLONE_INTO_CGROUP (probed at
    // start-up), so this cgroup is what it refused (removed, or made unfit behind our back).
    return StartFailure{"cgroup", errnoError("clone3 into job cgroup " + job.cgroup->paths()[0] +
                                                 " for job " + std::to_string(job.id),
                                             clone_errno)};
  }
  if (pid < 0) {
    return StartFailure{"clone",
                        errnoError("clone3 for job " + std::to_string(job.id), clone_errno)};
  }
  if (pid == 0) runJobInit(plan);
  if (pidfd < 0) {
    // Every kernel that starts the child honours CLONE_PIDFD; without the descriptor the job could
    // be neither watched nor killed safely. Never run it so.
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    while (::waitpid(static_cast<pid_t>(pid), nullptr, 0) < 0 && errno == EINTR) {
    }
    return StartFailure{"clone", Error(Errc::kSandbox, "clone for job " + std::to_string(job.id) +
                                                           " gave no pidfd")};
  }
  job.times.stamp(JobStage::kClone);

  job.pid = static_cast<pid_t>(pid);
  job.pidfd.reset(pidfd);
  job.report = std::move(report->first);
  ::fcntl(job.report.get(), F_SETFL, O_NONBLOCK);
  job.stdin_w = std::move(in->second);
  job.stdout_r = std::move(out->first);
  job.stderr_r = std::move(spec.terminal.enabled ? err->second : err->first);
  if (handoff) job.handoff_w = std::move(handoff->second);
  return std::nullopt;
}

}  // namespace pyrun::sandbox::detail
