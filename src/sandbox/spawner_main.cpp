// The spawner process: one poll() loop over the front's socket and each job's pidfd and report
// pipe. Single-threaded by design: it forks jobs, and fork is only safe without other threads.
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <utility>

#include "common/dir.h"
#include "common/log.h"
#include "sandbox/spawner_process.h"

namespace pyrun::sandbox::detail {

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
    // Mount points of an earlier spawner's templates, which were mounted in its own namespace
    // only: empty directories here, an expected leftover.
    if (name == kTemplatesDir) {
      if (auto r = removeTree(jobs_dir_.get(), name); !r) {
        PYRUN_LOG(kWarning) << "cannot remove " << config_.jobs_dir << "/" << name << ": "
                            << r.error().detail();
      }
      continue;
    }
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
  if (root_ && config_.root_templates) {
    // Before the templates and before any job: every job's CLONE_NEWNS copies this namespace.
    if (auto r = enterSpawnerMountNamespace(); !r) {
      PYRUN_LOG(kWarning) << "job roots are built step by step, without templates: "
                          << r.error().detail();
    } else {
      templates_.emplace();
      if (auto opened = templates_->open(jobs_dir_.get(), config_.jobs_dir); !opened) {
        return opened.error();
      }
      buildRootTemplates();
    }
  } else {
    PYRUN_LOG(kInfo) << "job roots are built step by step, without templates: "
                     << (root_ ? "root templates are off"
                               : "templates need root (a mount namespace of the spawner's own)");
  }
  auto cgroups = config_.test_cgroup_v2_dir.empty()
                     ? detectCgroups(config_.cgroups)
                     : openCgroupV2At(config_.test_cgroup_v2_dir, config_.cgroups.subtree);
  if (!cgroups) return cgroups.error();
  cgroups_ = std::move(*cgroups);
  if (cgroups_.usable()) {
    PYRUN_LOG(kInfo) << "job cgroups: " << cgroups_.description()
                     << (cgroups_.clonesIntoCgroup()
                             ? "; each job's init is cloned into its cgroup (CLONE_INTO_CGROUP)"
                             : "; each job's init joins its cgroup right after the clone");
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
    // Last: a replacement for a parked job is built once the requests of this pass are served.
    refillPool();
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
    // Parked jobs are not the front's to kill (it never learnt their ids).
    if (uint64_t id = std::get<KillJob>(*request).job_id; !isParked(id)) killJob(id);
  }
  return true;
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
  if (poolShortOf()) {
    deadline = std::min(deadline, std::max({pool_retry_us_, refill_not_before_us_, uint64_t{1}}));
  }
  if (deadline == UINT64_MAX) return -1;
  uint64_t now = monotonicMicros();
  if (deadline <= now) return 0;
  return static_cast<int>(std::min<uint64_t>((deadline - now + 999) / 1000, 60'000));
}

void Spawner::signalJob(const SignalJob& s) {
  auto it = jobs_.find(s.job_id);
  // A job that just ended may still get a signal from the front: not an error. Parked jobs are not
  // the front's.
  if (it == jobs_.end() || it->second->parked) return;
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

}  // namespace pyrun::sandbox::detail
