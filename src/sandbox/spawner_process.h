// The spawner process's internals, shared by its files and by nothing outside src/sandbox: the
// job table, the policy set and the Spawner class. spawner_policies.cpp loads and reloads the
// policies, spawner_launch.cpp plans and clones a job, spawner_job_end.cpp reads its reports and
// gives its verdict, spawner_main.cpp runs the loop; spawner.cpp is the front's side (spawner.h).
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "policy/policy.h"
#include "sandbox/cgroup.h"
#include "sandbox/channel.h"
#include "sandbox/contain.h"
#include "sandbox/job_root.h"
#include "sandbox/root_template.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/seccomp_log.h"
#include "sandbox/spawner.h"
#include "sandbox/workdir.h"

namespace pyrun::sandbox::detail {

// One datagram of a job's report socket (SO_PASSCRED): the read's result like recvmsg(), the pid
// the kernel attached (translated into our pid namespace; 0 when none came), and whether the
// datagram was longer than a record or carried more ancillary data than the credentials
// (MSG_TRUNC, MSG_CTRUNC, or descriptors, which are closed): such a datagram is no record.
struct ReportRead {
  ssize_t n = 0;
  pid_t sender_pid = 0;
  bool truncated = false;
};
ReportRead readReportRecord(int fd, ReportRecord& record);

// The mount point of every job's root, inside the jobs directory (each job mounts its own tmpfs
// there, in its own mount namespace, so one empty directory serves them all).
inline constexpr const char* kRootMountPoint = ".root";

// A policy as the spawner uses it: the data, and its seccomp program compiled once per load.
struct CompiledPolicy {
  policy::Policy policy;
  SeccompProgram program;
};
using PolicySet = std::map<std::string, std::shared_ptr<const CompiledPolicy>>;

// All or nothing: every file is loaded and compiled, and every error is reported
// (spawner_policies.cpp).
Result<PolicySet> loadPolicySet(const std::map<std::string, std::string>& files);

// glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++; the system call is simple enough.
inline int sendSignal(int pidfd, int sig, siginfo_t* info, unsigned flags) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, info, flags));
}

// How long a job killed by seccomp waits for the kernel's audit record naming the call. The record
// normally follows the kill within milliseconds; the wait never blocks other jobs.
constexpr uint64_t kNameWaitUs = 2'000'000;
// How long past its wall-clock limit a job may run before the spawner kills it itself.
constexpr uint32_t kWallGraceSeconds = 10;

inline uint64_t monotonicMicros() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

struct Job {
  uint64_t id = 0;
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd report;  // read end, non-blocking; reset at end of file
  // The front's ends of the job's stdio, held until JobStarted carries them.
  // The front's ends of the job's pipes; for a job with a terminal stderr_r is the write end of
  // its window-size pipe instead (JobSpec::terminal).
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
  // The init's release (contain.h, kExitAckTimeoutMs) is sent: nothing more is needed from the
  // job's namespaces. Sent as early as that is known, so that the init never waits at its end.
  bool init_released = false;
  // Stage stamps (JobStarted::times, JobEnded::times): ours, and the init's kStamp records.
  StageTimes times;
  // The warm pool (spawner_pool.cpp). A parked job is built like any other, under an id of its own
  // (kFirstPoolId and up), its interpreter waiting in the boot module; at the hand-off it takes
  // the client's job id and is a job like the others from then on.
  bool parked = false;
  bool retired = false;      // parked, and being killed (reload, room): never handed a job
  std::string pool_policy;   // the policy name it was parked for
  UniqueFd handoff_w;        // the write end of its hand-off pipe
  uint64_t boot_cpu_us = 0;  // CPU time the job used before its hand-off (not the client's)
};

// Ids of parked jobs, above any the front uses.
inline constexpr uint64_t kFirstPoolId = uint64_t{1} << 62;

// Why Spawner::startJob could not start a job: the stage JobFailed names ("policy", "landlock",
// "cgroup", "clone") and the reason.
struct StartFailure {
  const char* stage;
  Error error;
};

