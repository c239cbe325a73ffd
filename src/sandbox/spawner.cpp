// The spawner process: one poll() loop over the front's socket and each job's pidfd and report
// pipe. Single-threaded by design: it forks jobs, and fork is only safe without other threads.
#include "sandbox/spawner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <set>

#include "common/dir.h"
#include "common/log.h"
#include "common/strict_modes.h"
#include "policy/policy.h"
#include "sandbox/channel.h"
#include "sandbox/contain.h"
#include "sandbox/job_root.h"
#include "sandbox/landlock.h"
#include "sandbox/results.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/seccomp_log.h"
#include "sandbox/stage.h"
#include "sandbox/workdir.h"

namespace pyrun::sandbox {
namespace {

// struct clone_args of <linux/sched.h> (CLONE_ARGS_SIZE_VER0), declared here because that header
// clashes with glibc's <sched.h>.
struct CloneArgs {
  uint64_t flags = 0;
  uint64_t pidfd = 0;
  uint64_t child_tid = 0;
  uint64_t parent_tid = 0;
  uint64_t exit_signal = 0;
  uint64_t stack = 0;
  uint64_t stack_size = 0;
  uint64_t tls = 0;
};
constexpr uint64_t kClonePidfd = 0x00001000;
constexpr uint64_t kCloneNewPid = 0x20000000;
constexpr uint64_t kCloneNewUser = 0x10000000;
constexpr uint64_t kCloneNewNs = 0x00020000;
constexpr uint64_t kCloneNewUts = 0x04000000;
constexpr uint64_t kCloneNewIpc = 0x08000000;
constexpr uint64_t kCloneNewNet = 0x40000000;

// The mount point of every job's root, inside the jobs directory (each job mounts its own tmpfs
// there, in its own mount namespace, so one empty directory serves them all).
constexpr const char* kRootMountPoint = ".root";

// A policy as the spawner uses it: the data, and its seccomp program compiled once per load.
struct CompiledPolicy {
  policy::Policy policy;
  SeccompProgram program;
};
using PolicySet = std::map<std::string, std::shared_ptr<const CompiledPolicy>>;

// All or nothing: every file is loaded and compiled, and every error is reported.
Result<PolicySet> loadPolicySet(const std::map<std::string, std::string>& files) {
  PolicySet set;
  std::string errors;
  for (const auto& [name, file] : files) {
    // Root acts on these files: like sshd's StrictModes, none of them (the includes too) may be
    // one that the front's user or anyone else but root could have written. Checked before each
    // is opened: a file refused after reading would already have made root open what it names.
    auto loaded =
        policy::loadPolicy(file, [](const std::string& path) { return checkStrictModes(path); });
    if (!loaded) {
      errors += (errors.empty() ? "" : "\n") + loaded.error().detail();
      continue;
    }
    auto program = compileSeccompFilter(loaded->seccomp);
    if (!program) {
      errors += (errors.empty() ? "" : "\n") + file + ": " + program.error().detail();
      continue;
    }
    set.emplace(name, std::make_shared<const CompiledPolicy>(
                          CompiledPolicy{std::move(*loaded), std::move(*program)}));
  }
  if (!errors.empty()) return Error(Errc::kPolicy, errors);
  return set;
}

// glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++; the system call is simple enough.
int sendSignal(int pidfd, int sig, siginfo_t* info, unsigned flags) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, info, flags));
}

// How long a job killed by seccomp waits for the kernel's audit record naming the call. The record
// normally follows the kill within milliseconds; the wait never blocks other jobs.
constexpr uint64_t kNameWaitUs = 2'000'000;
// How long past its wall-clock limit a job may run before the spawner kills it itself.
constexpr uint32_t kWallGraceSeconds = 10;

uint64_t monotonicMicros() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// One report record and, with SO_PASSCRED on the socket, the pid its sender attached, in our pid
// namespace: the kernel translates it, and checks that the sender may name that process
// (0 when no credentials came). Returns the read's result like read().
ssize_t readReportRecord(int fd, ReportRecord& record, pid_t& sender_pid) {
  iovec iov{&record, sizeof record};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  sender_pid = 0;
  ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
        c->cmsg_len == CMSG_LEN(sizeof(ucred))) {
      ucred cred{};
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      sender_pid = cred.pid;
    }
  }
  return n;
}

