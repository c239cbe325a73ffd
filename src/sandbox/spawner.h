// The spawner: a single-threaded, privileged process forked by pyrund before any thread exists. It
// takes a small fixed set of length-checked messages from the front over a SOCK_SEQPACKET
// socketpair (spawn a job, signal a job, kill a job), builds each job's confined child, and reports
// job starts (with the job's stdio pipe ends passed as SCM_RIGHTS) and job ends. It never sees
// network bytes. See DESIGN.md, "Processes in pyrund".
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "common/stage_times.h"
#include "policy/policy.h"
#include "sandbox/cgroup.h"

namespace pyrun::sandbox {

// The part of policy::Limits that travels in a JobSpec and that the job's confinement enforces;
// its defaults are policy::Limits' (one set of defaults). The spawner cuts each down to the
// job's policy.
struct JobLimits {
  uint32_t cpu_seconds = policy::Limits{}.cpu_seconds;          // RLIMIT_CPU (SIGXCPU, SIGKILL)
  uint32_t wall_seconds = policy::Limits{}.wall_seconds;        // the front stops the job; the
                                                                // spawner kills it 10 s later
  uint64_t memory_bytes = policy::Limits{}.memory_bytes;        // RLIMIT_AS, memory cgroup
  uint64_t file_size_bytes = policy::Limits{}.file_size_bytes;  // RLIMIT_FSIZE
  uint32_t open_files = policy::Limits{}.open_files;            // RLIMIT_NOFILE
  uint32_t processes = policy::Limits{}.processes;              // pids cgroup, RLIMIT_NPROC
};
// A policy's limits as a job's.
inline JobLimits jobLimitsOf(const policy::Limits& limits) {
  return {limits.cpu_seconds,     limits.wall_seconds, limits.memory_bytes,
          limits.file_size_bytes, limits.open_files,   limits.processes};
}
// Each of requested cut down to the policy's.
inline JobLimits jobLimitsWithin(const JobLimits& requested, const policy::Limits& ceiling) {
  JobLimits ceiling_as_job = jobLimitsOf(ceiling);
  return {std::min(requested.cpu_seconds, ceiling_as_job.cpu_seconds),
          std::min(requested.wall_seconds, ceiling_as_job.wall_seconds),
          std::min(requested.memory_bytes, ceiling_as_job.memory_bytes),
          std::min(requested.file_size_bytes, ceiling_as_job.file_size_bytes),
          std::min(requested.open_files, ceiling_as_job.open_files),
          std::min(requested.processes, ceiling_as_job.processes)};
}

struct JobFile {
  std::string name;  // validated relative path
  uint32_t mode = 0644;
  std::string data;
};

// A job run on a pseudo-terminal (docs/SANDBOX.md, "Terminals"): its initial size and TERM.
struct JobTerminal {
  bool enabled = false;
  uint16_t rows = 24;
  uint16_t cols = 80;
  std::string term;  // lower-case letters, digits and '-' only (the spawner checks), at most 32
};
// True when term may become the job's TERM: 1..32 bytes of [a-z0-9-]. The front checks the
// protocol's allow-list; the spawner checks this much itself, since it builds the environment.
bool isPlainTermName(const std::string& term) noexcept;

// Everything the spawner needs to start one job.
struct JobSpec {
  uint64_t job_id = 0;
  std::string interpreter = "/usr/bin/python3";  // absolute path, from the policy
  std::string policy;                            // a name in SpawnerConfig::policy_files
  std::string script_name;                       // base name, written into the working directory
  std::string script;
  std::vector<std::string> args;
  std::vector<JobFile> files;
  JobLimits limits;
  // Files the front received in FILE frames, staged in <jobs_dir>/.uploads/<upload> (one plain
  // name; empty: none). The spawner moves that directory into place as the job's working
  // directory and writes the script and `files` into it.
  std::string upload;
  // Glob patterns (relative to the working directory, "**" allowed) of the files the job's client
  // wants back; when not empty the spawner copies the matching regular files out of the job's
  // working directory when the job ends, at most results_max_files files and
  // results_max_bytes bytes, into <jobs_dir>/.uploads/<JobEnded::results>.
  std::vector<std::string> results;
  uint32_t results_max_files = 0;
  uint64_t results_max_bytes = 0;
  // With a terminal the job's stdin, stdout and stderr are the slave of a pseudo-terminal of its
  // own; the init relays between its master and the stdin and stdout pipes, and the third pipe
  // runs the other way (the front writes window sizes into it, see JobStarted).
  JobTerminal terminal;
};

struct SpawnerConfig {
  // Parent of the jobs' private working directories; created 0711 if missing.
  std::string jobs_dir = "/var/lib/pyrun/jobs";
  // When running as root, job N runs as uid/gid job_uid_base + (N % job_uid_count): jobs cannot
  // signal or read each other, the front (another uid) or the spawner.
  uint32_t job_uid_base = 200000;
  uint32_t job_uid_count = 10000;
  // Policy name (what JobSpec::policy names) -> YAML file. The spawner loads and compiles every one
  // at start (startSpawner fails with the policy's file:line:col errors if any is invalid) and
  // again on ReloadPolicies. A job whose policy is not in the set fails with stage "policy".
  std::map<std::string, std::string> policy_files;
  // Where the spawner finds the policy files on ReloadPolicies (pyrund: it re-reads its config
  // file). Unset: policy_files again. The front never names files to the spawner: a compromised
  // front could otherwise make the root spawner read any file, or load a policy of its own.
  std::function<Result<std::map<std::string, std::string>>()> reload_policy_files;
  // The warm pool: per policy name, how many jobs the spawner keeps parked, fully confined, their
  // interpreter waiting in the boot module for one job each (missing or 0: none; every job of that
  // policy starts cold). Parked jobs count against max_jobs. docs/SANDBOX.md, "The warm pool".
  std::map<std::string, uint32_t> pool_sizes;
  // The sizes on ReloadPolicies, read after reload_policy_files succeeded (pyrund: from its
  // config file again). Unset: pool_sizes again.
  std::function<Result<std::map<std::string, uint32_t>>()> reload_pool_sizes;
  // Jobs running at once; beyond it SpawnJob fails with stage "busy" (0: no cap). The front
  // queues jobs itself; this bounds what a front that does not (a bug, or a compromised front)
  // can start.
  uint32_t max_jobs = 0;
  // Which cgroup setup to use for the jobs (docs/CGROUPS.md); without a usable one, rlimits alone.
  CgroupOptions cgroups;
  // Tests only (pyrund never sets it): the jobs' cgroups are in this cgroup v2 directory, with
  // whatever controllers it offers (openCgroupV2At), instead of the setup detectCgroups finds, so
  // that the spawner's v2 path runs on hosts whose memory and pids controllers are bound to v1.
  // cgroups.subtree still names the subtree; prefer and require are ignored.
  std::string test_cgroup_v2_dir;
  // Owner of <jobs_dir>/.uploads, where the unprivileged front stages uploads (the front's user
  // when pyrund starts as root; unset: the spawner's own uid).
  std::optional<uid_t> uploads_uid;
  std::optional<gid_t> uploads_gid;
  // As root, each job's root is a clone of its policy's root template (docs/SANDBOX.md, "Root
  // templates") plus the job's own mounts. false: every root is built step by step, as without
  // root (the tests compare both).
  bool root_templates = true;
};

// ---- messages (front -> spawner) ----
struct SpawnJob {
  JobSpec spec;  // sent in a sealed memfd attached to the message (it may exceed a datagram)
};
struct SignalJob {
  uint64_t job_id = 0;
  int signal = 0;  // delivered to the job's main program only (SIGINT for Ctrl-C)
};
struct KillJob {
  uint64_t job_id = 0;  // SIGKILL to every process of the job
};
// Reloads the policy set from the files SpawnerConfig::reload_policy_files names (no path travels
// in the message). All or nothing: when any file is invalid the old set stays in use. Answered by
// PoliciesReloaded. Running jobs keep the policy they started with.
struct ReloadPolicies {};
using ToSpawner = std::variant<SpawnJob, SignalJob, KillJob, ReloadPolicies>;

// ---- messages (spawner -> front) ----
// Sent with three descriptors: the write end of the job's stdin, the read ends of stdout, stderr.
// For a job with a terminal the third is instead the write end of its window-size pipe, which
// takes records of kWindowRecordSize bytes (rows, cols: u16 each, native byte order).
struct JobStarted {
  uint64_t job_id = 0;
  int32_t pid = 0;  // host pid of the job's top process (for logs)
  // The spawner's and the init's stamps up to the start: kWorkDir, kCgroup, kClone, kRootBuilt,
  // kConfined, kExec (those reached; none is required).
  StageTimes times{};
};
// The job could not be started; nothing of it is left.
struct JobFailed {
  uint64_t job_id = 0;
  std::string stage;   // confinement step that failed: "workdir", "rlimit", "setuid", "execve", ...
  int32_t error = 0;   // errno
  std::string detail;  // human sentence
};
// Why the spawner thinks the job ended (the front adds wall and output verdicts it enforces).
enum class EndCause : uint8_t {
  kExited = 0,
  kCpuLimit,
  kMemoryLimit,  // the memory cgroup's OOM killer killed a process of the job
  kKilled,
  kFileSizeLimit,
  kSyscall,       // killed by the seccomp filter (SIGSYS); JobEnded::detail names the call
  kProcessLimit,  // a fork or clone failed on the pids cgroup's limit
};
struct JobEnded {
  uint64_t job_id = 0;
  bool signaled = false;
  int32_t code = 0;  // exit status, or the signal number when signaled
  EndCause cause = EndCause::kExited;
  uint64_t cpu_us = 0;             // user + system of every process of the job
  uint64_t peak_memory_bytes = 0;  // largest resident set of any process of the job
  uint64_t wall_us = 0;            // from fork to the end
  // kSyscall: the forbidden system call's name ("ptrace") when syscall_named, else the sentence
  // "forbidden system call (name unknown: <why>)". Empty otherwise.
  std::string detail;
  // JobSpec::results: the directory inside <jobs_dir>/.uploads holding the copied result files
  // (owned by the front), or empty; and a sentence when some could not be copied or were left
  // out (over the limits), else empty.
  std::string results;
  std::string results_detail;
  bool syscall_named = false;  // only with kSyscall: detail is the call's name (see detail)
  // The stamps of the job's end: kExit (from the init) and kCleanup (those reached).
  StageTimes times{};
};
// The answer to ReloadPolicies.
struct PoliciesReloaded {
  bool ok = false;
  std::string detail;  // on failure the file:line:col errors (the old set stays); else a summary
};
using FromSpawner = std::variant<JobStarted, JobFailed, JobEnded, PoliciesReloaded>;

inline constexpr size_t kWindowRecordSize = 4;

// Largest JobSpec the spawner accepts (the size of its sealed memfd).
inline constexpr uint64_t kMaxJobSpecBytes = 64ull << 20;
// Largest message from the spawner (a JobFailed detail is cut to fit).
inline constexpr size_t kMaxFromSpawnerBytes = 8192;

// Pure codecs of the messages (length-checked; fuzzable). Decoders reject trailing bytes.
std::vector<uint8_t> encodeMessage(const FromSpawner& m);
Result<FromSpawner> decodeFromSpawner(std::span<const uint8_t> bytes);
std::vector<uint8_t> encodeJobSpec(const JobSpec& spec);
Result<JobSpec> decodeJobSpec(std::span<const uint8_t> bytes);

// ---- the front's side of the socket ----
// Sends one request (blocking). SpawnJob's spec travels in a memfd sealed against writes.
Result<void> sendToSpawner(int socket, const ToSpawner& message);

// A request ready to send: its datagram and, for a SpawnJob, the sealed memfd holding the spec.
struct EncodedRequest {
  std::vector<uint8_t> bytes;
  UniqueFd memfd;
};
// Encodes a request (and seals a SpawnJob's spec). Errors: kLimit for a datagram the spawner would
// refuse; the memfd's errors.
Result<EncodedRequest> encodeForSpawner(const ToSpawner& message);
// Sends it without waiting: false when the socket is full and nothing was sent (try again once it
// is writable); errors when the spawner is gone.
Result<bool> trySendToSpawner(int socket, const EncodedRequest& request);

struct Received {
  FromSpawner message;
  std::vector<UniqueFd> fds;  // three for JobStarted (stdin, stdout, stderr), none otherwise
};
// Receives one message without blocking: nullopt when none is ready (EAGAIN). An error when the
// spawner closed its end (kClosed, "spawner exited") or sent something malformed.
Result<std::optional<Received>> receiveFromSpawner(int socket);

// ---- the spawner process ----
struct SpawnerProcess {
  pid_t pid = -1;
  UniqueFd socket;  // the front's end (SOCK_SEQPACKET, close-on-exec, non-blocking)
};
// Loads and compiles every policy of config.policy_files (errors: kPolicy with file:line:col
// lines), then forks the spawner. Must be called while the caller is single-threaded. At start the
// spawner removes what a previous run killed with SIGKILL left behind: every entry of jobs_dir and
// every leftover job cgroup of its subtree (so one jobs_dir and one cgroup subtree per pyrund). The
// spawner exits (after killing every job and removing their working directories) when the front's
// end is closed.
Result<SpawnerProcess> startSpawner(const SpawnerConfig& config);

}  // namespace pyrun::sandbox
