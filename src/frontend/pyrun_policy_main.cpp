// pyrun-policy: policy tooling for admins (check files, explain what a policy allows, run a script
// locally under a policy through the spawner pyrund uses, learn the system calls a script makes).
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/fd.h"
#include "common/file.h"
#include "common/log.h"
#include "common/version.h"
#include "policy/catalog.h"
#include "policy/policy.h"
#include "sandbox/job_run.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/seccomp_log.h"
#include "sandbox/spawner.h"
#include "sandbox/workdir.h"
#include "server/session_rules.h"

namespace {

// Exit codes (see policy/README.md).
constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;  // a policy has mistakes, or its filter cannot be built
constexpr int kExitUsage = 2;
// run and learn exit with the program's status; their own failures (invalid policy, a job that
// could not start, a spawner that died) use the status pyrun uses for its own failures.
constexpr int kExitRunFailure = 255;

constexpr std::string_view kUsage =
    "usage: pyrun-policy check FILE...   check policy files; print each mistake as file:line:col\n"
    "       pyrun-policy explain FILE    show resolved limits, allowed syscalls by group, filter "
    "size\n"
    "       pyrun-policy run FILE SCRIPT [ARGS...]\n"
    "                                    run a script locally under the policy, as pyrund would\n"
    "       pyrun-policy learn [--base FILE] SCRIPT [ARGS...]\n"
    "                                    run with logging instead of denial (root); print a draft\n"
    "       pyrun-policy --help | --version\n";

int usage(std::string_view complaint) {
  std::cerr << "pyrun-policy: " << complaint << "\n" << kUsage;
  return kExitUsage;
}

// Loads a policy and builds its filter, as pyrund does at start and on SIGHUP.
int check(const std::vector<std::string>& files) {
  int status = kExitOk;
  for (const std::string& file : files) {
    pyrun::policy::LoadOutcome outcome = pyrun::policy::loadPolicyWithDiagnostics(file);
    if (!outcome.policy) {
      for (const auto& d : outcome.diagnostics) std::cerr << toString(d) << "\n";
      status = kExitInvalid;
      continue;
    }
    auto program = pyrun::sandbox::compileSeccompFilter(outcome.policy->seccomp);
    if (!program) {
      std::cerr << file << ": cannot build the seccomp filter: " << program.error().detail()
                << "\n";
      status = kExitInvalid;
      continue;
    }
    std::cout << file << ": ok\n";
  }
  return status;
}

int explain(const std::string& file) {
  auto policy = pyrun::policy::loadPolicy(file);
  if (!policy) {
    std::cerr << policy.error().detail() << "\n";
    return kExitInvalid;
  }
  auto program = pyrun::sandbox::compileSeccompFilter(policy->seccomp);
  if (!program) {
    std::cerr << file << ": cannot build the seccomp filter: " << program.error().detail() << "\n";
    return kExitInvalid;
  }
  struct utsname host {};
  uname(&host);
  std::cout << describePolicy(*policy);
  std::cout << "  filter: " << program->size() << " BPF instructions ("
            << program->size() * sizeof(sock_filter) << " bytes) for " << host.machine
            << "; system calls of any other ABI kill the job\n";
  return kExitOk;
}

// ---- run: one job through the same spawner pyrund uses ----

// Above pyrund's default range (200000 + 10000) and below the kernel's overflow uid 4294967294 with
// room for any pid (at most 2^22).
constexpr uint32_t kRunUidBase = 1900000000;

// Set by the SIGINT/SIGTERM handler; the relay loop turns it into a request to the spawner.
volatile sig_atomic_t g_interrupts = 0;
int g_wake_fd = -1;  // write end of a self-pipe that wakes poll() when a signal arrives

extern "C" void onInterrupt(int) {
  int saved = errno;
  g_interrupts = g_interrupts + 1;
  char byte = 0;
  [[maybe_unused]] ssize_t n = ::write(g_wake_fd, &byte, 1);
  errno = saved;
}

struct RunRequest {
  std::string policy_file;
  std::string script;
  std::vector<std::string> args;
  // learn: the program's stdout also goes to stderr, so that stdout carries only the draft.
  bool stdout_to_stderr = false;
  // As root the job runs under a uid of its own. It is taken from a range no pyrund uses by
  // default and made unique per pyrun-policy process (pids are unique among live processes), so
  // that a job run here never shares a uid with a pyrund job or another pyrun-policy job on the
  // same host (they could signal each other), and learn can attribute audit records by uid.
  uint32_t job_uid_base = kRunUidBase + static_cast<uint32_t>(::getpid());
  uint32_t job_uid_count = 1;
  // learn: an extra descriptor to watch while the job runs (the audit socket), and its reader.
  int extra_fd = -1;
  std::function<void()> on_extra;
};

// A private parent for the job's working directory, removed at the end. Jobs of their own uid
// must traverse it, hence 0711.
class JobsDir {
 public:
  JobsDir() {
    char tmpl[] = "/tmp/pyrun-policy-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr && ::chmod(tmpl, 0711) == 0) path_ = tmpl;
  }
  ~JobsDir() {
    // The spawner removed the job's directory itself; what is left is its own scaffolding (the
    // mount point of job roots). Removed without following links, as the spawner does.
    if (path_.empty()) return;
    pyrun::UniqueFd tmp(::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!tmp) return;
    if (auto r = pyrun::sandbox::removeTree(tmp.get(), path_.substr(5)); !r) {
      std::cerr << "pyrun-policy: " << r.error().detail() << "\n";
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string baseName(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int runJob(const RunRequest& request, const pyrun::policy::Policy& policy) {
  using namespace pyrun;
  auto script = readFile(request.script);
  if (!script) {
    std::cerr << "pyrun-policy: cannot read the script " << request.script << ": "
              << script.error().detail() << "\n";
    return kExitRunFailure;
  }
  JobsDir jobs_dir;
  if (jobs_dir.path().empty()) {
    std::cerr << "pyrun-policy: cannot create a jobs directory under /tmp: " << std::strerror(errno)
              << "\n";
    return kExitRunFailure;
  }
  sandbox::SpawnerConfig config;
  config.jobs_dir = jobs_dir.path();
  config.job_uid_base = request.job_uid_base;
  config.job_uid_count = request.job_uid_count;
  // The spawner loads and compiles the policy itself, exactly as for pyrund.
  config.policy_files[policy.name] = request.policy_file;
  // A subtree of our own: the spawner empties its subtree at start, and the default one belongs
  // to a pyrund that may be running on this host.
  config.cgroups.subtree = "pyrun-policy-" + std::to_string(::getpid());
  // The spawner's own log lines (job started, ended) are for pyrund's operators, not for someone
  // running a script at a terminal; its errors still show.
  log::setLevel(log::Level::kError);
  // Forked while this process is single-threaded, as pyrund does.
  auto spawner = sandbox::startSpawner(config);
  if (!spawner) {
    std::cerr << "pyrun-policy: " << spawner.error().detail() << "\n";
    return kExitRunFailure;
  }
  const int sock = spawner->socket.get();
  auto finish = [&](int status) {
    spawner->socket.reset();  // the spawner kills what is left, removes directories, exits
    int ws = 0;
    while (::waitpid(spawner->pid, &ws, 0) < 0 && errno == EINTR) {
    }
    return status;
  };

  auto wake = makePipe();
  if (!wake) {
    std::cerr << "pyrun-policy: " << wake.error().detail() << "\n";
    return finish(kExitRunFailure);
  }
  ::fcntl(wake->first.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(wake->second.get(), F_SETFL, O_NONBLOCK);
  g_wake_fd = wake->second.get();
  struct sigaction sa {};
  sa.sa_handler = onInterrupt;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  sandbox::JobSpec spec;
  spec.job_id = 1;
  spec.interpreter = policy.interpreter;
  spec.policy = policy.name;
  spec.script_name = baseName(request.script);
  spec.script = std::move(*script);
  spec.args = request.args;
  spec.limits = pyrun::sandbox::jobLimitsOf(policy.limits);
  sandbox::JobRunOptions options;
  options.stdin_fd = STDIN_FILENO;
  options.output_limit_bytes = policy.limits.output_bytes;
  // Counted from the job's start, as pyrund's front does.
  options.wall_seconds = policy.limits.wall_seconds;
  options.on_output = [&](int stream, std::string_view bytes, sandbox::JobRunControl&) {
    int to = stream == 2 || request.stdout_to_stderr ? STDERR_FILENO : STDOUT_FILENO;
    (void)writeAll(to, std::span<const char>(bytes.data(), bytes.size()), "output");
  };
  int interrupts_handled = 0;
  options.watches.push_back({wake->first.get(), [&](sandbox::JobRunControl& job) {
                               char drain[64];
                               while (::read(wake->first.get(), drain, sizeof drain) > 0) {
                               }
                               // The first Ctrl-C reaches the program (Python raises
                               // KeyboardInterrupt); a second one, or SIGTERM to this process,
                               // ends the job, as pyrun does with pyrund.
                               while (interrupts_handled < g_interrupts) {
                                 ++interrupts_handled;
                                 if (interrupts_handled == 1 && job.started()) {
                                   job.signal(SIGINT);
                                 } else {
                                   job.stop(sandbox::RunnerStop::kCancelled);
                                 }
                               }
                             }});
  if (request.extra_fd >= 0) {
    options.watches.push_back(
        {request.extra_fd, [&](sandbox::JobRunControl&) { request.on_extra(); }});
  }
  auto outcome = sandbox::runJobThroughSpawner(sock, spec, options);
  if (!outcome) {
    std::cerr << "pyrun-policy: " << outcome.error().detail() << "\n";
    return finish(kExitRunFailure);
  }
  if (const auto& failed = outcome->failed) {
    std::cerr << "pyrun-policy: the job could not start (" << failed->stage
              << "): " << failed->detail << "\n";
    return finish(kExitRunFailure);
  }
  const sandbox::JobEnded& ended = *outcome->ended;
  // The verdict and its sentence as pyrund gives them (docs/pyrund.md, "Verdicts").
  proto::Verdict front_verdict = proto::Verdict::kOk;  // what this process enforced, as a front
  switch (outcome->stopped) {
    case sandbox::RunnerStop::kNone:
      break;
    case sandbox::RunnerStop::kWallLimit:
      front_verdict = proto::Verdict::kWallLimit;
      break;
    case sandbox::RunnerStop::kOutputLimit:
      front_verdict = proto::Verdict::kOutputLimit;
      break;
    case sandbox::RunnerStop::kCancelled:
      front_verdict = proto::Verdict::kCancelled;
      break;
  }
  const proto::Verdict verdict = server::finalVerdict(ended.cause, front_verdict);
  const proto::Limits limits{policy.limits.cpu_seconds, policy.limits.wall_seconds,
                             policy.limits.memory_bytes, policy.limits.output_bytes};
  std::string sentence = proto::verdictSentence(verdict, limits, server::endDetail(ended));
  if (outcome->output_truncated && verdict != proto::Verdict::kOutputLimit) {
    sentence += (sentence.empty() ? "" : "; ") + std::string("output truncated");
  }
  if (!sentence.empty()) std::cerr << "pyrun-policy: " << sentence << "\n";
  int status;
  if (ended.signaled) {
    status = 128 + ended.code;
  } else {
    status = ended.code;
    // A job stopped by a verdict never reports success.
    if (status == 0 && !sentence.empty()) status = kExitRunFailure;
  }
  return finish(status);
}

int run(const std::string& policy_file, const std::string& script,
        const std::vector<std::string>& args) {
  pyrun::policy::LoadOutcome outcome = pyrun::policy::loadPolicyWithDiagnostics(policy_file);
  if (!outcome.policy) {
    for (const auto& d : outcome.diagnostics) std::cerr << toString(d) << "\n";
    return kExitRunFailure;
  }
  RunRequest request;
  request.policy_file = policy_file;
  request.script = script;
  request.args = args;
  return runJob(request, *outcome.policy);
}

// ---- learn: the system calls a script makes, from the kernel's seccomp log records ----

// The SECCOMP_RET_LOG records of the job's system calls, from the audit netlink socket (see
// sandbox/seccomp_log.h: unlike /dev/kmsg it is not rate-limited, so the burst of interpreter
// start-up arrives whole).
class AuditReader {
 public:
  pyrun::Result<void> open() { return socket_.open(); }
  int fd() const { return socket_.fd(); }

  // Reads every record queued now.
  void drain() {
    socket_.drain([this](const pyrun::sandbox::SeccompRecord& r) { record(r); });
  }

  // Waits until no record has arrived for `quiet`: the kernel's audit thread delivers records a
  // moment after the system call, so the last ones may still be on their way when the job ends.
  void drainUntilQuiet(std::chrono::milliseconds quiet) {
    for (;;) {
      pollfd p{socket_.fd(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(quiet.count())) <= 0) return;
      drain();
    }
  }

  void acceptUids(uint32_t base, uint32_t count) {
    uid_base_ = base;
    uid_count_ = count;
  }
  const std::set<std::string>& syscalls() const { return syscalls_; }
  bool lost() const { return socket_.lost(); }

 private:
  void record(const pyrun::sandbox::SeccompRecord& r) {
    // Only SECCOMP_RET_LOG records of the native ABI, from a job's uid: other processes of the
    // host may log seccomp events of their own.
    if (r.code != SECCOMP_RET_LOG) return;
    if (r.uid < uid_base_ || r.uid >= uint64_t{uid_base_} + uid_count_) return;
    auto name = pyrun::sandbox::nativeSyscallName(r.arch, r.syscall);
    if (!name) return;
    syscalls_.insert(std::move(*name));
  }

  pyrun::sandbox::AuditSocket socket_;
  uint32_t uid_base_ = 0;
  uint32_t uid_count_ = 0;
  std::set<std::string> syscalls_;
};

std::string sizeText(uint64_t bytes) { return std::to_string(bytes); }

// Millicores as the policy's `cpus` writes them: 1000 -> "1", 500 -> "0.5", 1250 -> "1.25".
std::string coresText(uint32_t millicores) {
  std::string text = std::to_string(millicores / 1000);
  if (uint32_t rest = millicores % 1000; rest != 0) {
    std::string fraction = std::to_string(1000 + rest).substr(1);  // three digits
    while (fraction.back() == '0') fraction.pop_back();
    text += "." + fraction;
  }
  return text;
}

// A policy file for learning: the base's limits and interpreter, every system call logged.
std::string learningPolicy(const pyrun::policy::Policy& base) {
  const auto& l = base.limits;
  std::ostringstream y;
  y << "version: 1\n"
    << "interpreter: " << base.interpreter << "\n"
    << "limits:\n"
    << "  cpu_seconds: " << l.cpu_seconds << "\n"
    << "  wall_seconds: " << l.wall_seconds << "\n"
    << "  memory: " << sizeText(l.memory_bytes) << "\n"
    << "  processes: " << l.processes << "\n"
    << "  file_size: " << sizeText(l.file_size_bytes) << "\n"
    << "  open_files: " << l.open_files << "\n"
    << "  output: " << sizeText(l.output_bytes) << "\n"
    << "  tmp: " << sizeText(l.tmp_bytes) << "\n"
    << "  cpus: " << coresText(l.cpu_millicores) << "\n"
    << "  workdir: " << sizeText(l.workdir_bytes) << "\n"
    << "  workdir_files: " << l.workdir_files << "\n"
    << "network: none\n";
  return y.str();
}

// The draft: whole groups the program used every member of, then the remaining system calls.
std::string policyDraft(const pyrun::policy::Policy& base, const std::set<std::string>& used,
                        const std::string& script) {
  std::set<std::string> rest = used;
  std::vector<std::string> groups;
  for (const auto& group : pyrun::policy::syscallGroups()) {
    if (group.syscalls.empty()) continue;
    bool covered = std::all_of(group.syscalls.begin(), group.syscalls.end(),
                               [&](auto name) { return used.count(std::string(name)) != 0; });
    if (!covered) continue;
    groups.emplace_back(group.name);
    for (auto name : group.syscalls) rest.erase(std::string(name));
  }
  std::ostringstream y;
  y << "# Draft written by pyrun-policy learn from one run of " << script << ".\n"
    << "# It allows exactly the system calls that run made: review it, and run the script again\n"
    << "# under it with pyrun-policy run before giving it to pyrund.\n"
    << learningPolicy(base) << "seccomp:\n"
    << "  default_action: kill_process\n";
  if (groups.empty() && rest.empty()) {
    y << "  allow: []\n";
    return y.str();
  }
  y << "  allow:\n";
  for (const auto& g : groups) y << "    - \"" << g << "\"\n";
  for (const auto& s : rest) y << "    - " << s << "\n";
  return y.str();
}

int learn(const std::string& base_file, const std::string& script,
          const std::vector<std::string>& args) {
  using namespace pyrun;
  if (::geteuid() != 0) {
    std::cerr << "pyrun-policy: learn must run as root: the kernel's seccomp log records are "
                 "readable only through the audit netlink socket (CAP_AUDIT_READ); use "
                 "pyrun-policy run to try a script unprivileged\n";
    return kExitRunFailure;
  }
  policy::Policy base;
  if (!base_file.empty()) {
    auto loaded = policy::loadPolicy(base_file);
    if (!loaded) {
      std::cerr << loaded.error().detail() << "\n";
      return kExitRunFailure;
    }
    base = std::move(*loaded);
  }
  char tmpl[] = "/tmp/pyrun-learn-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::cerr << "pyrun-policy: cannot create a directory under /tmp: " << std::strerror(errno)
              << "\n";
    return kExitRunFailure;
  }
  const std::string dir = tmpl;
  const std::string learning_file = dir + "/learning.yaml";
  auto cleanup = [&] {
    ::unlink(learning_file.c_str());
    ::rmdir(dir.c_str());
  };
  std::string yaml = learningPolicy(base) +
                     "seccomp:\n"
                     "  default_action: log\n";
  if (auto w = writeNewFile(learning_file, yaml, 0600); !w) {
    std::cerr << "pyrun-policy: " << w.error().detail() << "\n";
    cleanup();
    return kExitRunFailure;
  }
  auto learning = policy::loadPolicy(learning_file);
  if (!learning) {
    std::cerr << "pyrun-policy: the learning policy is invalid (a bug): "
              << learning.error().detail() << "\n";
    cleanup();
    return kExitRunFailure;
  }
  AuditReader audit;
  if (auto opened = audit.open(); !opened) {
    std::cerr << "pyrun-policy: cannot read the kernel's audit records: " << opened.error().detail()
              << "\n";
    cleanup();
    return kExitRunFailure;
  }
  RunRequest request;
  request.policy_file = learning_file;
  request.script = script;
  request.args = args;
  request.stdout_to_stderr = true;
  audit.acceptUids(request.job_uid_base, request.job_uid_count);
  request.extra_fd = audit.fd();
  request.on_extra = [&] { audit.drain(); };
  int status = runJob(request, *learning);
  cleanup();
  audit.drainUntilQuiet(std::chrono::milliseconds(300));
  if (audit.syscalls().empty()) {
    std::cerr << "pyrun-policy: no seccomp log record arrived for the job: is the kernel built "
                 "with CONFIG_AUDIT, and is \"log\" in /proc/sys/kernel/seccomp/actions_logged?\n";
    return kExitRunFailure;
  }
  if (audit.lost()) {
    std::cerr << "pyrun-policy: warning: the kernel dropped some audit records; the draft may be "
                 "incomplete (run learn again and merge)\n";
  }
  std::cout << policyDraft(base, audit.syscalls(), script);
  std::cerr << "pyrun-policy: the program exited with status " << status << "; "
            << audit.syscalls().size() << " distinct system calls\n";
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage("missing command");
  const std::string& command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  if (command == "--version") {
    std::cout << "pyrun-policy " << pyrun::kVersion << "\n";
    return kExitOk;
  }
  std::vector<std::string> operands(args.begin() + 1, args.end());
  if (command == "check") {
    if (operands.empty()) return usage("check needs at least one policy file");
    return check(operands);
  }
  if (command == "explain") {
    if (operands.size() != 1) return usage("explain takes exactly one policy file");
    return explain(operands[0]);
  }
  if (command == "run") {
    if (operands.size() < 2) return usage("run needs a policy file and a script");
    std::vector<std::string> script_args(operands.begin() + 2, operands.end());
    return run(operands[0], operands[1], script_args);
  }
  if (command == "learn") {
    std::string base = "/etc/pyrun/policy/default.yaml";
    bool base_given = false;
    size_t i = 0;
    if (!operands.empty() && operands[0] == "--base") {
      if (operands.size() < 2) return usage("--base needs a policy file");
      base = operands[1];
      base_given = true;
      i = 2;
    }
    if (i >= operands.size()) return usage("learn needs a script");
    if (!base_given && ::access(base.c_str(), R_OK) != 0) {
      std::cerr << "pyrun-policy: " << base << " is not readable; learning with the built-in "
                << "default limits\n";
      base.clear();
    }
    std::vector<std::string> script_args(operands.begin() + static_cast<long>(i) + 1,
                                         operands.end());
    return learn(base, operands[i], script_args);
  }
  return usage("unknown command \"" + command + "\"");
}