struct Job {
  uint64_t id = 0;
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd report;  // read end, non-blocking; reset at end of file
  // The front's ends of the job's stdio, held until JobStarted carries them.
  UniqueFd stdin_w, stdout_r, stderr_r;
  WorkDir workdir;
  std::optional<uid_t> uid;  // the per-job uid (as root)
  std::string interpreter;
  JobLimits limits;
  std::shared_ptr<const CompiledPolicy> policy;  // the one it started with, whatever reloads
  std::vector<MountStep> mounts;                 // to name a failing step
  std::optional<JobCgroup> cgroup;
  pid_t interpreter_pid = -1;  // host pid, for the seccomp record; -1 when unknown
  uint64_t started_us = 0;
  uint64_t deadline_us = UINT64_MAX;  // wall-clock limit plus kWallGraceSeconds (killOverdueJobs)
  bool start_reported = false;        // kStarted or kFailed seen: the first one decides
  bool started = false;
  std::optional<ReportRecord> failure;
  std::optional<int> interpreter_status;
  bool kill_requested = false;
  // JobSpec::results, and the job's /job held from its start so it can be read after its end.
  std::vector<std::string> results;
  uint32_t results_max_files = 0;
  uint64_t results_max_bytes = 0;
  UniqueFd job_dir;
  std::string job_dir_error;
};

class Spawner {
 public:
  Spawner(SpawnerConfig config, int socket, UniqueFd jobs_dir, PolicySet policies)
      : config_(std::move(config)),
        socket_(socket),
        jobs_dir_(std::move(jobs_dir)),
        root_(::geteuid() == 0),
        policies_(std::move(policies)) {}

  // What a previous run killed with SIGKILL left behind, the root mount point, cgroups, the
  // kernel log. Errors are fatal: the spawner does not run jobs half-confined.
  Result<void> prepare();

  int run();

 private:
  bool handleRequest();
  void spawn(channel::SpawnRequest request);
  Result<void> startJob(Job& job, const JobSpec& spec);
  void signalJob(const SignalJob& s);
  void killJob(uint64_t job_id);
  void drainReport(Job& job);
  void finishJob(uint64_t job_id);
  void sendEnd(JobEnded e);
  // Copies the job's requested result files into .uploads for the front (JobEnded::results).
  void collectResults(Job& job, JobEnded& e);
  // Sends the ends in unnamed_ whose record has arrived or whose wait is over (all when final).
  void nameUnnamed(bool final);
  void drainSeccompLog();
  // The front enforces each job's wall-clock limit; this backstop, kWallGraceSeconds later, bounds
  // the jobs of a front that does not (a bug, or a compromised front).
  void killOverdueJobs();
  int pollTimeoutMs() const;
  void shutDown();
  void reloadPolicies();
  void removeLeftoverWorkDirs();
  uid_t allocateUid(uint64_t job_id) const;
  void send(const FromSpawner& message, std::span<const int> fds = {});
  void sendFailed(uint64_t job_id, std::string stage, int error, std::string detail);
  std::string describeFailure(const Job& job, const ReportRecord& r) const;

  SpawnerConfig config_;
  int socket_;
  UniqueFd jobs_dir_;
  // <jobs_dir>/.uploads, where the front stages uploads (SpawnerConfig::uploads_uid).
  UniqueFd uploads_dir_;
  bool root_;
  bool front_gone_ = false;
  std::map<uint64_t, std::unique_ptr<Job>> jobs_;
  PolicySet policies_;
  Cgroups cgroups_;
  std::optional<SeccompLog> seccomp_log_;
  // Jobs killed by their seccomp filter whose audit record has not been read yet: each end is sent
  // when the record arrives or at its deadline (the name then says it is unknown).
  struct UnnamedEnd {
    JobEnded end;
    pid_t pid;
    uint64_t deadline_us;
  };
  std::vector<UnnamedEnd> unnamed_;
};

void Spawner::removeLeftoverWorkDirs() {
  auto entries = listDirectory(jobs_dir_.get(), config_.jobs_dir);
  if (!entries) {
    PYRUN_LOG(kWarning) << "cannot list " << config_.jobs_dir
                        << " for leftovers: " << entries.error().detail();
    return;
  }
  for (const auto& entry : *entries) {
    const std::string& name = entry.name;
    if (name == kRootMountPoint) continue;
    // removeTree never follows a link: a leftover planted by a job is only unlinked.
    if (auto r = removeTree(jobs_dir_.get(), name); !r) {
      PYRUN_LOG(kWarning) << "cannot remove the leftover " << config_.jobs_dir << "/" << name
                          << ": " << r.error().detail();
    } else {
      PYRUN_LOG(kWarning) << "removed the leftover " << config_.jobs_dir << "/" << name
                          << " of an earlier run";
    }
  }
}

