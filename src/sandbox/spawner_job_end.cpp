// A job's end: its init's reports read, the job reaped and cleaned up, its verdict given (with
// the name of a forbidden system call when the kernel's record comes) and its results collected.
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "common/log.h"
#include "sandbox/results.h"
#include "sandbox/spawner_process.h"
#include "sandbox/stage.h"

namespace pyrun::sandbox::detail {

ReportRead readReportRecord(int fd, ReportRecord& record) {
  iovec iov{&record, sizeof record};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ReportRead read;
  read.n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  // An init that exited with our release byte unread (contain.h) leaves ECONNRESET pending here,
  // which the kernel reports once, ahead of the records still queued: those come next.
  if (read.n < 0 && errno == ECONNRESET) read.n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (read.n <= 0) return read;
  // A datagram longer than a record, or ancillary data beyond the credentials (descriptors the
  // kernel had to drop): not a record the init sent, and its credentials are not to be trusted.
  read.truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      // Descriptors nobody asked for are closed, never kept.
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < count; ++k) {
        int passed = -1;
        std::memcpy(&passed, CMSG_DATA(c) + k * sizeof(int), sizeof passed);
        if (passed >= 0) ::close(passed);
      }
      read.truncated = true;
    } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
               c->cmsg_len == CMSG_LEN(sizeof(ucred)) && !read.truncated) {
      ucred cred{};
      std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
      read.sender_pid = cred.pid;
    }
  }
  if (read.truncated) read.sender_pid = 0;
  return read;
}

std::string Spawner::describeFailure(const Job& job, const ReportRecord& r) const {
  const std::string root_mount_point = config_.jobs_dir + "/" + kRootMountPoint;
  StageContext context{job.interpreter, root_mount_point, job.policy->policy.name, job.mounts};
  return describeStageFailure(static_cast<Stage>(r.stage), r.arg, r.value, context);
}

void Spawner::drainReport(Job& job) {
  while (job.report) {
    ReportRecord r{};
    const ReportRead read = readReportRecord(job.report.get(), r);
    const ssize_t n = read.n;
    const pid_t sender = read.sender_pid;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      job.report.reset();  // end of file: the init has exited
      return;
    }
    if (read.truncated) {
      PYRUN_LOG(kError) << "job " << job.id
                        << ": report record too long or with unexpected ancillary data; dropped";
      continue;
    }
    if (n != static_cast<ssize_t>(sizeof r)) {
      PYRUN_LOG(kError) << "job " << job.id << ": short report record";
      continue;
    }
    auto kind = static_cast<ReportKind>(r.kind);
    if (kind == ReportKind::kStamp) {
      // Only the stages the init and the interpreter stamp, and only once each.
      const auto stage = static_cast<JobStage>(r.stage);
      if ((stage == JobStage::kRootBuilt || stage == JobStage::kConfined ||
           stage == JobStage::kExec || stage == JobStage::kExit) &&
          r.micros != 0) {
        job.times.set(stage, r.micros);
      }
    } else if (kind == ReportKind::kExited) {
      job.interpreter_status = r.value;
      releaseInit(job);  // only if not sent at kStarted or the hand-off (a failed send)
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
      // A cold job's /job is open (or could not be): nothing more is needed from its namespaces.
      // A parked job is released at its hand-off, once its /job is open for the client's results.
      if (!job.parked) releaseInit(job);
      // A record kept for an earlier process of the same pid is not this interpreter's.
      if (seccomp_log_ && job.interpreter_pid > 0) seccomp_log_->forget(job.interpreter_pid);
      // A parked job waits for its hand-off (spawner_pool.cpp), which sends JobStarted.
      if (job.parked) {
        pool_backoff_us_ = 0;
        continue;
      }
      int fds[3] = {job.stdin_w.get(), job.stdout_r.get(), job.stderr_r.get()};
      send(JobStarted{job.id, job.pid, job.times}, fds);
      // The front has its own copies now; ours must go, or the job's stdin never ends.
      job.stdin_w.reset();
      job.stdout_r.reset();
      job.stderr_r.reset();
    }
  }
}

void Spawner::releaseInit(Job& job) {
  if (job.init_released || !job.report) return;
  const char release = 1;
  job.init_released = ::send(job.report.get(), &release, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1;
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
  // The init killed and reaped the rest of its namespace; the cgroup's kill (in cleanUp) covers a
  // process that escaped it (none should), and its statistics give the memory and process
  // verdicts.
  std::optional<CgroupStats> cgroup_stats;
  if (job.cgroup) {
    if (auto st = job.cgroup->stats(); st) {
      cgroup_stats = *st;
    } else {
      PYRUN_LOG(kError) << "job " << job.id << ": " << st.error().detail();
    }
  }
  auto cleanUp = [&] {
    if (job.cgroup) {
      if (auto r = job.cgroup->remove(); !r) {
        PYRUN_LOG(kError) << "job " << job.id << ": " << r.error().detail();
      }
      job.cgroup.reset();
    }
    if (auto r = removeTree(jobs_dir_.get(), job.workdir.name); !r) {
      PYRUN_LOG(kError) << "job " << job.id << ": " << r.error().detail();
    }
    // After the end went out (the client does not wait for it): only the log shows it.
    job.times.stamp(JobStage::kCleanup);
    if (!job.parked && job.times.has(JobStage::kExit)) {
      PYRUN_LOG(kDebug) << "job " << job.id << " cleaned up "
                        << (job.times.at(JobStage::kCleanup) - job.times.at(JobStage::kExit)) / 1000
                        << " ms after its exit";
    }
  };

  if (job.parked) {
    // Never handed a job: nobody to tell. One that died on its own (a broken interpreter, or
    // killed from outside) is replaced after a pause; a retired one at once.
    if (!job.retired && !front_gone_) {
      if (job.failure) {
        PYRUN_LOG(kWarning) << "parked job " << job.id << " of policy " << job.pool_policy
                            << " failed: " << describeFailure(job, *job.failure);
      } else {
        PYRUN_LOG(kWarning) << "parked job " << job.id << " of policy " << job.pool_policy
                            << " ended before it was handed a job";
      }
      backOffPool();
    }
    cleanUp();
    jobs_.erase(it);
    return;
  }
  if (!job.started) {
    // JobFailed promises that nothing of the job is left: clean up first.
    cleanUp();
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
    // Counted from the hand-off for a job of the warm pool: its boot is not the client's.
    e.cpu_us = micros(usage.ru_utime) + micros(usage.ru_stime);
    e.cpu_us = e.cpu_us > job.boot_cpu_us ? e.cpu_us - job.boot_cpu_us : 0;
    e.peak_memory_bytes = static_cast<uint64_t>(usage.ru_maxrss) * 1024u;
    e.wall_us = wall_us;
    if (job.times.has(JobStage::kExit)) e.times.set(JobStage::kExit, job.times.at(JobStage::kExit));
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
          e.syscall_named = true;
        } else {
          // The kernel's audit thread delivers the record a moment after the kill: the end waits
          // for it in unnamed_ while the loop serves the other jobs.
          unnamed_.push_back({std::move(e), job.interpreter_pid, monotonicMicros() + kNameWaitUs});
          cleanUp();
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
    // The client learns its job's end first; the working directory and cgroup go after, off its
    // critical path, and so does the pool's replacement (refillPool).
    sendEnd(std::move(e));
    cleanUp();
    refill_not_before_us_ = 0;
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
      it->end.syscall_named = true;
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

}  // namespace pyrun::sandbox::detail