class Spawner {
 public:
  Spawner(SpawnerConfig config, int socket, UniqueFd jobs_dir, PolicySet policies)
      : config_(std::move(config)),
        socket_(socket),
        jobs_dir_(std::move(jobs_dir)),
        root_(::geteuid() == 0),
        policies_(std::move(policies)),
        pool_sizes_(config_.pool_sizes) {}

  // What a previous run killed with SIGKILL left behind, the root mount point, cgroups, the
  // kernel log. Errors are fatal: the spawner does not run jobs half-confined.
  Result<void> prepare();

  int run();

 private:
  bool handleRequest();
  void spawn(channel::SpawnRequest request);
  // Plans the job's root, Landlock ruleset, argv and environment, and clones its init.
  // root_template: the path rootTemplateFor gave, empty for a root built step by step.
  std::optional<StartFailure> startJob(Job& job, const JobSpec& spec,
                                       const std::string& root_template);
  // The policy's root template for a job (with a terminal or not), built when needed; empty when
  // roots are built step by step (no root, or templates off or unavailable). Errors: the template
  // cannot be built (kSandbox, kPolicy): the job fails, it never gets a root built another way.
  Result<std::string> rootTemplateFor(const std::shared_ptr<const CompiledPolicy>& policy,
                                      bool terminal);
  // Builds every policy's template now (at start and after a reload), so that the first job of
  // each does not wait for it; a failure is logged, and retried by that policy's next job.
  void buildRootTemplates();
  void signalJob(const SignalJob& s);
  void killJob(uint64_t job_id);
  void drainReport(Job& job);
  // Sends the init its release (once): it may exit as soon as the job has ended.
  void releaseInit(Job& job);
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
  // The warm pool (spawner_pool.cpp).
  // Hands the job to a parked interpreter of its policy: true when it did (JobStarted or JobFailed
  // was sent; upload cleared once it was moved), false when the job must start cold.
  bool handOff(uint64_t id, JobSpec& spec, const std::shared_ptr<const CompiledPolicy>& policy,
               std::string& upload);
  // Parks one more job where a policy's pool is short (one per call: the loop comes back).
  void refillPool();
  // The policy whose pool is short and may grow now (within max_jobs and after a failure's
  // back-off), if any.
  std::optional<std::string> poolShortOf() const;
  Result<void> parkJob(const std::string& name, const std::shared_ptr<const CompiledPolicy>& p);
  // Kills a parked job that will never be handed a job (its policy was reloaded, or room is
  // needed).
  void retireParked(Job& job, const char* why);
  // Retires every parked job (a reload: the pool is rebuilt under the new policies).
  void drainPool(const char* why);
  // Retires one parked job, to make room under max_jobs for a job that starts cold.
  bool retireOneParked();
  // Jobs that count against max_jobs: running and parked ones, but not those being retired.
  size_t activeJobs() const;
  bool isParked(uint64_t job_id) const;
  // After a parked job failed or died on its own: wait before building the next one.
  void backOffPool();
  // Work directory, cgroup and uid of a new job: shared by the cold path and the pool. Returns
  // the failing stage and detail.
  Result<void> createJobCgroup(Job& job, const JobLimits& l);
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
  // Set when jobs' roots are cloned from templates (root_template.h).
  std::optional<RootTemplates> templates_;
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
  // The warm pool: parked jobs per policy name, the next parked job's id, and the back-off after
  // a parked job failed (so a broken interpreter is not rebuilt in a tight loop).
  std::map<std::string, uint32_t> pool_sizes_;
  uint64_t next_pool_id_ = kFirstPoolId;
  uint64_t pool_retry_us_ = 0;
  uint64_t pool_backoff_us_ = 0;
  // After a hand-off, the replacement waits until a job ends or kRefillDelayUs passed: building it
  // (a clone, a root, an interpreter's start-up) would compete with the job just handed for the
  // CPU and for this loop.
  uint64_t refill_not_before_us_ = 0;
};

// The spawner's life after the fork: takes over socket and jobs_dir as fds 3 and 4, runs the loop
// and exits (spawner_main.cpp).
[[noreturn]] void spawnerMain(const SpawnerConfig& config, int socket, UniqueFd jobs_dir,
                              pid_t front, PolicySet policies);

}  // namespace pyrun::sandbox::detail