Result<void> Spawner::prepare() {
  removeLeftoverWorkDirs();
  // After the leftovers went (an earlier run's partial uploads with them). The front writes here
  // as its own user; what it stages is moved, never opened through a link, and copied into the
  // job only as directories and regular files (docs/SANDBOX.md, "Uploads").
  {
    Owner front{config_.uploads_uid.value_or(::geteuid()),
                config_.uploads_gid.value_or(::getegid())};
    auto uploads =
        openUploadsDir(jobs_dir_.get(), config_.jobs_dir, config_.uploads_uid ? &front : nullptr);
    if (!uploads) return uploads.error();
    uploads_dir_ = std::move(*uploads);
  }
  if (::mkdirat(jobs_dir_.get(), kRootMountPoint, 0755) != 0 && errno != EEXIST) {
    return errnoError("create " + config_.jobs_dir + "/" + kRootMountPoint, errno);
  }
  struct stat st {};
  if (::fstatat(jobs_dir_.get(), kRootMountPoint, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISDIR(st.st_mode)) {
    return Error(Errc::kSandbox, config_.jobs_dir + "/" + kRootMountPoint +
                                     " is not a directory: cannot mount jobs' roots there");
  }
  auto cgroups = detectCgroups(config_.cgroups);
  if (!cgroups) return cgroups.error();
  cgroups_ = std::move(*cgroups);
  if (cgroups_.usable()) {
    PYRUN_LOG(kInfo) << "job cgroups: " << cgroups_.description();
    auto removed = cgroups_.removeLeftovers();
    if (!removed) return removed.error();
    if (*removed > 0) {
      PYRUN_LOG(kWarning) << "removed " << *removed << " leftover job cgroup(s) of an earlier run";
    }
  }
  seccomp_log_.emplace();
  if (!seccomp_log_->available()) {
    PYRUN_LOG(kInfo) << "system calls that kill a job will not be named: "
                     << seccomp_log_->unavailableReason();
  }
  return {};
}

void Spawner::reloadPolicies() {
  // The files come from our own configuration, never from the front (see SpawnerConfig).
  Result<std::map<std::string, std::string>> files = config_.policy_files;
  if (config_.reload_policy_files) files = config_.reload_policy_files();
  if (!files) {
    PYRUN_LOG(kError) << "policy reload failed, keeping the " << policies_.size()
                      << " policies in use: " << files.error().detail();
    send(PoliciesReloaded{false, files.error().detail()});
    return;
  }
  auto loaded = loadPolicySet(*files);
  if (!loaded) {
    PYRUN_LOG(kError) << "policy reload failed, keeping the " << policies_.size()
                      << " policies in use: " << loaded.error().detail();
    send(PoliciesReloaded{false, loaded.error().detail()});
    return;
  }
  policies_ = std::move(*loaded);
  std::string names;
  for (const auto& [name, p] : policies_) names += (names.empty() ? "" : ", ") + name;
  PYRUN_LOG(kInfo) << "reloaded " << policies_.size() << " policies: " << names;
  send(
      PoliciesReloaded{true, "loaded " + std::to_string(policies_.size()) + " policies: " + names});
}

void Spawner::send(const FromSpawner& message, std::span<const int> fds) {
  if (front_gone_) return;
  std::vector<uint8_t> bytes = encodeMessage(message);
  if (auto r = channel::sendDatagram(socket_, bytes, fds); !r) {
    // EPIPE: the front is gone; the loop notices the closed socket and shuts down.
    PYRUN_LOG(kWarning) << r.error().detail();
    front_gone_ = true;
  }
}

void Spawner::sendFailed(uint64_t job_id, std::string stage, int error, std::string detail) {
  PYRUN_LOG(kWarning) << "job " << job_id << " failed to start: " << detail;
  send(JobFailed{job_id, std::move(stage), error, std::move(detail)});
}

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

int Spawner::run() {
  while (!front_gone_) {
    std::vector<pollfd> fds;
    std::vector<uint64_t> owners;  // job id per pollfd after the socket
    fds.push_back({socket_, POLLIN, 0});
    for (const auto& [id, job] : jobs_) {
      fds.push_back({job->pidfd.get(), POLLIN, 0});
      owners.push_back(id);
      if (job->report) {
        fds.push_back({job->report.get(), POLLIN, 0});
        owners.push_back(id);
      }
    }
    const size_t job_fds = fds.size();
    const int log_fd = seccomp_log_ ? seccomp_log_->fd() : -1;
    if (log_fd >= 0) fds.push_back({log_fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), pollTimeoutMs()) < 0) {
      if (errno == EINTR) continue;
      PYRUN_PLOG(kFatal) << "poll";
      break;
    }
    std::vector<uint64_t> ended;
    for (size_t i = 1; i < job_fds; ++i) {
      if (fds[i].revents == 0) continue;
      auto it = jobs_.find(owners[i - 1]);
      if (it == jobs_.end()) continue;
      Job& job = *it->second;
      if (fds[i].fd == job.pidfd.get()) {
        ended.push_back(job.id);
      } else {
        drainReport(job);
      }
    }
    // Read the audit records even when no job waits for one: they would pile up in the socket.
    // After the start reports above (they give the interpreters' pids the records are kept for),
    // before the ends below (which look for them).
    if (log_fd >= 0 && fds.back().revents != 0) drainSeccompLog();
    for (uint64_t id : ended) finishJob(id);
    nameUnnamed(false);
    killOverdueJobs();
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 && !handleRequest()) break;
  }
  shutDown();
  return 0;
}

// Returns false when the front has closed its end.
bool Spawner::handleRequest() {
  auto received = channel::receiveDatagram(socket_, channel::kMaxRequestBytes, true);
  if (!received) {
    if (received.error().is(Errc::kClosed)) {
      PYRUN_LOG(kInfo) << "the front closed the spawner socket; stopping " << jobs_.size()
                       << " job(s)";
      return false;
    }
    PYRUN_LOG(kError) << "rejected request: " << received.error().detail();
    return true;
  }
  if (!*received) return true;
  auto request = channel::decodeRequest((*received)->bytes, std::move((*received)->fds));
  if (!request) {
    // A front that sends garbage is buggy or compromised: refuse the message, never guess.
    PYRUN_LOG(kError) << "rejected request: " << request.error().detail();
    return true;
  }
  if (auto* s = std::get_if<channel::SpawnRequest>(&*request)) {
    spawn(std::move(*s));
  } else if (auto* g = std::get_if<SignalJob>(&*request)) {
    signalJob(*g);
  } else if (std::holds_alternative<ReloadPolicies>(*request)) {
    reloadPolicies();
  } else {
    killJob(std::get<KillJob>(*request).job_id);
  }
  return true;
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
  if (config_.max_jobs != 0 && jobs_.size() >= config_.max_jobs) {
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
  auto undo = [&](const std::string& stage, int error, const std::string& detail) {
    job->cgroup.reset();  // kills nothing (nothing started) and removes it
    if (auto removed = removeTree(jobs_dir_.get(), job->workdir.name); !removed) {
      PYRUN_LOG(kError) << removed.error().detail();
    }
    sendFailed(id, stage, error, detail);
  };
  if (cgroups_.usable()) {
    CgroupLimits limits;
    if (cgroups_.hasMemory()) limits.memory_bytes = l.memory_bytes;
    if (cgroups_.hasPids()) limits.processes = l.processes;
    // CPU bandwidth bounds a job whose many processes would each stay under RLIMIT_CPU.
    if (cgroups_.hasCpu()) limits.cpu_millicores = job->policy->policy.limits.cpu_millicores;
    auto cgroup = cgroups_.createJob(id, limits);
    if (!cgroup) return undo("cgroup", EIO, cgroup.error().detail());
    job->cgroup.emplace(std::move(*cgroup));
  }
  if (auto r = startJob(*job, *spec); !r) {
    bool policy_error = r.error().code() == Errc::kPolicy;
    bool landlock_error = r.error().code() == Errc::kSandbox;
    return undo(policy_error     ? "policy"
                : landlock_error ? "landlock"
                                 : "clone",
                EIO, r.error().detail());
  }
  PYRUN_LOG(kInfo) << "job " << id << " pid " << job->pid << " in " << job->workdir.path;
  jobs_.emplace(id, std::move(job));
}

Result<void> Spawner::startJob(Job& job, const JobSpec& spec) {
  // Everything the child reads is built here, before the clone: the child may not allocate.
  const policy::Policy& policy = job.policy->policy;
  auto root = planJobRoot(policy, job.workdir.path);
  if (!root) return root.error();
  job.mounts = root->steps;
  std::vector<ChildMount> mounts;
  for (const auto& m : job.mounts) {
    mounts.push_back({m.kind, m.source.c_str(), m.target.c_str(), m.data.c_str(), m.mode,
                      m.writable, m.noexec, m.optional});
  }
  auto landlock = prepareLandlock(root->landlock_read_only, root->landlock_read_write,
                                  policy.network != policy::NetworkMode::kNone);
  if (!landlock) return Error(Errc::kSandbox, landlock.error().detail());

  // Paths as the job sees them: the host's layout does not leak into its argv or environment.
  std::string job_dir = kJobDirInRoot;
  std::string script_path = job_dir + "/" + spec.script_name;
  // -E -s, not -I: isolated mode would also drop the script's directory from sys.path, and a
  // program must import the modules sent beside it (sys.path[0] = /job), as it does locally.
  // The environment is ours anyway (-E), and there is no user site in the job (-s).
  std::vector<std::string> argv_strings = {spec.interpreter, "-E", "-s", "-B", "-u", script_path};
  argv_strings.insert(argv_strings.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> env_strings = {"PATH=/usr/bin:/bin", "HOME=" + job_dir, "TMPDIR=/tmp",
                                          "LANG=C.UTF-8", "PYTHONUNBUFFERED=1"};
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
  if (!in) return in.error();
  if (!out) return out.error();
  if (!err) return err.error();
  if (!report) return report.error();
  if (int on = 1; ::setsockopt(report->first.get(), SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    return errnoError("SO_PASSCRED on the report socket of job " + std::to_string(job.id), errno);
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
  plan.stderr_fd = err->second.get();
  plan.report_fd = report->second.get();
  plan.root_dir = root_dir.c_str();
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
  if (job.cgroup) plan.cgroup = job.cgroup->join();
  plan.landlock_fd = landlock->fd();
  plan.landlock_abi = landlock->abi();
  plan.seccomp = &job.policy->program;
  plan.loopback_up = policy.network == policy::NetworkMode::kLoopback;

  // A new pid namespace makes the job's init pid 1: when it dies the kernel kills every process
  // of the job, daemons that called setsid included. Unprivileged, a user namespace grants the
  // right to create it. CLONE_PIDFD gives a handle that cannot refer to a recycled pid.
  int pidfd = -1;
  CloneArgs args;
  // Mount, network, IPC and UTS namespaces: the job's own file system view, no network interface
  // but a down loopback, no System V IPC or POSIX message queues shared with the host.
  args.flags = kClonePidfd | kCloneNewPid | kCloneNewNs | kCloneNewNet | kCloneNewIpc |
               kCloneNewUts | (root_ ? 0 : kCloneNewUser);
  args.pidfd = reinterpret_cast<uintptr_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  job.started_us = monotonicMicros();
  job.deadline_us =
      job.started_us + (uint64_t{spec.limits.wall_seconds} + kWallGraceSeconds) * 1'000'000u;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) return errnoError("clone3 for job " + std::to_string(job.id), errno);
  if (pid == 0) runJobInit(plan);

  job.pid = static_cast<pid_t>(pid);
  job.pidfd.reset(pidfd);
  job.report = std::move(report->first);
  ::fcntl(job.report.get(), F_SETFL, O_NONBLOCK);
  job.stdin_w = std::move(in->second);
  job.stdout_r = std::move(out->first);
  job.stderr_r = std::move(err->first);
  return {};
}

std::string Spawner::describeFailure(const Job& job, const ReportRecord& r) const {
  const std::string root_mount_point = config_.jobs_dir + "/" + kRootMountPoint;
  StageContext context{job.interpreter, root_mount_point, job.policy->policy.name, job.mounts};
  return describeStageFailure(static_cast<Stage>(r.stage), r.arg, r.value, context);
}

void Spawner::drainReport(Job& job) {
  while (job.report) {
    ReportRecord r{};
    pid_t sender = 0;
    ssize_t n = readReportRecord(job.report.get(), r, sender);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      job.report.reset();  // end of file: the init has exited
      return;
    }
    if (n != static_cast<ssize_t>(sizeof r)) {
      PYRUN_LOG(kError) << "job " << job.id << ": short report record";
      continue;
    }
    auto kind = static_cast<ReportKind>(r.kind);
    if (kind == ReportKind::kExited) {
      job.interpreter_status = r.value;
    } else if (!job.start_reported && kind == ReportKind::kFailed) {
      job.start_reported = true;
      job.failure = r;
    } else if (!job.start_reported && kind == ReportKind::kStarted) {
      job.start_reported = true;
      job.started = true;
      // The pid the kernel carried with the record, never one looked up later (by then the
      // interpreter may be gone and another process of the job, or of the host, hold it). The
      // init's own pid means it could not name the interpreter: unknown.
      job.interpreter_pid = sender > 0 && sender != job.pid ? sender : -1;
      // Now, while the job's namespace exists: after its end /job has no path any more.
      if (!job.results.empty()) {
        if (auto dir = openJobWorkdir(job.pid); dir) {
          job.job_dir = std::move(*dir);
        } else {
          job.job_dir_error = dir.error().detail();
          PYRUN_LOG(kError) << "job " << job.id << ": " << job.job_dir_error;
        }
      }
      // A record kept for an earlier process of the same pid is not this interpreter's.
      if (seccomp_log_ && job.interpreter_pid > 0) seccomp_log_->forget(job.interpreter_pid);
      int fds[3] = {job.stdin_w.get(), job.stdout_r.get(), job.stderr_r.get()};
      send(JobStarted{job.id, job.pid}, fds);
      // The front has its own copies now; ours must go, or the job's stdin never ends.
      job.stdin_w.reset();
      job.stdout_r.reset();
      job.stderr_r.reset();
    }
  }
}

void Spawner::finishJob(uint64_t job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  Job& job = *it->second;
  drainReport(job);
  // The init has exited: the kernel has already killed the rest of its pid namespace. The SIGKILL
  // covers an init that is still about to exit; the pidfd stays valid until we reap.
  sendSignal(job.pidfd.get(), SIGKILL, nullptr, 0);
  int status = 0;
  rusage usage{};
  pid_t reaped;
  do {
    reaped = ::wait4(job.pid, &status, 0, &usage);
  } while (reaped < 0 && errno == EINTR);
  uint64_t wall_us = monotonicMicros() - job.started_us;
  drainReport(job);
  // The init killed and reaped the rest of its namespace; the cgroup's kill covers a process that
  // escaped it (none should), and its statistics give the memory and process verdicts.
  std::optional<CgroupStats> cgroup_stats;
  if (job.cgroup) {
    if (auto st = job.cgroup->stats(); st) {
      cgroup_stats = *st;
    } else {
      PYRUN_LOG(kError) << "job " << job.id << ": " << st.error().detail();
    }
    if (auto r = job.cgroup->remove(); !r) {
      PYRUN_LOG(kError) << "job " << job.id << ": " << r.error().detail();
    }
    job.cgroup.reset();
  }
  if (auto r = removeTree(jobs_dir_.get(), job.workdir.name); !r) {
    PYRUN_LOG(kError) << "job " << job.id << ": " << r.error().detail();
  }

  if (!job.started) {
    if (job.failure) {
      sendFailed(job.id, stageName(static_cast<Stage>(job.failure->stage)), job.failure->value,
                 describeFailure(job, *job.failure));
    } else if (job.kill_requested) {
      sendFailed(job.id, "init", ECANCELED, "the job was killed before it started");
    } else {
      sendFailed(job.id, "init", ECHILD, "the job's init ended before starting the interpreter");
    }
  } else {
    JobEnded e;
    e.job_id = job.id;
    collectResults(job, e);
    // The interpreter's own status when the init reported it; otherwise the init was killed.
    int s = job.interpreter_status.value_or(status);
    e.signaled = WIFSIGNALED(s);
    e.code = e.signaled ? WTERMSIG(s) : WEXITSTATUS(s);
    // wait4 on the init counts every process it reaped, i.e. the whole namespace.
    auto micros = [](const timeval& tv) {
      return static_cast<uint64_t>(tv.tv_sec) * 1000000u + static_cast<uint64_t>(tv.tv_usec);
    };
    e.cpu_us = micros(usage.ru_utime) + micros(usage.ru_stime);
    e.peak_memory_bytes = static_cast<uint64_t>(usage.ru_maxrss) * 1024u;
    e.wall_us = wall_us;
    if (cgroup_stats && cgroup_stats->peak_memory_bytes > e.peak_memory_bytes) {
      e.peak_memory_bytes = cgroup_stats->peak_memory_bytes;  // all processes together
    }
    bool failed = e.signaled || e.code != 0;
    if (job.kill_requested) {
      e.cause = EndCause::kKilled;
    } else if (e.signaled && e.code == SIGSYS) {
      e.cause = EndCause::kSyscall;
      if (job.interpreter_pid <= 0) {
        e.detail = "forbidden system call (name unknown: the interpreter's host pid is unknown)";
      } else if (!seccomp_log_ || !seccomp_log_->available()) {
        e.detail = seccomp_log_ ? seccomp_log_->unknownName()
                                : "forbidden system call (name unknown: no audit source)";
      } else {
        drainSeccompLog();
        if (auto name = seccomp_log_->takeName(job.interpreter_pid)) {
          e.detail = std::move(*name);
        } else {
          // The kernel's audit thread delivers the record a moment after the kill: the end waits
          // for it in unnamed_ while the loop serves the other jobs.
          unnamed_.push_back({std::move(e), job.interpreter_pid, monotonicMicros() + kNameWaitUs});
          jobs_.erase(it);
          return;
        }
      }
    } else if (cgroup_stats && cgroup_stats->oom_killed && failed) {
      e.cause = EndCause::kMemoryLimit;
    } else if (e.signaled && e.code == SIGXCPU) {
      e.cause = EndCause::kCpuLimit;
    } else if (e.signaled && e.code == SIGKILL &&
               e.cpu_us >= static_cast<uint64_t>(job.limits.cpu_seconds) * 1000000u) {
      e.cause = EndCause::kCpuLimit;  // the hard limit, for a program that ignored SIGXCPU
    } else if (e.signaled && e.code == SIGXFSZ) {
      e.cause = EndCause::kFileSizeLimit;
    } else if (cgroup_stats && cgroup_stats->pids_limit_hit && failed) {
      // A program that handled the failed fork and succeeded is not told it hit a limit.
      e.cause = EndCause::kProcessLimit;
    }
    sendEnd(std::move(e));
  }
  jobs_.erase(it);
}

void Spawner::collectResults(Job& job, JobEnded& e) {
  if (job.results.empty()) return;
  if (!job.job_dir) {
    e.results_detail = "the results could not be collected: " + job.job_dir_error;
    return;
  }
  // Owned by the front, which streams them to the client and removes them.
  Owner front{config_.uploads_uid.value_or(::geteuid()), config_.uploads_gid.value_or(::getegid())};
  const std::string name = "results-" + std::to_string(job.id) + "-" + randomSuffix();
  auto copied = copyResults(job.job_dir.get(), job.results, uploads_dir_.get(), name,
                            config_.uploads_uid ? &front : nullptr, job.results_max_files,
                            job.results_max_bytes);
  job.job_dir.reset();  // the tmpfs goes with it
  if (!copied) {
    PYRUN_LOG(kError) << "job " << job.id << ": " << copied.error().detail();
    e.results_detail = "the results could not be collected";
    (void)removeTree(uploads_dir_.get(), name);
    return;
  }
  e.results = name;
  e.results_detail = copied->detail;
}

void Spawner::sendEnd(JobEnded e) {
  PYRUN_LOG(kInfo) << "job " << e.job_id << " ended: " << (e.signaled ? "signal " : "exit ")
                   << e.code << (e.detail.empty() ? "" : " (" + e.detail + ")");
  send(e);
}

void Spawner::drainSeccompLog() {
  // Only records of our jobs' interpreters, running or waiting for their name.
  seccomp_log_->drain([this](pid_t pid) {
    for (const auto& [id, job] : jobs_) {
      if (job->interpreter_pid == pid) return true;
    }
    return std::any_of(unnamed_.begin(), unnamed_.end(),
                       [pid](const UnnamedEnd& u) { return u.pid == pid; });
  });
}

void Spawner::nameUnnamed(bool final) {
  if (unnamed_.empty()) return;
  drainSeccompLog();
  const uint64_t now = monotonicMicros();
  for (auto it = unnamed_.begin(); it != unnamed_.end();) {
    std::optional<std::string> name = seccomp_log_->takeName(it->pid);
    if (!name && !final && now < it->deadline_us) {
      ++it;
      continue;
    }
    if (name) {
      it->end.detail = std::move(*name);
    } else if (seccomp_log_->complete()) {
      // Every kill record reaches us, and none came: the interpreter got SIGSYS from a kill() (a
      // program can send it to itself), not from its filter. Reported as the signal it was.
      it->end.cause = EndCause::kExited;
    } else {
      it->end.detail = seccomp_log_->unknownName();
    }
    sendEnd(std::move(it->end));
    it = unnamed_.erase(it);
  }
}

void Spawner::killOverdueJobs() {
  const uint64_t now = monotonicMicros();
  for (auto& [id, job] : jobs_) {
    if (job->kill_requested || now < job->deadline_us) continue;
    PYRUN_LOG(kWarning)
        << "job " << id << " is " << kWallGraceSeconds
        << " s past its wall-clock limit and the front has not stopped it: killing it";
    killJob(id);
  }
}

int Spawner::pollTimeoutMs() const {
  uint64_t deadline = UINT64_MAX;
  for (const auto& u : unnamed_) deadline = std::min(deadline, u.deadline_us);
  for (const auto& [id, job] : jobs_) {
    if (!job->kill_requested) deadline = std::min(deadline, job->deadline_us);
  }
  if (deadline == UINT64_MAX) return -1;
  uint64_t now = monotonicMicros();
  if (deadline <= now) return 0;
  return static_cast<int>(std::min<uint64_t>((deadline - now + 999) / 1000, 60'000));
}

void Spawner::signalJob(const SignalJob& s) {
  auto it = jobs_.find(s.job_id);
  // A job that just ended may still get a signal from the front: not an error.
  if (it == jobs_.end()) return;
  if (s.signal == SIGKILL) return killJob(s.job_id);
  if (s.signal <= 0 || s.signal >= NSIG || s.signal == SIGSTOP) {
    PYRUN_LOG(kError) << "rejected request: signal " << s.signal << " for job " << s.job_id;
    return;
  }
  // The init forwards it to the interpreter (it blocks all signals, so they queue for it).
  if (sendSignal(it->second->pidfd.get(), s.signal, nullptr, 0) != 0) {
    PYRUN_PLOG(kWarning) << "signal job " << s.job_id;
  }
}

void Spawner::killJob(uint64_t job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  it->second->kill_requested = true;
  // SIGKILL to a pid namespace's init from outside kills the whole namespace at once.
  if (sendSignal(it->second->pidfd.get(), SIGKILL, nullptr, 0) != 0) {
    PYRUN_PLOG(kWarning) << "kill job " << job_id;
  }
}

void Spawner::shutDown() {
  front_gone_ = true;
  for (auto& entry : jobs_) killJob(entry.first);
  while (!jobs_.empty()) finishJob(jobs_.begin()->first);
  nameUnnamed(true);
  // Every job cgroup is gone now; remove our (empty) subtree too, so that short-lived spawners
  // (pyrun-policy run, tests) leave no directories behind. rmdir fails harmlessly if not empty.
  for (const std::string& dir : cgroups_.subtreeDirs()) ::rmdir(dir.c_str());
}

[[noreturn]] void spawnerMain(const SpawnerConfig& config, int socket, UniqueFd jobs_dir,
                              pid_t front, PolicySet policies) {
  // The spawner must not outlive the front; getppid() closes the race with the prctl.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != front) _exit(1);
  // Move our two descriptors to 3 and 4 and close everything else the front had open.
  // Via numbers above both, so that neither move overwrites the other.
  int high_socket = ::fcntl(socket, F_DUPFD_CLOEXEC, 10);
  int high_jobs_dir = ::fcntl(jobs_dir.get(), F_DUPFD_CLOEXEC, 10);
  if (high_socket < 0 || high_jobs_dir < 0 || ::dup3(high_socket, 3, O_CLOEXEC) < 0 ||
      ::dup3(high_jobs_dir, 4, O_CLOEXEC) < 0) {
    _exit(1);
  }
  jobs_dir.release();
  ::close_range(5, ~0u, 0);
  // Jobs get their stdio by dup2 onto 0-2; those must be taken so that no job pipe lands there.
  for (int fd = 0; fd < 3; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0) ::open("/dev/null", O_RDWR);
  }
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int rc = 0;
  try {
    Spawner spawner(config, 3, UniqueFd(4), std::move(policies));
    if (auto r = spawner.prepare(); !r) {
      PYRUN_LOG(kFatal) << "spawner: " << r.error().detail();
      _exit(1);
    }
    rc = spawner.run();
  } catch (const std::exception& e) {
    PYRUN_LOG(kFatal) << "spawner: " << e.what();
    rc = 1;
  }
  // _exit: this is a fork of the front; its atexit handlers and destructors are not ours to run.
  _exit(rc);
}

}  // namespace

Result<SpawnerProcess> startSpawner(const SpawnerConfig& config) {
  // Before the fork, so that an invalid policy is the caller's error with its file:line:col.
  auto policies = loadPolicySet(config.policy_files);
  if (!policies) return policies.error();
  auto jobs_dir = openJobsDir(config.jobs_dir);
  if (!jobs_dir) return jobs_dir.error();
  auto pair = makeSocketPair(SOCK_SEQPACKET);
  if (!pair) return pair.error();
  pid_t front = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return errnoError("fork the spawner", errno);
  if (pid == 0) {
    pair->first.reset();
    spawnerMain(config, pair->second.get(), std::move(*jobs_dir), front, std::move(*policies));
  }
  pair->second.reset();
  if (::fcntl(pair->first.get(), F_SETFL, O_NONBLOCK) != 0) {
    return errnoError("make the spawner socket non-blocking", errno);
  }
  return SpawnerProcess{pid, std::move(pair->first)};
}

Result<EncodedRequest> encodeForSpawner(const ToSpawner& message) {
  EncodedRequest out;
  out.bytes = channel::encodeRequest(message);
  if (out.bytes.size() > channel::kMaxRequestBytes) {
    return Error(Errc::kLimit, "the policy reload request is " + std::to_string(out.bytes.size()) +
                                   " bytes, more than the spawner accepts (" +
                                   std::to_string(channel::kMaxRequestBytes) + ")");
  }
  if (const auto* s = std::get_if<SpawnJob>(&message)) {
    auto memfd = channel::makeSealedSpec(s->spec);
    if (!memfd) return memfd.error();
    out.memfd = std::move(*memfd);
  }
  return out;
}

namespace {

Result<void> sendEncoded(int socket, const EncodedRequest& request, bool wait) {
  if (request.memfd) {
    int fd = request.memfd.get();
    return channel::sendDatagram(socket, request.bytes, std::span<const int>(&fd, 1), wait);
  }
  return channel::sendDatagram(socket, request.bytes, {}, wait);
}

}  // namespace

Result<bool> trySendToSpawner(int socket, const EncodedRequest& request) {
  auto r = sendEncoded(socket, request, false);
  if (r) return true;
  if (r.error().is(Errc::kBusy)) return false;
  return r.error();
}

Result<void> sendToSpawner(int socket, const ToSpawner& message) {
  auto request = encodeForSpawner(message);
  if (!request) return request.error();
  return sendEncoded(socket, *request, true);
}

Result<std::optional<Received>> receiveFromSpawner(int socket) {
  auto d = channel::receiveDatagram(socket, kMaxFromSpawnerBytes, true);
  if (!d) {
    if (d.error().is(Errc::kClosed)) return Error(Errc::kClosed, "spawner exited");
    return d.error();
  }
  if (!*d) return std::optional<Received>();
  auto message = decodeFromSpawner((*d)->bytes);
  if (!message) return message.error();
  size_t want = std::holds_alternative<JobStarted>(*message) ? 3 : 0;
  if ((*d)->fds.size() != want) {
    return Error(Errc::kProtocol, "spawner message came with " + std::to_string((*d)->fds.size()) +
                                      " descriptors, expected " + std::to_string(want));
  }
  return std::optional<Received>(Received{std::move(*message), std::move((*d)->fds)});
}

}  // namespace pyrun::sandbox
