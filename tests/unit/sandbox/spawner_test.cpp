// The spawner with real processes: jobs run /usr/bin/python3 confined as docs/SANDBOX.md says.
#include "sandbox/spawner.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/dir.h"
#include "run_job.h"
#include "sandbox/cgroup.h"
#include "sandbox/channel.h"
#include "sandbox/job_run.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::sandbox {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string readAllFrom(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Reads fd until needle appears or end of file.
std::string readUntil(int fd, const std::string& needle) {
  std::string out;
  char c;
  while (out.find(needle) == std::string::npos) {
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.push_back(c);
  }
  return out;
}

// Every pid whose /proc entry satisfies pred.
template <class Pred>
std::vector<pid_t> processesWhere(Pred pred) {
  std::vector<pid_t> found;
  auto entries = listDirectory("/proc");
  if (!entries) return found;
  for (const auto& e : *entries) {
    char* end;
    long pid = std::strtol(e.name.c_str(), &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    if (pred(static_cast<pid_t>(pid))) found.push_back(static_cast<pid_t>(pid));
  }
  return found;
}

std::string pidNamespace(pid_t pid) {
  char buf[128] = {};
  std::string link = "/proc/" + std::to_string(pid) + "/ns/pid";
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

long processUid(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) return std::stol(line.substr(4));
  }
  return -1;
}

// A policy that allows every socket call as well as what ordinary Python needs, so that tests of
// the namespaces and mounts see those layers alone, not seccomp's answers. (Not default_action
// "log": every logged call would be an audit record, a flood for every reader of the audit log.)
std::string openPolicy(const std::string& extra = "") {
  return "version: 1\ninterpreter: /usr/bin/python3\n" + extra +
         "seccomp:\n  default_action: kill_process\n"
         "  allow: ['@python-startup', '@python-files', '@python-threads', '@python-subprocess',\n"
         "          '@python-async', '@unix-sockets', '@network']\n";
}

// The shipped default policy and the open one, by name.
std::map<std::string, std::string> testPolicies(const TempDir& dir) {
  test::writeFile(dir / "open.yaml", openPolicy(), 0644);
  return {{"default", std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml"},
          {"open", dir / "open.yaml"}};
}

// One cgroup subtree per test process: a spawner removes its subtree's leftover job cgroups at
// start, which must never be another test's running jobs.
std::string cgroupSubtree() { return "pyrun-spawner-test-" + std::to_string(::getpid()); }

// Removes this process's (by then empty) cgroup subtrees when the tests are over.
class CgroupSubtreeCleanup : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const char* suffix : {"", "-front", "-leftovers", "-cap"}) {
      CgroupOptions options;
      options.subtree = cgroupSubtree() + suffix;
      auto cgroups = detectCgroups(options);
      if (!cgroups) continue;
      // A front killed by a test leaves its job cgroups behind, as a crash would.
      (void)cgroups->removeLeftovers();
      for (const auto& dir : cgroups->subtreeDirs()) ::rmdir(dir.c_str());
    }
  }
};
const auto* const kCgroupCleanup = ::testing::AddGlobalTestEnvironment(new CgroupSubtreeCleanup);

// Entries of a jobs directory, other than the spawner's root mount point and dot files.
std::vector<std::string> jobDirs(const std::string& jobs_dir) {
  std::vector<std::string> names;
  auto entries = listDirectory(jobs_dir);
  if (!entries) return names;
  for (const auto& e : *entries) {
    if (e.name[0] != '.') names.push_back(jobs_dir + "/" + e.name);
  }
  return names;
}

struct JobResult {
  std::string out, err;
  JobEnded ended;
  JobStarted started;
};

class SpawnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Job uids must be able to reach their working directory below this one.
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0711), 0);
    config_.jobs_dir = tmp_ / "jobs";
    // Distinct per test process, so that tests running in parallel never share a job uid.
    config_.job_uid_base = 300000u + static_cast<uint32_t>(::getpid() % 20000) * 16u;
    config_.job_uid_count = 16;
    config_.policy_files = testPolicies(tmp_);
    // As pyrund re-reads its config file, the spawner re-reads this list on ReloadPolicies (the
    // spawner is a fork: it sees files, not this process's later memory).
    config_.reload_policy_files =
        [list = tmp_ / "reload.list"]() -> Result<std::map<std::string, std::string>> {
      std::ifstream in(list);
      if (!in) return Error(Errc::kIo, "cannot read " + list);
      std::map<std::string, std::string> files;
      std::string name, path;
      while (in >> name >> path) files[name] = path;
      return files;
    };
    config_.cgroups.subtree = cgroupSubtree();
    auto s = startSpawner(config_);
    ASSERT_TRUE(s) << s.error().detail();
    spawner_ = std::move(*s);
  }

  void TearDown() override {
    if (spawner_.pid > 0) {
      spawner_.socket.reset();
      int status;
      ::waitpid(spawner_.pid, &status, 0);
    }
  }

  JobSpec spec(uint64_t id, std::string script) {
    JobSpec s;
    s.job_id = id;
    s.policy = "default";
    s.script_name = "job.py";
    s.script = std::move(script);
    return s;
  }

  void submit(const JobSpec& s) {
    auto r = sendToSpawner(spawner_.socket.get(), SpawnJob{s});
    ASSERT_TRUE(r) << r.error().detail();
  }

  // Asks the spawner to reload, from a list naming these files.
  void reloadFrom(const std::map<std::string, std::string>& files) {
    std::string list;
    for (const auto& [name, path] : files) list += name + " " + path + "\n";
    test::writeFile(tmp_ / "reload.list", list, 0644);
    send(ReloadPolicies{});
  }

  void send(const ToSpawner& m) {
    auto r = sendToSpawner(spawner_.socket.get(), m);
    ASSERT_TRUE(r) << r.error().detail();
  }

  // The next message from the spawner (waits at most 60 s: a hang fails instead of blocking).
  Received next() {
    pollfd p{spawner_.socket.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, 60000);
    EXPECT_EQ(ready, 1) << "no message from the spawner within 60 s";
    auto r = receiveFromSpawner(spawner_.socket.get());
    EXPECT_TRUE(r) << (r ? "" : r.error().detail());
    if (!r || !*r) return Received{JobFailed{0, "test", 0, "no message"}, {}};
    return std::move(**r);
  }

  Received expectStarted(uint64_t id) {
    Received r = next();
    if (auto* f = std::get_if<JobFailed>(&r.message)) {
      ADD_FAILURE() << "job failed at " << f->stage << ": " << f->detail;
    } else {
      EXPECT_TRUE(std::holds_alternative<JobStarted>(r.message));
      EXPECT_EQ(std::get<JobStarted>(r.message).job_id, id);
      EXPECT_EQ(r.fds.size(), 3u);
    }
    return r;
  }

  JobEnded expectEnded(uint64_t id) {
    Received r = next();
    auto* e = std::get_if<JobEnded>(&r.message);
    if (e == nullptr) {
      ADD_FAILURE() << "expected JobEnded";
      return {};
    }
    EXPECT_EQ(e->job_id, id);
    return *e;
  }

  // Runs a job to its end: stdin is sent and closed, stdout and stderr read to end of file.
  JobResult runJob(const JobSpec& s, const std::string& stdin_data = "") {
    JobRunOptions options;
    options.stdin_data = stdin_data;
    options.idle_timeout_ms = 60000;  // a hang fails instead of blocking
    auto outcome = runJobThroughSpawner(spawner_.socket.get(), s, options);
    JobResult result;
    if (!outcome) {
      ADD_FAILURE() << "job " << s.job_id << ": " << outcome.error().detail();
      return result;
    }
    if (outcome->failed) {
      ADD_FAILURE() << "job failed at " << outcome->failed->stage << ": "
                    << outcome->failed->detail;
      return result;
    }
    result.started = *outcome->started;
    result.ended = *outcome->ended;
    result.out = std::move(outcome->out);
    result.err = std::move(outcome->err);
    return result;
  }

  TempDir tmp_{"spawner"};
  SpawnerConfig config_;
  SpawnerProcess spawner_;
};

bool isRoot() { return ::geteuid() == 0; }

TEST_F(SpawnerTest, StdoutAndStderrArriveSeparately) {
  auto r = runJob(spec(1, "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\n"));
  EXPECT_EQ(r.out, "to out\n");
  EXPECT_EQ(r.err, "to err\n");
  EXPECT_FALSE(r.ended.signaled);
  EXPECT_EQ(r.ended.code, 0);
  EXPECT_EQ(r.ended.cause, EndCause::kExited);
  EXPECT_GT(r.started.pid, 0);
  EXPECT_GT(r.ended.cpu_us, 0u);
  EXPECT_GT(r.ended.peak_memory_bytes, 1u << 20);
  EXPECT_GT(r.ended.wall_us, 0u);
}

// A cold job's /job is opened for its results when the spawner reads the kStarted record; a
// spawner slow to read it (a loaded host) must still find it. The init keeps the job's namespaces
// until the spawner has read its records (contain.h, kExitAckTimeoutMs): here the spawner is
// stopped from its clone of the job until well after the program ended. Without the wait, /job is
// gone by then and the results are "could not be collected".
TEST_F(SpawnerTest, ResultsOfAShortJobSurviveASpawnerThatReadsItsRecordsLate) {
  JobSpec s = spec(41, "open('out.txt', 'w').write('made it')\n");
  s.results = {"out.txt"};
  s.results_max_files = 10;
  s.results_max_bytes = 1 << 20;
  const std::string children = "/proc/" + std::to_string(spawner_.pid) + "/task/" +
                               std::to_string(spawner_.pid) + "/children";
  auto before = test::readFileOrEmpty(children);
  std::optional<JobEnded> ended;
  std::thread stopper([&] {
    // The job's init is a new child of the spawner: stop the spawner as soon as it appears.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (test::readFileOrEmpty(children) == before &&
           std::chrono::steady_clock::now() < deadline) {
    }
    ::kill(spawner_.pid, SIGSTOP);
    // Python starts and writes its file in well under a second even on a loaded host.
    std::this_thread::sleep_for(3s);
    ::kill(spawner_.pid, SIGCONT);
  });
  JobRunOptions options;
  options.idle_timeout_ms = 60000;
  auto outcome = runJobThroughSpawner(spawner_.socket.get(), s, options);
  stopper.join();
  ASSERT_TRUE(outcome) << outcome.error().detail();
  ASSERT_TRUE(outcome->ended.has_value()) << (outcome->failed ? outcome->failed->detail : "");
  EXPECT_EQ(outcome->ended->code, 0) << outcome->err;
  EXPECT_EQ(outcome->ended->results_detail, "");
  ASSERT_FALSE(outcome->ended->results.empty());
  EXPECT_EQ(
      test::readFileOrEmpty(config_.jobs_dir + "/.uploads/" + outcome->ended->results + "/out.txt"),
      "made it");
}

// The packaged unit runs pyrund under systemd's RestrictNamespaces=, whose seccomp filter answers
// clone3 with ENOSYS (its flags sit behind a pointer) and EPERM to clone, unshare and setns for the
// namespace kinds the unit does not list. That filter, built from the unit file's own line as
// systemd 252 builds it, is loaded here around a second spawner: its jobs must still run (clone
// instead of clone3, and the cgroup namespace each init makes must be on the list).
TEST_F(SpawnerTest, JobsRunUnderTheUnitsNamespaceRestriction) {
  std::ifstream unit_file(std::string(PYRUN_SOURCE_DIR) + "/packaging/systemd/pyrund.service");
  std::string line, listed;
  while (std::getline(unit_file, line)) {
    if (line.rfind("RestrictNamespaces=", 0) == 0) listed = line.substr(19);
  }
  ASSERT_FALSE(listed.empty()) << "no RestrictNamespaces= in the unit";
  const std::map<std::string, unsigned long> kinds = {
      {"cgroup", CLONE_NEWCGROUP}, {"ipc", CLONE_NEWIPC}, {"net", CLONE_NEWNET},
      {"mnt", CLONE_NEWNS},        {"pid", CLONE_NEWPID}, {"user", CLONE_NEWUSER},
      {"uts", CLONE_NEWUTS},       {"time", 0x00000080UL}};  // CLONE_NEWTIME
  std::set<std::string> allowed;
  std::istringstream words(listed);
  for (std::string w; words >> w;) allowed.insert(w);
  // The fixture's spawner steps aside: the second one uses the same directories and uids.
  spawner_.socket.reset();
  int status = 0;
  ::waitpid(spawner_.pid, &status, 0);
  spawner_.pid = -1;

  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(report[0]);
    auto say = [&](const std::string& what) {
      (void)!::write(report[1], what.data(), what.size());
      _exit(1);
    };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == nullptr) say("seccomp_init failed");
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0) say("clone3 rule");
    for (const auto& [name, flag] : kinds) {
      if (allowed.count(name) != 0) continue;
      for (int sys : {SCMP_SYS(clone), SCMP_SYS(unshare)}) {
        if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), sys, 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, flag, flag)) != 0) {
          say("rule for " + name);
        }
      }
      if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(setns), 1,
                           SCMP_A1(SCMP_CMP_EQ, flag)) != 0) {
        say("setns rule for " + name);
      }
    }
    if (seccomp_load(ctx) != 0) say("seccomp_load failed");
    seccomp_release(ctx);
    auto run = test_support::runJob(config_, spec(1, "print('ran')\n"));
    if (!run.error.empty()) say(run.error);
    if (!run.failed_stage.empty()) say("failed at " + run.failed_stage + ": " + run.failed_detail);
    if (run.code != 0 || run.out != "ran\n")
      say("exit " + std::to_string(run.code) + ": " + run.err);
    _exit(0);
  }
  ::close(report[1]);
  std::string why = readAllFrom(report[0]);
  ::close(report[0]);
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << why;
}

TEST_F(SpawnerTest, StdinReachesTheScriptWithItsEnd) {
  auto r = runJob(spec(1, "import sys\ndata = sys.stdin.read()\nprint(len(data), data.upper())\n"),
                  "hello\nworld\n");
  EXPECT_EQ(r.out, "12 HELLO\nWORLD\n\n");
}

// The runner (sandbox/job_run.h) enforces the limits a front enforces itself.
TEST_F(SpawnerTest, RunnerCutsOutputAtItsLimitAndStopsTheJob) {
  JobRunOptions options;
  options.output_limit_bytes = 1000;
  options.idle_timeout_ms = 60000;
  auto outcome = runJobThroughSpawner(spawner_.socket.get(),
                                      spec(1,
                                           "import sys, time\nsys.stdout.write('x' * 5000)\n"
                                           "sys.stdout.flush()\ntime.sleep(60)\n"),
                                      options);
  ASSERT_TRUE(outcome) << outcome.error().detail();
  ASSERT_TRUE(outcome->ended);
  EXPECT_EQ(outcome->out, std::string(1000, 'x'));
  EXPECT_TRUE(outcome->output_truncated);
  EXPECT_EQ(outcome->stopped, RunnerStop::kOutputLimit);
  EXPECT_EQ(outcome->ended->cause, EndCause::kKilled);
}

TEST_F(SpawnerTest, RunnerStopsTheJobAtItsWallClockLimit) {
  JobRunOptions options;
  options.wall_seconds = 1;
  options.idle_timeout_ms = 60000;
  auto outcome = runJobThroughSpawner(spawner_.socket.get(),
                                      spec(1, "import time\ntime.sleep(60)\n"), options);
  ASSERT_TRUE(outcome) << outcome.error().detail();
  ASSERT_TRUE(outcome->ended);
  EXPECT_EQ(outcome->stopped, RunnerStop::kWallLimit);
  EXPECT_EQ(outcome->ended->cause, EndCause::kKilled);
}

TEST_F(SpawnerTest, RunnerRelaysStdinFromADescriptorAndHoldsItWhenAsked) {
  auto pipe = makePipe();
  ASSERT_TRUE(pipe);
  ASSERT_EQ(::write(pipe->second.get(), "relayed\n", 8), 8);
  pipe->second.reset();
  JobRunOptions options;
  options.stdin_fd = pipe->first.get();
  options.idle_timeout_ms = 60000;
  auto relayed = runJobThroughSpawner(
      spawner_.socket.get(), spec(1, "import sys\nprint(sys.stdin.read().upper())\n"), options);
  ASSERT_TRUE(relayed) << relayed.error().detail();
  EXPECT_EQ(relayed->out, "RELAYED\n\n");

  // Held open: the job blocks on its stdin until a callback ends it.
  JobRunOptions held;
  held.hold_stdin = true;
  held.idle_timeout_ms = 60000;
  bool closed = false;
  held.on_output = [&](int, std::string_view bytes, JobRunControl& job) {
    if (bytes.find("waiting") != std::string_view::npos) {
      closed = true;
      job.closeStdin();
    }
  };
  auto waited = runJobThroughSpawner(
      spawner_.socket.get(),
      spec(2, "import sys\nprint('waiting', flush=True)\nsys.stdin.read()\n"), held);
  ASSERT_TRUE(waited) << waited.error().detail();
  EXPECT_TRUE(closed);
  ASSERT_TRUE(waited->ended);
  EXPECT_EQ(waited->ended->code, 0);
}

TEST_F(SpawnerTest, RunnerReportsAJobTheSpawnerRefused) {
  JobSpec s = spec(1, "pass\n");
  s.policy = "no-such-policy";
  auto outcome = runJobThroughSpawner(spawner_.socket.get(), s);
  ASSERT_TRUE(outcome) << outcome.error().detail();
  ASSERT_TRUE(outcome->failed);
  EXPECT_FALSE(outcome->started);
  EXPECT_EQ(outcome->failed->stage, "policy");
}

TEST_F(SpawnerTest, ArgumentsAndFilesReachTheScript) {
  JobSpec s = spec(1,
                   "import sys\nsys.path.insert(0, '.')\nfrom pkg import mod\n"
                   "print(sys.argv[1:], mod.VALUE, open('data/in.txt').read())\n");
  s.args = {"30", "two words"};
  s.files = {{"pkg/__init__.py", 0644, ""},
             {"pkg/mod.py", 0644, "VALUE = 42\n"},
             {"data/in.txt", 0600, "payload"}};
  auto r = runJob(s);
  EXPECT_EQ(r.out, "['30', 'two words'] 42 payload\n") << r.err;
}

TEST_F(SpawnerTest, ReportsExitCodes) {
  auto ok = runJob(spec(1, "pass\n"));
  EXPECT_FALSE(ok.ended.signaled);
  EXPECT_EQ(ok.ended.code, 0);
  auto three = runJob(spec(2, "import sys\nsys.exit(3)\n"));
  EXPECT_FALSE(three.ended.signaled);
  EXPECT_EQ(three.ended.code, 3);
  EXPECT_EQ(three.ended.cause, EndCause::kExited);
}

TEST_F(SpawnerTest, ReportsDeathBySignal) {
  auto r = runJob(spec(1, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n"));
  EXPECT_TRUE(r.ended.signaled);
  EXPECT_EQ(r.ended.code, SIGTERM);
  EXPECT_EQ(r.ended.cause, EndCause::kExited);
}

TEST_F(SpawnerTest, SignalJobSigintRaisesKeyboardInterrupt) {
  // "ready" is printed inside the try: the signal may arrive while print is still returning. Short
  // sleeps in a loop: CPython checks for a signal that arrived between its last check and the
  // start of a sleep only when the sleep ends, so one long sleep could miss a signal that came
  // just after "ready" (it would be seen in 600 s).
  submit(spec(1,
              "import time\n"
              "try:\n    print('ready', flush=True)\n    while True: time.sleep(0.05)\n"
              "except KeyboardInterrupt:\n"
              "    print('interrupted')\n    raise\n"));
  Received started = expectStarted(1);
  ASSERT_EQ(started.fds.size(), 3u);
  started.fds[0].reset();
  ASSERT_EQ(readUntil(started.fds[1].get(), "ready\n"), "ready\n");
  send(SignalJob{1, SIGINT});
  EXPECT_EQ(readAllFrom(started.fds[1].get()), "interrupted\n");
  std::string err_text = readAllFrom(started.fds[2].get());
  EXPECT_NE(err_text.find("KeyboardInterrupt"), std::string::npos) << err_text;
  JobEnded e = expectEnded(1);
  // Python re-raises SIGINT on itself after an uncaught KeyboardInterrupt: it is not pid 1, so
  // the default action applies and the job dies of SIGINT (a shell would say 130).
  EXPECT_TRUE(e.signaled);
  EXPECT_EQ(e.code, SIGINT);
  EXPECT_EQ(e.cause, EndCause::kExited);
}

TEST_F(SpawnerTest, KillJobLeavesNoProcessOfTheJob) {
  submit(spec(1,
              "import os, sys, time\n"
              "if os.fork() == 0:\n"
              "    os.setsid()\n"
              "    if os.fork() == 0:\n"
              "        print('daemon', os.getpid(), flush=True)\n"
              "        time.sleep(600)\n"
              "    os._exit(0)\n"
              "print('uid', os.getuid(), flush=True)\n"
              "time.sleep(600)\n"));
  Received started = expectStarted(1);
  ASSERT_EQ(started.fds.size(), 3u);
  pid_t init = std::get<JobStarted>(started.message).pid;
  std::string ns = pidNamespace(init);
  ASSERT_FALSE(ns.empty());
  // The two lines come in either order.
  std::string seen;
  while (seen.find("daemon") == std::string::npos || seen.find("uid") == std::string::npos) {
    std::string line = readUntil(started.fds[1].get(), "\n");
    if (line.empty()) break;
    seen += line;
  }
  ASSERT_NE(seen.find("daemon"), std::string::npos) << seen;
  ASSERT_NE(seen.find("uid"), std::string::npos) << seen;
  // The init, the interpreter and the daemon at least.
  EXPECT_GE(processesWhere([&](pid_t p) { return pidNamespace(p) == ns; }).size(), 3u);

  send(KillJob{1});
  JobEnded e = expectEnded(1);
  EXPECT_TRUE(e.signaled);
  EXPECT_EQ(e.code, SIGKILL);
  EXPECT_EQ(e.cause, EndCause::kKilled);
  EXPECT_TRUE(processesWhere([&](pid_t p) { return pidNamespace(p) == ns; }).empty());
  if (isRoot()) {
    EXPECT_TRUE(processesWhere([&](pid_t p) {
                  return processUid(p) >= static_cast<long>(config_.job_uid_base) &&
                         processUid(p) < static_cast<long>(config_.job_uid_base + 16);
                }).empty());
  }
  // Every writer of the pipes is gone: end of file, not a hang.
  readAllFrom(started.fds[1].get());
}

TEST_F(SpawnerTest, InterpreterExitEndsTheWholeJob) {
  // The daemon keeps stdout open; the job still ends when the interpreter does.
  auto r = runJob(spec(1,
                       "import os, time\n"
                       "if os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n"
                       "print('parent done')\n"));
  EXPECT_EQ(r.out, "parent done\n");
  EXPECT_EQ(r.ended.code, 0);
}

TEST_F(SpawnerTest, CpuLimitEndsASpinLoop) {
  JobSpec s = spec(1, "while True:\n    pass\n");
  s.limits.cpu_seconds = 1;
  auto r = runJob(s);
  EXPECT_TRUE(r.ended.signaled);
  EXPECT_EQ(r.ended.cause, EndCause::kCpuLimit);
  // RLIMIT_CPU counts the scheduler's exact run time, the rusage figure is sampled at ticks: on a
  // loaded 2-core guest it reads up to ~16% low (843 ms seen). Enough to tell a CPU-limit end from
  // an early one.
  EXPECT_GE(r.ended.cpu_us, 700000u);
}

TEST_F(SpawnerTest, CpuLimitHoldsWhenSigxcpuIsIgnored) {
  JobSpec s = spec(1,
                   "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\n"
                   "while True:\n    pass\n");
  s.limits.cpu_seconds = 1;
  auto r = runJob(s);
  EXPECT_TRUE(r.ended.signaled);
  EXPECT_EQ(r.ended.code, SIGKILL);
  EXPECT_EQ(r.ended.cause, EndCause::kCpuLimit);
}

TEST_F(SpawnerTest, FileSizeLimitStopsWrites) {
  JobSpec s = spec(1,
                   "import errno, os\n"
                   "f = open('big', 'wb', buffering=0)\n"
                   "try:\n"
                   "    for _ in range(64):\n        f.write(b'x' * 65536)\n"
                   "    print('no limit')\n"
                   "except OSError as e:\n"
                   "    print('stopped', e.errno == errno.EFBIG, os.path.getsize('big'))\n");
  s.limits.file_size_bytes = 1 << 20;
  auto r = runJob(s);
  EXPECT_EQ(r.out, "stopped True 1048576\n") << r.err;
}

TEST_F(SpawnerTest, FileSizeLimitSignalIsReported) {
  // Python ignores SIGXFSZ; a program that restores it dies of it.
  JobSpec s = spec(1,
                   "import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
                   "open('big', 'wb').write(b'x' * 200000)\n");
  s.limits.file_size_bytes = 100000;
  auto r = runJob(s);
  EXPECT_TRUE(r.ended.signaled);
  EXPECT_EQ(r.ended.code, SIGXFSZ);
  EXPECT_EQ(r.ended.cause, EndCause::kFileSizeLimit);
}

TEST_F(SpawnerTest, WorkingDirectoryIsPrivateAndRemovedAfterTheJob) {
  auto r =
      runJob(spec(1,
                  "import os, stat\nst = os.stat('.')\n"
                  "print(os.getcwd(), oct(stat.S_IMODE(st.st_mode)), st.st_uid == os.getuid())\n"));
  std::istringstream words(r.out);
  std::string cwd, mode, owned;
  words >> cwd >> mode >> owned;
  // The host's path of the directory does not leak into the job.
  EXPECT_EQ(cwd, "/job") << r.out << r.err;
  EXPECT_EQ(mode, "0o700");
  EXPECT_EQ(owned, "True");
  ASSERT_TRUE(listDirectory(config_.jobs_dir));
  // JobEnded comes before the cleanup: the directory goes right after.
  EXPECT_TRUE(test::eventually([&] { return jobDirs(config_.jobs_dir).empty(); }))
      << jobDirs(config_.jobs_dir).size();
}

TEST_F(SpawnerTest, PlantedLinksLeaveHostFilesIntact) {
  TempDir host("host");
  // Reachable and writable for the job's uid, so that the hard link can be made at all.
  ASSERT_EQ(::chmod(host.path().c_str(), 0755), 0);
  test::writeFile(host / "secret", "host data", 0666);
  ASSERT_EQ(::mkdir((host / "dir").c_str(), 0777), 0);
  ASSERT_EQ(::chmod((host / "dir").c_str(), 0777), 0);  // whatever the umask
  test::writeFile(host / "dir/inside", "more host data", 0666);
  std::string script =
      "import os\n"
      "os.symlink('" +
      host / "secret" +
      "', 'sym')\n"
      "os.symlink('" +
      host / "dir" +
      "', 'dirlink')\n"
      "try:\n  os.link('" +
      host / "secret" +
      "', 'hard')\n"
      "except OSError:\n  pass\n"
      "os.mkdir('locked')\n"
      "os.symlink('" +
      host / "dir" +
      "', 'locked/inner')\n"
      "os.chmod('locked', 0)\n"
      "print('planted')\n";
  auto r = runJob(spec(1, script));
  ASSERT_EQ(r.out, "planted\n") << r.err;
  EXPECT_EQ(test::readFileOrEmpty(host / "secret"), "host data");
  EXPECT_EQ(test::readFileOrEmpty(host / "dir/inside"), "more host data");
  struct stat st {};
  ASSERT_EQ(::stat((host / "secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  EXPECT_EQ(st.st_nlink, 1u);
  ASSERT_EQ(::stat((host / "dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0777u);
  // Nothing of the job is left in the jobs directory.
  ASSERT_TRUE(listDirectory(config_.jobs_dir));
  // JobEnded comes before the cleanup: the directory goes right after.
  EXPECT_TRUE(test::eventually([&] { return jobDirs(config_.jobs_dir).empty(); }))
      << jobDirs(config_.jobs_dir).size();
}

TEST_F(SpawnerTest, JobSeesOnlyItsStdioDescriptors) {
  // Open descriptors in the front that a careless spawner would pass on.
  UniqueFd leak(::open("/dev/null", O_RDONLY));
  auto r = runJob(spec(1, "import os\nprint(sorted(os.listdir('/proc/self/fd')))\n"));
  EXPECT_EQ(r.out, "['0', '1', '2', '3']\n") << r.err;
}

TEST_F(SpawnerTest, EnvironmentIsExactlyTheFixedOne) {
  auto r = runJob(spec(1,
                       "import os\nprint(os.getcwd())\nfor k in sorted(os.environ): "
                       "print(k + '=' + os.environ[k])\n"));
  std::istringstream lines(r.out);
  std::string cwd;
  std::getline(lines, cwd);
  std::string rest((std::istreambuf_iterator<char>(lines)), std::istreambuf_iterator<char>());
  EXPECT_EQ(cwd, "/job");
  EXPECT_EQ(rest,
            "HOME=/job\nLANG=C.UTF-8\nPATH=/usr/bin:/bin\nPYTHONUNBUFFERED=1\n"
            "TMPDIR=/tmp\n")
      << r.err;
}

TEST_F(SpawnerTest, RunsAsThePerJobUidWhenRoot) {
  if (!isRoot()) GTEST_SKIP() << "per-job uids need a root spawner";
  auto r = runJob(spec(5, "import os\nprint(os.getresuid(), os.getresgid(), os.getgroups())\n"));
  auto uid = std::to_string(config_.job_uid_base + 5);
  EXPECT_EQ(r.out,
            "(" + uid + ", " + uid + ", " + uid + ") (" + uid + ", " + uid + ", " + uid + ") []\n")
      << r.err;
}

TEST_F(SpawnerTest, TwoJobsGetDifferentDirectoriesAndUids) {
  std::string script =
      "import os, time\nst = os.stat('.')\nprint(f'{st.st_dev}:{st.st_ino}', os.getuid(), "
      "flush=True)\n"
      "input()\n";
  // Job ids that map to the same uid slot (16 apart): the spawner must still separate them.
  submit(spec(3, script));
  Received a = expectStarted(3);
  submit(spec(19, script));
  Received b = expectStarted(19);
  ASSERT_EQ(a.fds.size(), 3u);
  ASSERT_EQ(b.fds.size(), 3u);
  std::string out_a = readUntil(a.fds[1].get(), "\n");
  std::string out_b = readUntil(b.fds[1].get(), "\n");
  std::istringstream wa(out_a), wb(out_b);
  std::string dir_a, dir_b, uid_a, uid_b;
  wa >> dir_a >> uid_a;
  wb >> dir_b >> uid_b;
  EXPECT_NE(dir_a, dir_b);
  EXPECT_FALSE(dir_a.empty());
  if (isRoot()) {
    EXPECT_NE(uid_a, uid_b);
  }
  a.fds[0].reset();
  b.fds[0].reset();
  std::set<uint64_t> ended;
  for (int i = 0; i < 2; ++i) {
    Received r = next();
    ASSERT_TRUE(std::holds_alternative<JobEnded>(r.message));
    ended.insert(std::get<JobEnded>(r.message).job_id);
  }
  EXPECT_EQ(ended, (std::set<uint64_t>{3, 19}));
}

TEST_F(SpawnerTest, BadInterpreterFailsAtExecve) {
  test::writeFile(tmp_ / "ghost.yaml",
                  "version: 1\ninterpreter: /usr/bin/pyrun-no-such-python3\n"
                  "seccomp:\n  default_action: kill_process\n  allow: ['@python-startup']\n",
                  0644);
  reloadFrom({{"ghost", tmp_ / "ghost.yaml"}});
  Received reloaded = next();
  ASSERT_TRUE(std::get<PoliciesReloaded>(reloaded.message).ok)
      << std::get<PoliciesReloaded>(reloaded.message).detail;
  JobSpec s = spec(1, "pass\n");
  s.policy = "ghost";
  s.interpreter = "/usr/bin/pyrun-no-such-python3";
  submit(s);
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  const auto& f = std::get<JobFailed>(r.message);
  EXPECT_EQ(f.job_id, 1u);
  EXPECT_EQ(f.stage, "execve");
  EXPECT_EQ(f.error, ENOENT);
  EXPECT_EQ(f.detail, "execve /usr/bin/pyrun-no-such-python3: No such file or directory");
  EXPECT_TRUE(r.fds.empty());
  // Nothing of the job is left.
  EXPECT_TRUE(test::eventually([&] { return jobDirs(config_.jobs_dir).empty(); }));
}

// The spawner trusts its own policies, not the front: a spec naming another interpreter than its
// policy's is refused before anything starts.
TEST_F(SpawnerTest, InterpreterOtherThanThePolicysIsRefused) {
  JobSpec s = spec(1, "pass\n");
  s.interpreter = "/bin/sh";
  submit(s);
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  const auto& f = std::get<JobFailed>(r.message);
  EXPECT_EQ(f.stage, "spec");
  EXPECT_EQ(f.detail, "interpreter '/bin/sh' is not policy default's (/usr/bin/python3)");
  EXPECT_TRUE(test::eventually([&] { return jobDirs(config_.jobs_dir).empty(); }));
}

bool cgroupsUsable() {
  auto c = detectCgroups();
  return c && c->usable() && c->hasMemory() && c->hasPids();
}

// Limits above the policy's are cut down to the policy's; lower ones (a client's choice) stay.
TEST_F(SpawnerTest, LimitsLooserThanThePolicysAreCutToThePolicys) {
  JobSpec s = spec(1,
                   "import resource as r\n"
                   "print(*(r.getrlimit(x)[0] for x in (r.RLIMIT_CPU, r.RLIMIT_NOFILE,\n"
                   "      r.RLIMIT_FSIZE, r.RLIMIT_AS, r.RLIMIT_NPROC)))\n");
  s.limits.cpu_seconds = 100000;       // default.yaml: 10
  s.limits.open_files = 100000;        // default.yaml: 256
  s.limits.memory_bytes = 1ull << 40;  // default.yaml: 512M
  s.limits.processes = 100000;         // default.yaml: 64
  s.limits.file_size_bytes = 1 << 20;  // lower than default.yaml's 64M: kept
  auto r = runJob(s);
  // With the memory and pids cgroups enforcing, RLIMIT_AS and RLIMIT_NPROC are backstops above
  // the limit (4 x memory, processes + 1 for the init); without them they are the limit.
  const bool cgroups = cgroupsUsable();
  const uint64_t address_space = (512ull << 20) * (cgroups ? 4 : 1);
  const int nproc = cgroups ? 65 : 64;
  EXPECT_EQ(r.out,
            "10 256 1048576 " + std::to_string(address_space) + " " + std::to_string(nproc) + "\n")
      << r.err;
}

TEST_F(SpawnerTest, InvalidSpecsFailBeforeAnythingStarts) {
  JobSpec relative = spec(1, "pass\n");
  relative.interpreter = "python3";
  submit(relative);
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  EXPECT_EQ(std::get<JobFailed>(r.message).stage, "spec");

  JobSpec escaping = spec(2, "pass\n");
  escaping.files = {{"../../escape", 0644, "x"}};
  submit(escaping);
  r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  EXPECT_EQ(std::get<JobFailed>(r.message).stage, "workdir");
  EXPECT_NE(std::get<JobFailed>(r.message).detail.find("../../escape"), std::string::npos);
  EXPECT_FALSE(exists(tmp_ / "escape"));

  JobSpec no_memory = spec(3, "pass\n");
  no_memory.limits.memory_bytes = 0;
  submit(no_memory);
  r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  EXPECT_EQ(std::get<JobFailed>(r.message).stage, "spec");
}

TEST_F(SpawnerTest, DuplicateJobIdIsRefused) {
  submit(spec(1, "input()\n"));
  Received a = expectStarted(1);
  submit(spec(1, "print('second')\n"));
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  EXPECT_NE(std::get<JobFailed>(r.message).detail.find("already running"), std::string::npos);
  a.fds[0].reset();
  EXPECT_EQ(expectEnded(1).code, 1);  // input() at end of file: EOFError
}

// The warm pool's parked jobs have ids from 2^62 up: a front that asked for one could take the
// place of a parked job (its cgroup, its entry in the spawner's table).
// The job's cgroup path would tell it the server's job counter (job-<id>): the job has a cgroup
// namespace of its own, rooted at its cgroup.
TEST_F(SpawnerTest, JobSeesItsCgroupAsTheRootOfItsOwnNamespace) {
  auto r = runJob(spec(77, "print(open('/proc/self/cgroup').read(), end='')\n"));
  EXPECT_EQ(r.err, "");
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.find("job-"), std::string::npos) << r.out;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.substr(line.rfind(':') + 1), "/") << r.out;
  }
}

TEST_F(SpawnerTest, JobIdsOfTheWarmPoolAreRefused) {
  const uint64_t reserved = uint64_t{1} << 62;
  submit(spec(reserved, "print('mine')\n"));
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  EXPECT_EQ(std::get<JobFailed>(r.message).stage, "spec");
  EXPECT_NE(std::get<JobFailed>(r.message).detail.find("reserved"), std::string::npos);
  // An ordinary id still runs.
  submit(spec(2, "print('ok')\n"));
  Received ok = expectStarted(2);
  ok.fds[0].reset();
  EXPECT_EQ(expectEnded(2).code, 0);
}

TEST_F(SpawnerTest, MalformedRequestsAreDroppedAndTheSpawnerCarriesOn) {
  int sock = spawner_.socket.get();
  std::vector<uint8_t> garbage = {0xff, 1, 2, 3};
  ASSERT_TRUE(channel::sendDatagram(sock, garbage, {}));
  std::vector<uint8_t> short_kill = {3, 1};
  ASSERT_TRUE(channel::sendDatagram(sock, short_kill, {}));
  std::vector<uint8_t> oversize(100, 3);
  ASSERT_TRUE(channel::sendDatagram(sock, oversize, {}));
  // A spawn request without its memfd.
  SpawnJob no_fd;
  no_fd.spec.job_id = 5;
  ASSERT_TRUE(channel::sendDatagram(sock, channel::encodeRequest(no_fd), {}));
  // The spawner is still there and the next message is about the next valid job.
  auto r = runJob(spec(6, "print('alive')\n"));
  EXPECT_EQ(r.out, "alive\n");
}

TEST_F(SpawnerTest, UnsealedSpecMemfdIsRejected) {
  JobSpec s = spec(7, "print('must not run')\n");
  UniqueFd memfd(::memfd_create("spec", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  auto bytes = encodeJobSpec(s);
  ASSERT_EQ(::write(memfd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  int fd = memfd.get();
  ASSERT_TRUE(channel::sendDatagram(spawner_.socket.get(), channel::encodeRequest(SpawnJob{s}),
                                    std::span<const int>(&fd, 1)));
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  EXPECT_EQ(std::get<JobFailed>(r.message).job_id, 7u);
  EXPECT_EQ(std::get<JobFailed>(r.message).stage, "spec");
  EXPECT_NE(std::get<JobFailed>(r.message).detail.find("not sealed"), std::string::npos);

  // A spec that names another job than its request is refused too.
  auto other = channel::makeSealedSpec(spec(8, "pass\n"));
  ASSERT_TRUE(other);
  fd = other->get();
  SpawnJob claimed;
  claimed.spec.job_id = 9;
  ASSERT_TRUE(channel::sendDatagram(spawner_.socket.get(), channel::encodeRequest(claimed),
                                    std::span<const int>(&fd, 1)));
  r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  EXPECT_EQ(std::get<JobFailed>(r.message).job_id, 9u);
  EXPECT_NE(std::get<JobFailed>(r.message).detail.find("not job 9"), std::string::npos);
}

TEST_F(SpawnerTest, SignalAndKillForUnknownJobsAreHarmless) {
  send(SignalJob{99, SIGINT});
  send(KillJob{98});
  auto r = runJob(spec(1, "print('fine')\n"));
  EXPECT_EQ(r.out, "fine\n");
}

TEST_F(SpawnerTest, ClosingTheFrontKillsJobsAndStopsTheSpawner) {
  submit(spec(1, "import os, time\nprint(os.getcwd(), flush=True)\ntime.sleep(600)\n"));
  Received started = expectStarted(1);
  ASSERT_EQ(started.fds.size(), 3u);
  std::string ns = pidNamespace(std::get<JobStarted>(started.message).pid);
  ASSERT_EQ(readUntil(started.fds[1].get(), "\n"), "/job\n");
  auto dirs = jobDirs(config_.jobs_dir);
  ASSERT_EQ(dirs.size(), 1u);
  std::string cwd = dirs[0];

  spawner_.socket.reset();
  int status = 0;
  ASSERT_EQ(::waitpid(spawner_.pid, &status, 0), spawner_.pid);
  spawner_.pid = -1;
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(processesWhere([&](pid_t p) { return pidNamespace(p) == ns; }).empty());
  EXPECT_FALSE(exists(cwd));
}

// Runs in a forked child that has dropped root: starts its own spawner and runs one job.
// Returns what went wrong, or "" when the job ran in its user namespace as the caller's uid.
std::string runUnprivilegedJob(const std::string& jobs_dir) {
  SpawnerConfig config;
  config.jobs_dir = jobs_dir;
  config.policy_files = {{"default", std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml"}};
  config.cgroups.subtree = cgroupSubtree();
  auto s = startSpawner(config);
  if (!s) return "startSpawner: " + s.error().detail();
  JobSpec spec;
  spec.job_id = 1;
  spec.policy = "default";
  spec.script_name = "job.py";
  spec.script = "import os\nprint(os.getuid(), os.getgid(), os.getpid() != 1)\n";
  if (auto r = sendToSpawner(s->socket.get(), SpawnJob{spec}); !r) return r.error().detail();
  std::vector<Received> messages;
  while (messages.size() < 2) {
    pollfd p{s->socket.get(), POLLIN, 0};
    if (::poll(&p, 1, 60000) != 1) return "no message from the spawner";
    auto r = receiveFromSpawner(s->socket.get());
    if (!r) return r.error().detail();
    if (!*r) continue;
    messages.push_back(std::move(**r));
    if (auto* f = std::get_if<JobFailed>(&messages.back().message)) {
      return "job failed at " + f->stage + ": " + f->detail;
    }
  }
  if (!std::holds_alternative<JobStarted>(messages[0].message) || messages[0].fds.size() != 3) {
    return "first message is not JobStarted with 3 descriptors";
  }
  messages[0].fds[0].reset();
  std::string out = readAllFrom(messages[0].fds[1].get());
  std::string want = std::to_string(::getuid()) + " " + std::to_string(::getgid()) + " True\n";
  if (out != want) return "job printed '" + out + "', expected '" + want + "'";
  const auto* e = std::get_if<JobEnded>(&messages[1].message);
  if (e == nullptr || e->signaled || e->code != 0) return "job did not end with exit 0";
  s->socket.reset();
  int status = 0;
  ::waitpid(s->pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "spawner did not exit cleanly";
  return "";
}

TEST(SpawnerProcessTest, RunsJobsWithoutRootInAUserNamespace) {
  if (!isRoot()) GTEST_SKIP() << "this test drops root to reach the unprivileged path";
  TempDir tmp("spawner");
  constexpr uid_t kNobody = 65534;
  ASSERT_EQ(::chown(tmp.path().c_str(), kNobody, kNobody), 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    std::string error;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
        ::setresuid(kNobody, kNobody, kNobody) != 0) {
      error = "could not drop root";
    } else {
      error = runUnprivilegedJob(tmp / "jobs");
    }
    if (!error.empty() && ::write(pipe_fds[1], error.data(), error.size()) < 0) _exit(2);
    _exit(error.empty() ? 0 : 1);
  }
  ::close(pipe_fds[1]);
  std::string error = readAllFrom(pipe_fds[0]);
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_EQ(error, "");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // The job's working directory is gone.
  EXPECT_TRUE(jobDirs(tmp / "jobs").empty());
}

bool isGoneOrZombie(pid_t pid) {
  std::string stat = test::readFileOrEmpty("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren == std::string::npos || stat.compare(paren, 4, ") Z ") == 0;
}

// ---- the spawner on cgroup v2 (SpawnerConfig::test_cgroup_v2_dir: this host's cgroup2 mount has
// no memory or pids controller, so detectCgroups would take v1) ----

std::string cgroup2Mount() {
  for (const char* dir : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
    struct statfs fs {};
    if (::statfs(dir, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) return dir;
  }
  return {};
}

class SpawnerOnCgroupV2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    mount_ = cgroup2Mount();
    if (mount_.empty()) GTEST_SKIP() << "no cgroup2 mount at /sys/fs/cgroup or its unified/";
    if (!isRoot()) GTEST_SKIP() << "creating cgroups under the cgroup2 root needs root";
    ASSERT_EQ(::chmod(tmp_.path().c_str(), 0711), 0);
    config_.jobs_dir = tmp_ / "jobs";
    config_.job_uid_base = 300000u + static_cast<uint32_t>(::getpid() % 20000) * 16u;
    config_.job_uid_count = 16;
    config_.policy_files = testPolicies(tmp_);
    config_.cgroups.subtree = cgroupSubtree() + "-v2";
    config_.test_cgroup_v2_dir = mount_;
    subtree_dir_ = mount_ + "/" + config_.cgroups.subtree;
  }
  void TearDown() override {
    ::rmdir((subtree_dir_ + "/job-1").c_str());
    ::rmdir(subtree_dir_.c_str());
  }

  // Runs spec to its end; on_started sees the job while its script waits for stdin.
  JobRunOutcome run(const JobSpec& spec, const std::function<void(const JobStarted&)>& on_started) {
    auto spawner = startSpawner(config_);
    EXPECT_TRUE(spawner) << spawner.error().detail();
    if (!spawner) return {};
    JobRunOptions options;
    options.idle_timeout_ms = 60000;
    options.hold_stdin = true;
    options.on_started = [&](const JobStarted& started, JobRunControl& job) {
      on_started(started);
      job.closeStdin();
    };
    auto outcome = runJobThroughSpawner(spawner->socket.get(), spec, options);
    spawner->socket.reset();
    int status = 0;
    ::waitpid(spawner->pid, &status, 0);
    EXPECT_TRUE(outcome) << outcome.error().detail();
    return outcome ? std::move(*outcome) : JobRunOutcome{};
  }

  JobSpec spec(std::string script) {
    JobSpec s;
    s.job_id = 1;
    s.policy = "default";
    s.script_name = "job.py";
    s.script = std::move(script);
    return s;
  }

  std::string mount_, subtree_dir_;
  TempDir tmp_{"spawner"};
  SpawnerConfig config_;
};

// The init is in the job's cgroup (seen from the host), and the job's cgroup namespace is rooted
// there, so the job sees "/" and not the host's path.
TEST_F(SpawnerOnCgroupV2Test, JobsInitIsInItsCgroupWhichIsTheRootOfItsNamespace) {
  std::string host_view;
  auto outcome =
      run(spec("import sys\nprint(open('/proc/self/cgroup').read(), end='')\nsys.stdin.read()\n"),
          [&](const JobStarted& started) {
            host_view = test::readFileOrEmpty("/proc/" + std::to_string(started.pid) + "/cgroup");
          });
  ASSERT_FALSE(outcome.failed) << outcome.failed->stage << ": " << outcome.failed->detail;
  ASSERT_TRUE(outcome.ended);
  EXPECT_EQ(outcome.ended->code, 0) << outcome.err;
  const std::string job_cgroup = (subtree_dir_ + "/job-1").substr(mount_.size());
  EXPECT_NE(host_view.find("0::" + job_cgroup + "\n"), std::string::npos) << host_view;
  ASSERT_NE(outcome.out.find("0::/\n"), std::string::npos) << outcome.out;
  std::istringstream lines(outcome.out);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.substr(line.rfind(':') + 1), "/") << outcome.out;
  }
  EXPECT_FALSE(exists(subtree_dir_ + "/job-1"));
}

// Fail closed: a job cgroup the kernel will not clone the init into fails the job at stage
// cgroup with the clone's reason; the spawner does not fall back to joining it. Here the
// subtree is threaded, so a job cgroup in it is "domain invalid" and takes no process.
TEST_F(SpawnerOnCgroupV2Test, AJobCgroupTheInitCannotBeClonedIntoFailsTheJob) {
  ASSERT_EQ(::mkdir(subtree_dir_.c_str(), 0755), 0) << subtree_dir_;
  {
    std::ofstream type(subtree_dir_ + "/cgroup.type");
    type << "threaded";
  }
  ASSERT_EQ(test::readFileOrEmpty(subtree_dir_ + "/cgroup.type"), "threaded\n");
  bool started = false;
  auto outcome = run(spec("print('ran')\n"), [&](const JobStarted&) { started = true; });
  EXPECT_FALSE(started);
  ASSERT_TRUE(outcome.failed);
  EXPECT_EQ(outcome.failed->stage, "cgroup");
  EXPECT_EQ(outcome.failed->detail.rfind("clone3 into job cgroup " + subtree_dir_ + "/job-1", 0),
            0u)
      << outcome.failed->detail;
  EXPECT_NE(outcome.failed->detail.find(std::strerror(EOPNOTSUPP)), std::string::npos)
      << outcome.failed->detail;
  EXPECT_TRUE(jobDirs(config_.jobs_dir).empty());
}

TEST(SpawnerProcessTest, DeathOfTheFrontTakesTheSpawnerAndItsJobsDown) {
  TempDir tmp("spawner");
  // Named here: the front below is a forked child with a pid of its own.
  const std::string subtree = cgroupSubtree() + "-front";
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  pid_t front = ::fork();
  ASSERT_GE(front, 0);
  if (front == 0) {
    // A front that starts one job, says which processes it made, and waits to be killed.
    SpawnerConfig config;
    config.jobs_dir = tmp / "jobs";
    config.policy_files = testPolicies(tmp);
    config.cgroups.subtree = subtree;
    auto s = startSpawner(config);
    if (!s) _exit(1);
    JobSpec spec;
    spec.job_id = 1;
    spec.policy = "default";
    spec.script_name = "job.py";
    spec.script = "import time\ntime.sleep(600)\n";
    if (!sendToSpawner(s->socket.get(), SpawnJob{spec})) _exit(1);
    pollfd p{s->socket.get(), POLLIN, 0};
    if (::poll(&p, 1, 60000) != 1) _exit(1);
    auto r = receiveFromSpawner(s->socket.get());
    if (!r || !*r || !std::holds_alternative<JobStarted>((*r)->message)) _exit(1);
    std::string pids = std::to_string(s->pid) + " " +
                       std::to_string(std::get<JobStarted>((*r)->message).pid) + "\n";
    if (::write(pipe_fds[1], pids.data(), pids.size()) < 0) _exit(1);
    for (;;) ::pause();
  }
  ::close(pipe_fds[1]);
  std::string pids = readUntil(pipe_fds[0], "\n");
  ::close(pipe_fds[0]);
  std::istringstream words(pids);
  pid_t spawner = 0, init = 0;
  words >> spawner >> init;
  ASSERT_GT(spawner, 0) << "the front did not start its job";
  ASSERT_GT(init, 0);
  std::string ns = pidNamespace(init);
  ASSERT_FALSE(ns.empty());

  ASSERT_EQ(::kill(front, SIGKILL), 0);
  int status;
  ASSERT_EQ(::waitpid(front, &status, 0), front);
  // PR_SET_PDEATHSIG: the spawner dies with the front, the job's init with the spawner, and the
  // kernel takes the rest of the namespace with the init.
  EXPECT_TRUE(test::eventually([&] { return isGoneOrZombie(spawner); }));
  EXPECT_TRUE(test::eventually(
      [&] { return processesWhere([&](pid_t p) { return pidNamespace(p) == ns; }).empty(); }));

  // The next spawner on the same jobs directory and cgroup subtree removes what this one left.
  SpawnerConfig config;
  config.jobs_dir = tmp / "jobs";
  config.policy_files = testPolicies(tmp);
  config.cgroups.subtree = subtree;
  auto leftovers = detectCgroups(config.cgroups);
  ASSERT_TRUE(leftovers) << leftovers.error().detail();
  std::vector<std::string> job_cgroups;
  for (const auto& dir : leftovers->subtreeDirs()) job_cgroups.push_back(dir + "/job-1");
  if (leftovers->usable()) {
    EXPECT_TRUE(exists(job_cgroups[0])) << "the killed run left no cgroup to clean up";
  }
  EXPECT_EQ(jobDirs(tmp / "jobs").size(), 1u);
  auto next_run = startSpawner(config);
  ASSERT_TRUE(next_run) << next_run.error().detail();
  JobSpec probe;
  probe.job_id = 2;
  probe.policy = "nonexistent";
  probe.script_name = "job.py";
  ASSERT_TRUE(sendToSpawner(next_run->socket.get(), SpawnJob{probe}));
  pollfd p{next_run->socket.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 60000), 1);  // any answer comes after the start-up cleanup
  EXPECT_TRUE(jobDirs(tmp / "jobs").empty());
  for (const auto& dir : job_cgroups) EXPECT_FALSE(exists(dir)) << dir;
  next_run->socket.reset();
  ::waitpid(next_run->pid, &status, 0);
}

TEST(SpawnerProcessTest, RefusesAJobsDirectoryThatIsASymlink) {
  TempDir tmp("spawner");
  ASSERT_EQ(::mkdir((tmp / "real").c_str(), 0711), 0);
  ASSERT_EQ(::symlink((tmp / "real").c_str(), (tmp / "jobs").c_str()), 0);
  SpawnerConfig config;
  config.jobs_dir = tmp / "jobs";
  auto s = startSpawner(config);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().detail().find(tmp / "jobs"), std::string::npos) << s.error().detail();
}

}  // namespace
// ---- the confinement ----

class ConfinementTest : public SpawnerTest {
 protected:
  JobSpec openSpec(uint64_t id, std::string script) {
    JobSpec s = spec(id, std::move(script));
    s.policy = "open";
    return s;
  }
};

TEST_F(ConfinementTest, HostSecretsAndFilesOutsideTheJobAreUnreachable) {
  TempDir outside("outside");
  ASSERT_EQ(::chmod(outside.path().c_str(), 0755), 0);
  test::writeFile(outside / "file", "host data", 0644);
  std::string script =
      "import os\n"
      "for p in ['/etc/shadow', '/root', '/home', '/var', '" +
      outside / "file" + "', '" + config_.jobs_dir +
      "']:\n"
      "    print(p, os.path.lexists(p))\n";
  auto r = runJob(openSpec(1, script));
  EXPECT_EQ(r.out, "/etc/shadow False\n/root False\n/home False\n/var False\n" + outside / "file" +
                       " False\n" + config_.jobs_dir + " False\n")
      << r.err;
}

TEST_F(ConfinementTest, WritesSucceedOnlyInTheJobDirectoryAndTmp) {
  std::string script =
      "import os\n"
      "for p in ['/job/a', '/tmp/a', '/dev/shm/a', '/a', '/usr/a', '/etc/a', '/dev/a',\n"
      "          '/proc/a', '/etc/hosts']:\n"
      "    try:\n"
      "        with open(p, 'a') as f: f.write('x')\n"
      "        print(p, 'written')\n"
      "    except OSError as e:\n"
      "        print(p, 'refused')\n";
  auto r = runJob(openSpec(1, script));
  EXPECT_EQ(r.out,
            "/job/a written\n/tmp/a written\n/dev/shm/a written\n/a refused\n/usr/a refused\n"
            "/etc/a refused\n/dev/a refused\n/proc/a refused\n/etc/hosts refused\n")
      << r.err;
}

TEST_F(ConfinementTest, DevHoldsOnlyTheHarmlessNodes) {
  auto r = runJob(openSpec(1,
                           "import os\nprint(sorted(os.listdir('/dev')))\n"
                           "print(len(open('/dev/urandom','rb').read(8)))\n"
                           "open('/dev/null','w').write('x')\n"));
  EXPECT_EQ(r.out,
            "['fd', 'full', 'null', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'urandom', "
            "'zero']\n8\n")
      << r.err;
}

TEST_F(ConfinementTest, ProcShowsOnlyTheJobsProcesses) {
  auto r = runJob(openSpec(1,
                           "import os\n"
                           "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
                           "print(os.getpid())\n"));
  // The init (1) and the interpreter (2): nothing of the host.
  EXPECT_EQ(r.out, "[1, 2]\n2\n") << r.err;
}

TEST_F(ConfinementTest, ProcKernelKnobsAreReadOnly) {
  auto r = runJob(openSpec(1,
                           "import os\n"
                           "print(os.statvfs('/proc/sys').f_flag & os.ST_RDONLY != 0)\n"
                           "print(os.statvfs('/proc').f_flag & os.ST_RDONLY != 0)\n"));
  EXPECT_EQ(r.out, "True\nFalse\n") << r.err;
}

TEST_F(ConfinementTest, NetworkIsUnreachableEvenWhenSeccompAllowsSockets) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  ASSERT_TRUE(listener.valid());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 8), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string connect =
      "import socket\n"
      "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
      "try:\n"
      "    s.connect(('127.0.0.1', " +
      std::to_string(ntohs(addr.sin_port)) +
      "))\n"
      "    print('connected')\n"
      "except OSError as e:\n"
      "    print('refused', e.errno)\n";
  std::string script = "import socket\nprint(socket.if_nameindex())\n" + connect;
  auto r = runJob(openSpec(1, script));
  // The job's network namespace has only a loopback, and it is down; Landlock (ABI 4) refuses
  // the TCP connect even before routing would.
  std::string landlock_refusal = "[(1, 'lo')]\nrefused " + std::to_string(EACCES) + "\n";
  std::string unreachable = "[(1, 'lo')]\nrefused " + std::to_string(ENETUNREACH) + "\n";
  EXPECT_TRUE(r.out == landlock_refusal || r.out == unreachable) << r.out << r.err;
  EXPECT_LT(::accept(listener.get(), nullptr, nullptr), 0);
  // Under the default policy the socket itself is refused.
  auto d = runJob(spec(2, connect));
  EXPECT_EQ(d.out, "") << d.err;
  EXPECT_NE(d.err.find("PermissionError"), std::string::npos) << d.err;
}

TEST_F(ConfinementTest, LoopbackPolicyLetsTheJobTalkToItselfOnly) {
  test::writeFile(tmp_ / "loop.yaml", openPolicy("network: loopback\n"), 0644);
  reloadFrom({{"loop", tmp_ / "loop.yaml"}});
  ASSERT_TRUE(std::get<PoliciesReloaded>(next().message).ok);
  JobSpec s = spec(1,
                   "import socket\n"
                   "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()\n"
                   "c = socket.create_connection(srv.getsockname())\n"
                   "conn, _ = srv.accept(); c.sendall(b'ping'); print(conn.recv(4).decode())\n"
                   "print([n for _, n in socket.if_nameindex()])\n");
  s.policy = "loop";
  auto r = runJob(s);
  EXPECT_EQ(r.out, "ping\n['lo']\n") << r.err;
}

TEST_F(ConfinementTest, MountsAndHostNameStayInsideTheJob) {
  char host_name[256] = {};
  ASSERT_EQ(::gethostname(host_name, sizeof host_name - 1), 0);
  submit(openSpec(1,
                  "import socket, sys\nprint(socket.gethostname(), flush=True)\n"
                  "print(open('/proc/self/mountinfo').read().count(' /tmp '), flush=True)\n"
                  "sys.stdin.read()\n"));
  Received started = expectStarted(1);
  ASSERT_EQ(started.fds.size(), 3u);
  EXPECT_EQ(readUntil(started.fds[1].get(), "\n"), "pyrun\n");
  EXPECT_EQ(readUntil(started.fds[1].get(), "\n"), "1\n");
  EXPECT_NE(std::string(host_name), "pyrun");
  // While the job runs, none of its mounts (its root is mounted on <jobs_dir>/.root inside its
  // namespace) appears in ours.
  std::string mounts = test::readFileOrEmpty("/proc/self/mountinfo");
  EXPECT_EQ(mounts.find(config_.jobs_dir), std::string::npos) << mounts;
  started.fds[0].reset();
  EXPECT_EQ(readAllFrom(started.fds[1].get()), "");
  EXPECT_EQ(expectEnded(1).code, 0);
}

TEST_F(ConfinementTest, MemoryBombEndsWithMemoryLimit) {
  if (!cgroupsUsable()) GTEST_SKIP() << "no memory and pids cgroups on this host";
  JobSpec s = spec(1,
                   "chunks = []\n"
                   "while True:\n"
                   "    chunks.append(bytearray(1 << 20))\n");
  s.limits.memory_bytes = 64ull << 20;
  auto r = runJob(s);
  EXPECT_EQ(r.ended.cause, EndCause::kMemoryLimit) << r.err;
  EXPECT_TRUE(r.ended.signaled);
  EXPECT_EQ(r.ended.code, SIGKILL);
}

TEST_F(ConfinementTest, ForkBombEndsWithProcessLimitAndLeavesNothing) {
  if (!cgroupsUsable()) GTEST_SKIP() << "no memory and pids cgroups on this host";
  JobSpec s = spec(1,
                   "import os, time\n"
                   "while True:\n"
                   "    os.fork()\n");
  s.limits.processes = 16;
  submit(s);
  Received started = expectStarted(1);
  ASSERT_EQ(started.fds.size(), 3u);
  std::string ns = pidNamespace(std::get<JobStarted>(started.message).pid);
  started.fds[0].reset();
  readAllFrom(started.fds[1].get());
  JobEnded e = expectEnded(1);
  EXPECT_EQ(e.cause, EndCause::kProcessLimit);
  EXPECT_TRUE(processesWhere([&](pid_t p) { return pidNamespace(p) == ns; }).empty());
}

TEST_F(ConfinementTest, ForbiddenSystemCallEndsTheJobAndIsNamed) {
  auto r = runJob(spec(1,
                       "import ctypes\n"
                       "libc = ctypes.CDLL(None)\n"
                       "print('calling', flush=True)\n"
                       "libc.ptrace(0, 0, 0, 0)\n"
                       "print('survived')\n"));
  EXPECT_EQ(r.out, "calling\n") << r.err;
  EXPECT_EQ(r.ended.cause, EndCause::kSyscall);
  EXPECT_TRUE(r.ended.signaled);
  EXPECT_EQ(r.ended.code, SIGSYS);
  if (isRoot()) {
    EXPECT_EQ(r.ended.detail, "ptrace");
    EXPECT_TRUE(r.ended.syscall_named);
  } else {
    EXPECT_EQ(r.ended.detail.rfind("forbidden system call (name unknown: ", 0), 0u)
        << r.ended.detail;
    EXPECT_FALSE(r.ended.syscall_named);
  }
}

// The interpreter's host pid comes with the init's start report, not from a later look at the
// init's children: here the spawner reads the report only after the whole job has ended (it is
// stopped meanwhile), when the init has no children left to look at, and still names the call.
TEST_F(ConfinementTest, ForbiddenCallIsNamedWhenTheStartReportIsReadAfterTheJobEnded) {
  if (!isRoot()) GTEST_SKIP() << "the audit socket needs a root spawner";
  JobSpec s = spec(1, "import ctypes\nctypes.CDLL(None).ptrace(0, 0, 0, 0)\n");
  // The init copies this into /job before it starts the interpreter: time to stop the spawner.
  s.files = {{"padding.bin", 0644, std::string(4u << 20, 'x')}};
  submit(s);
  const std::string children = "/proc/" + std::to_string(spawner_.pid) + "/task/" +
                               std::to_string(spawner_.pid) + "/children";
  // The init exists from the clone on; its start report comes only after it built the job's root.
  pid_t init = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (init == 0 && std::chrono::steady_clock::now() < deadline) {
    std::string text = test::readFileOrEmpty(children);
    if (!text.empty()) init = static_cast<pid_t>(std::stol(text));
  }
  ASSERT_NE(init, 0) << "the job's init never appeared";
  ASSERT_EQ(::kill(spawner_.pid, SIGSTOP), 0);
  // The init exits once the interpreter died, it killed and reaped the rest and it waited in vain
  // for the stopped spawner's answer (kExitAckTimeoutMs): it stays a zombie, with no children,
  // since its parent is stopped.
  bool ended = test::eventually(
      [&] {
        std::string stat = test::readFileOrEmpty("/proc/" + std::to_string(init) + "/stat");
        auto paren = stat.rfind(')');
        return paren != std::string::npos && stat.size() > paren + 2 && stat[paren + 2] == 'Z';
      },
      std::chrono::seconds(60));
  ASSERT_EQ(::kill(spawner_.pid, SIGCONT), 0);
  ASSERT_TRUE(ended) << "the job did not end";
  expectStarted(1);
  JobEnded end = expectEnded(1);
  EXPECT_EQ(end.cause, EndCause::kSyscall);
  EXPECT_EQ(end.detail, "ptrace");
}

TEST_F(ConfinementTest, OrdinaryPythonWorksUnderTheDefaultPolicy) {
  std::string script = R"(import asyncio, json, multiprocessing, sqlite3, subprocess, sys
import tempfile, threading

def square(x):
    return x * x

if __name__ == '__main__':
    out = []
    t = threading.Thread(target=lambda: out.append('thread'))
    t.start(); t.join()
    print(out[0])
    with multiprocessing.Pool(2) as pool:
        print(sum(pool.map(square, range(10))))
    with tempfile.NamedTemporaryFile() as f:
        f.write(b'abc'); f.flush(); print(open(f.name, 'rb').read().decode())
    db = sqlite3.connect(':memory:')
    db.execute('create table t (x)'); db.execute('insert into t values (42)')
    print(db.execute('select x from t').fetchone()[0])
    async def main():
        await asyncio.sleep(0)
        return 'async'
    print(asyncio.run(main()))
    print(subprocess.run([sys.executable, '-c', 'print(7)'], capture_output=True,
                         text=True).stdout.strip())
    print(json.dumps({'ok': True}))
)";
  auto r = runJob(spec(1, script));
  EXPECT_EQ(r.out, "thread\n285\nabc\n42\nasync\n7\n{\"ok\": true}\n") << r.err;
  EXPECT_EQ(r.ended.cause, EndCause::kExited) << r.ended.detail;
  EXPECT_EQ(r.ended.code, 0);
}

TEST_F(ConfinementTest, AnUnmountableExtraFailsTheJobAtStageRoot) {
  test::writeFile(tmp_ / "extra.yaml",
                  openPolicy("filesystem:\n  read_only: [/nonexistent-pyrun-extra]\n"), 0644);
  reloadFrom({{"default", std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml"},
              {"extra", tmp_ / "extra.yaml"}});
  Received reloaded = next();
  ASSERT_TRUE(std::holds_alternative<PoliciesReloaded>(reloaded.message));
  ASSERT_TRUE(std::get<PoliciesReloaded>(reloaded.message).ok)
      << std::get<PoliciesReloaded>(reloaded.message).detail;
  JobSpec s = spec(1, "print('never')\n");
  s.policy = "extra";
  submit(s);
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  const auto& f = std::get<JobFailed>(r.message);
  const std::string step =
      "bind /nonexistent-pyrun-extra onto /nonexistent-pyrun-extra read-only: No such file or "
      "directory";
  if (isRoot()) {
    // The policy's root template cannot be built: the job fails before anything is made for it.
    EXPECT_EQ(f.stage, "root");
    EXPECT_NE(
        f.detail.find("the root template of policy extra at " + config_.jobs_dir + "/.templates/"),
        std::string::npos)
        << f.detail;
    EXPECT_NE(f.detail.find(step), std::string::npos) << f.detail;
  } else {
    EXPECT_EQ(f.stage, "mount");
    EXPECT_EQ(f.error, ENOENT);
    EXPECT_EQ(f.detail, step);
  }
  EXPECT_TRUE(test::eventually([&] { return jobDirs(config_.jobs_dir).empty(); }));
}

// A host directory outside /tmp (an extra there would be hidden by the job's own /tmp).
class VarTmpDir {
 public:
  VarTmpDir() {
    char name[] = "/var/tmp/pyrun-extra-XXXXXX";
    path_ = ::mkdtemp(name) != nullptr ? name : "";
  }
  ~VarTmpDir() { test::run({"/bin/rm", "-rf", path_}); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

TEST_F(ConfinementTest, ExtrasUnderTheJobsOwnMountsAreRefused) {
  test::writeFile(tmp_ / "extra.yaml",
                  openPolicy("filesystem:\n  read_only: [" + tmp_.path() + "]\n"), 0644);
  reloadFrom({{"extra", tmp_ / "extra.yaml"}});
  ASSERT_TRUE(std::get<PoliciesReloaded>(next().message).ok);
  JobSpec s = spec(1, "print('never')\n");
  s.policy = "extra";
  submit(s);
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  EXPECT_EQ(std::get<JobFailed>(r.message).stage, "policy");
  EXPECT_EQ(std::get<JobFailed>(r.message).detail,
            "policy extra: filesystem path " + tmp_.path() + " overlaps the job's own /tmp");
}

TEST_F(ConfinementTest, ReadOnlyExtrasAreVisibleAndNotWritable) {
  VarTmpDir data;
  ASSERT_FALSE(data.path().empty());
  ASSERT_EQ(::chmod(data.path().c_str(), 0777), 0);
  test::writeFile(data / "input", "shared data", 0666);
  test::writeFile(tmp_ / "extra.yaml",
                  openPolicy("filesystem:\n  read_only: [" + data.path() + "]\n"), 0644);
  reloadFrom({{"default", std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml"},
              {"extra", tmp_ / "extra.yaml"}});
  ASSERT_TRUE(std::get<PoliciesReloaded>(next().message).ok);
  JobSpec s = spec(1, "print(open('" + data / "input" +
                          "').read())\n"
                          "try:\n    open('" +
                          data / "input" + "', 'w')\nexcept OSError:\n    print('read-only')\n");
  s.policy = "extra";
  auto r = runJob(s);
  EXPECT_EQ(r.out, "shared data\nread-only\n") << r.err;
  EXPECT_EQ(test::readFileOrEmpty(data / "input"), "shared data");
}

// ---- root templates (docs/SANDBOX.md, "Root templates") ----

// The job's mounts as it sees them, one line each, sorted: mount point, the mount's own options,
// file system type (the super block's options are left out: the template's tmpfs is read-only
// there, docs/SANDBOX.md).
constexpr const char* kPrintMounts =
    "rows = []\n"
    "for line in open('/proc/self/mountinfo'):\n"
    "    f = line.split()\n"
    "    sep = f.index('-')\n"
    "    rows.append(' '.join([f[4], f[5], f[sep + 1]] + f[6:sep]))\n"
    "print('\\n'.join(sorted(rows)))\n";

// The tops of the spawner's root templates (<jobs_dir>/.templates/<n>, a new n for each build) ->
// their super block options, as its mount namespace holds them.
std::map<std::string, std::string> templateTops(pid_t spawner, const std::string& jobs_dir) {
  std::map<std::string, std::string> tops;
  std::istringstream in(test::readFileOrEmpty("/proc/" + std::to_string(spawner) + "/mountinfo"));
  std::string line;
  const std::string dir = jobs_dir + "/.templates/";
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    if (f.size() < 10 || f[4].rfind(dir, 0) != 0) continue;
    if (f[4].find('/', dir.size()) != std::string::npos) continue;  // below a top
    tops[f[4]] = f.back();
  }
  return tops;
}

class RootTemplateTest : public ConfinementTest {
 protected:
  void SetUp() override {
    if (!isRoot()) GTEST_SKIP() << "root templates need root (the spawner's own mount namespace)";
    ConfinementTest::SetUp();
  }
  // Stops the spawner and starts one with config_ (changed by the test).
  void restartSpawner() {
    spawner_.socket.reset();
    int status;
    ::waitpid(spawner_.pid, &status, 0);
    auto s = startSpawner(config_);
    ASSERT_TRUE(s) << s.error().detail();
    spawner_ = std::move(*s);
  }
};

TEST_F(RootTemplateTest, EveryPolicyHasATemplateRebuiltOnReload) {
  // Built at start, one per policy (default and open), in the spawner's namespace only.
  std::map<std::string, std::string> before;
  ASSERT_TRUE(test::eventually([&] {
    before = templateTops(spawner_.pid, config_.jobs_dir);
    return before.size() == 2;
  }));
  EXPECT_EQ(test::readFileOrEmpty("/proc/self/mountinfo").find(config_.jobs_dir + "/.templates"),
            std::string::npos);
  reloadFrom(config_.policy_files);
  ASSERT_TRUE(std::get<PoliciesReloaded>(next().message).ok);
  auto after = templateTops(spawner_.pid, config_.jobs_dir);
  ASSERT_EQ(after.size(), 2u);
  for (const auto& [top, options] : after) EXPECT_EQ(before.count(top), 0u) << top;
}

// A reload unmounts the old templates while a job's init may not yet have cloned its own from its
// copy of the spawner's namespace. Removing a template's directory then would detach that copy too
// (Linux 3.18+: rmdir of a mount point detaches the mounts on it in every namespace), and the job
// would fail at stage root. Here the init is stopped right after its clone, across a reload.
TEST_F(RootTemplateTest, AReloadWhileAJobBuildsItsRootDoesNotFailTheJob) {
  ASSERT_TRUE(
      test::eventually([&] { return templateTops(spawner_.pid, config_.jobs_dir).size() == 2; }));
  const std::string children = "/proc/" + std::to_string(spawner_.pid) + "/task/" +
                               std::to_string(spawner_.pid) + "/children";
  ASSERT_EQ(test::readFileOrEmpty(children), "");
  submit(spec(1, "print('ok')\n"));
  pid_t init = 0;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (init == 0 && std::chrono::steady_clock::now() < deadline) {
    std::string text = test::readFileOrEmpty(children);
    if (!text.empty()) init = static_cast<pid_t>(std::stol(text));
  }
  ASSERT_NE(init, 0) << "the job's init never appeared";
  ASSERT_EQ(::kill(init, SIGSTOP), 0);
  reloadFrom(config_.policy_files);
  Received reloaded = next();
  ::kill(init, SIGCONT);
  ASSERT_TRUE(std::holds_alternative<PoliciesReloaded>(reloaded.message));
  EXPECT_TRUE(std::get<PoliciesReloaded>(reloaded.message).ok);
  Received started = expectStarted(1);
  ASSERT_EQ(started.fds.size(), 3u);
  started.fds[0].reset();  // no stdin
  std::string out = readAllFrom(started.fds[1].get());
  std::string err = readAllFrom(started.fds[2].get());
  JobEnded e = expectEnded(1);
  EXPECT_EQ(e.code, 0) << err;
  EXPECT_FALSE(e.signaled);
  EXPECT_EQ(out, "ok\n");
}

TEST_F(RootTemplateTest, TemplateIsReadOnlyEvenForRootAndInEveryJob) {
  std::map<std::string, std::string> tops;
  ASSERT_TRUE(test::eventually([&] {
    tops = templateTops(spawner_.pid, config_.jobs_dir);
    return !tops.empty();
  }));
  for (const auto& [top, options] : tops) {
    EXPECT_EQ(options.rfind("ro,", 0), 0u) << top << ": " << options;
  }
  // Root on the host, through the spawner's namespace, cannot write into a template.
  auto dirs = listDirectory("/proc/" + std::to_string(spawner_.pid) + "/root" + config_.jobs_dir +
                            "/.templates");
  ASSERT_TRUE(dirs && !dirs->empty());
  const std::string top = "/proc/" + std::to_string(spawner_.pid) + "/root" + config_.jobs_dir +
                          "/.templates/" + dirs->front().name;
  for (const std::string& path : {top + "/planted", top + "/dev/planted"}) {
    errno = 0;
    EXPECT_LT(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), 0) << path;
    EXPECT_EQ(errno, EROFS) << path;
  }
  // A job's root and /dev are the template's read-only super blocks; its own mounts are its own.
  auto r = runJob(openSpec(1,
                           "rows = []\n"
                           "for line in open('/proc/self/mountinfo'):\n"
                           "    f = line.split()\n"
                           "    if f[4] in ('/', '/dev', '/tmp', '/job'):\n"
                           "        rows.append(f[4] + ' ' + f[-1].split(',')[0])\n"
                           "print('\\n'.join(sorted(rows)))\n"));
  EXPECT_EQ(r.out, "/ ro\n/dev ro\n/job rw\n/tmp rw\n") << r.err;
}

TEST_F(RootTemplateTest, TwoJobsOfAPolicySeeIdenticalRootsAndNothingOfEachOther) {
  auto first = runJob(openSpec(1, std::string("open('/tmp/left', 'w').write('1')\n"
                                              "open('/job/left', 'w').write('1')\n") +
                                      kPrintMounts));
  auto second = runJob(openSpec(2, std::string("import os\n"
                                               "assert not os.path.exists('/tmp/left')\n"
                                               "assert not os.path.exists('/job/left')\n") +
                                       kPrintMounts));
  EXPECT_EQ(first.ended.code, 0) << first.err;
  EXPECT_EQ(second.ended.code, 0) << second.err;
  EXPECT_NE(first.out.find("/usr ro,nosuid,nodev"), std::string::npos) << first.out;
  EXPECT_EQ(first.out, second.out);
}

TEST_F(RootTemplateTest, ClonedRootMatchesTheRootBuiltStepByStep) {
  // A policy with extras, read-only and writable, so that every kind of step is there. (Jobs with
  // a terminal are compared by the terminal suite, which runs with templates.)
  VarTmpDir data;
  ASSERT_FALSE(data.path().empty());
  ASSERT_EQ(::mkdir((data / "ro").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((data / "rw").c_str(), 0777), 0);
  test::writeFile(tmp_ / "extra.yaml",
                  openPolicy("filesystem:\n  read_only: [" + data / "ro" + "]\n  read_write: [" +
                             data / "rw" + "]\n"),
                  0644);
  config_.policy_files = {{"extra", tmp_ / "extra.yaml"}};
  JobSpec s = spec(1, kPrintMounts);
  s.policy = "extra";
  std::string cloned, stepwise;
  for (bool templates : {true, false}) {
    config_.root_templates = templates;
    restartSpawner();
    (templates ? cloned : stepwise) = runJob(s).out;
  }
  EXPECT_NE(cloned.find(data / "rw" + " rw,nosuid,nodev"), std::string::npos) << cloned;
  EXPECT_NE(cloned.find(data / "ro" + " ro,nosuid,nodev"), std::string::npos) << cloned;
  EXPECT_EQ(cloned, stepwise);
}

TEST_F(RootTemplateTest, AHostFileReplacedSinceTheTemplateReachesTheNextJob) {
  VarTmpDir data;
  ASSERT_FALSE(data.path().empty());
  ASSERT_EQ(::chmod(data.path().c_str(), 0755), 0);
  test::writeFile(data / "input", "first", 0644);
  test::writeFile(tmp_ / "extra.yaml",
                  openPolicy("filesystem:\n  read_only: [" + data / "input" + "]\n"), 0644);
  reloadFrom({{"extra", tmp_ / "extra.yaml"}});
  ASSERT_TRUE(std::get<PoliciesReloaded>(next().message).ok);
  JobSpec s = spec(1, "print(open('" + data / "input" + "').read())\n");
  s.policy = "extra";
  EXPECT_EQ(runJob(s).out, "first\n");
  // Replaced as editors and package managers do: a new file renamed over the old one.
  test::writeFile(data / "input.new", "second", 0644);
  ASSERT_EQ(::rename((data / "input.new").c_str(), (data / "input").c_str()), 0);
  s.job_id = 2;
  EXPECT_EQ(runJob(s).out, "second\n");
}

// policy/README.md's package environment: a venv made with --system-site-packages (Debian's
// python3-numpy), read-only in the job, its bin/python3 a link to the system interpreter.
TEST_F(ConfinementTest, VenvInterpreterReadOnlyInTheJobImportsNumpy) {
  if (test::run({"/usr/bin/python3", "-c", "import numpy"}).exit_code != 0) {
    GTEST_SKIP() << "numpy is not installed for /usr/bin/python3 (Debian: python3-numpy)";
  }
  VarTmpDir dir;
  ASSERT_FALSE(dir.path().empty());
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  const std::string venv = dir / "venv";
  auto made = test::run(
      {"/usr/bin/python3", "-m", "venv", "--system-site-packages", "--without-pip", venv});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  test::writeFile(tmp_ / "venv.yaml",
                  "version: 1\ninclude: [" + std::string(PYRUN_SOURCE_DIR) +
                      "/policy/default.yaml]\ninterpreter: " + venv +
                      "/bin/python3\nfilesystem:\n  read_only: [" + venv + "]\n",
                  0644);
  reloadFrom({{"default", std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml"},
              {"venv", tmp_ / "venv.yaml"}});
  Received reloaded = next();
  ASSERT_TRUE(std::get<PoliciesReloaded>(reloaded.message).ok)
      << std::get<PoliciesReloaded>(reloaded.message).detail;
  JobSpec s = spec(1, "import sys, numpy\nprint(sys.prefix, numpy.arange(4).sum())\n");
  s.policy = "venv";
  s.interpreter = venv + "/bin/python3";
  auto r = runJob(s);
  EXPECT_EQ(r.out, venv + " 6\n") << r.err;
  EXPECT_EQ(r.ended.code, 0) << r.err;
}

// Without the venv in the job's root the policy does not load: the reload is refused, naming the
// fix, instead of every job failing at execve.
TEST_F(ConfinementTest, VenvInterpreterOutsideTheJobRootIsRefusedAtReload) {
  VarTmpDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string venv = dir / "venv";
  ASSERT_EQ(test::run({"/usr/bin/python3", "-m", "venv", "--without-pip", venv}).exit_code, 0);
  test::writeFile(tmp_ / "venv.yaml",
                  "version: 1\ninclude: [" + std::string(PYRUN_SOURCE_DIR) +
                      "/policy/default.yaml]\ninterpreter: " + venv + "/bin/python3\n",
                  0644);
  reloadFrom({{"venv", tmp_ / "venv.yaml"}});
  Received reloaded = next();
  const auto& result = std::get<PoliciesReloaded>(reloaded.message);
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.detail.find(tmp_ / "venv.yaml:3:14: interpreter " + venv + "/bin/python3, "),
            std::string::npos)
      << result.detail;
  EXPECT_NE(result.detail.find("filesystem: {read_only: [" + venv + "]}"), std::string::npos)
      << result.detail;
}

TEST_F(ConfinementTest, UnknownPolicyFailsTheJob) {
  JobSpec s = spec(1, "print('never')\n");
  s.policy = "nonexistent";
  submit(s);
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  EXPECT_EQ(std::get<JobFailed>(r.message).stage, "policy");
  EXPECT_EQ(std::get<JobFailed>(r.message).detail, "policy 'nonexistent' is not loaded");
}

TEST_F(ConfinementTest, InvalidReloadKeepsTheOldPolicies) {
  test::writeFile(tmp_ / "bad.yaml", "version: 1\nseccomp:\n  bogus: 1\n", 0644);
  reloadFrom({{"default", tmp_ / "bad.yaml"}});
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<PoliciesReloaded>(r.message));
  const auto& reloaded = std::get<PoliciesReloaded>(r.message);
  EXPECT_FALSE(reloaded.ok);
  EXPECT_EQ(reloaded.detail.rfind(tmp_ / "bad.yaml:", 0), 0u) << reloaded.detail;
  // The old "default" and "open" still serve.
  EXPECT_EQ(runJob(spec(1, "print('still')\n")).out, "still\n");
  EXPECT_EQ(runJob(openSpec(2, "print('open')\n")).out, "open\n");
}

// SIGSYS a program sends itself is not its filter's verdict: with the audit socket every kill
// record reaches the spawner, and none came for this one.
TEST_F(ConfinementTest, SigsysFromKillIsNotTakenForTheFilter) {
  if (!isRoot()) GTEST_SKIP() << "the audit socket needs a root spawner";
  auto r = runJob(spec(1,
                       "import os, signal\n"
                       "print('sending', flush=True)\n"
                       "os.kill(os.getpid(), signal.SIGSYS)\n"));
  EXPECT_EQ(r.out, "sending\n") << r.err;
  EXPECT_TRUE(r.ended.signaled);
  EXPECT_EQ(r.ended.code, SIGSYS);
  EXPECT_EQ(r.ended.cause, EndCause::kExited) << r.ended.detail;
  EXPECT_EQ(r.ended.detail, "");
}

// The front enforces the wall-clock limit; a front that does not (this test never kills) still
// sees the job killed by the spawner 10 s after the limit.
TEST_F(SpawnerTest, JobsOutlivingTheirWallLimitAreKilledByTheSpawner) {
  JobSpec s = spec(1, "import time\nprint('up', flush=True)\ntime.sleep(1000)\n");
  s.limits.wall_seconds = 1;
  submit(s);
  Received started = expectStarted(1);
  ASSERT_EQ(started.fds.size(), 3u);
  EXPECT_EQ(readUntil(started.fds[1].get(), "\n"), "up\n");
  const auto before = std::chrono::steady_clock::now();
  JobEnded e = expectEnded(1);
  const auto waited = std::chrono::steady_clock::now() - before;
  EXPECT_EQ(e.cause, EndCause::kKilled);
  EXPECT_TRUE(e.signaled);
  EXPECT_EQ(e.code, SIGKILL);
  // Not before the grace period: the front must get its chance to report the wall verdict.
  EXPECT_GE(e.wall_us, 11'000'000u);
  EXPECT_LT(waited, std::chrono::seconds(55));
}

// The spawner's own cap on running jobs: a front that ignores its queue cannot start more.
TEST(SpawnerProcessTest, JobsBeyondTheSpawnersCapFailAsBusy) {
  TempDir tmp("spawner");
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);
  SpawnerConfig config;
  config.jobs_dir = tmp / "jobs";
  config.job_uid_base = 330000u + static_cast<uint32_t>(::getpid() % 2000) * 16u;
  config.job_uid_count = 16;
  config.policy_files = testPolicies(tmp);
  config.cgroups.subtree = cgroupSubtree() + "-cap";
  config.max_jobs = 1;
  auto s = startSpawner(config);
  ASSERT_TRUE(s) << s.error().detail();
  auto waitMessage = [&]() -> Received {
    pollfd p{s->socket.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 60000), 1);
    auto r = receiveFromSpawner(s->socket.get());
    EXPECT_TRUE(r && *r);
    return std::move(**r);
  };
  JobSpec first;
  first.job_id = 1;
  first.policy = "default";
  first.script_name = "job.py";
  first.script = "input()\n";
  ASSERT_TRUE(sendToSpawner(s->socket.get(), SpawnJob{first}));
  Received started = waitMessage();
  ASSERT_TRUE(std::holds_alternative<JobStarted>(started.message));
  JobSpec second = first;
  second.job_id = 2;
  ASSERT_TRUE(sendToSpawner(s->socket.get(), SpawnJob{second}));
  Received refused = waitMessage();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(refused.message));
  EXPECT_EQ(std::get<JobFailed>(refused.message).stage, "busy");
  EXPECT_EQ(std::get<JobFailed>(refused.message).job_id, 2u);
  // Once the first has ended, the next one starts.
  started.fds[0].reset();
  Received ended = waitMessage();
  ASSERT_TRUE(std::holds_alternative<JobEnded>(ended.message));
  JobSpec third = first;
  third.job_id = 3;
  third.script = "print('third')\n";
  ASSERT_TRUE(sendToSpawner(s->socket.get(), SpawnJob{third}));
  EXPECT_TRUE(std::holds_alternative<JobStarted>(waitMessage().message));
  s->socket.reset();
  int status = 0;
  ::waitpid(s->pid, &status, 0);
}

TEST(SpawnerProcessTest, InvalidPolicyStopsTheStartWithItsLocation) {
  TempDir tmp("spawner");
  test::writeFile(tmp / "bad.yaml", "version: 1\nlimits:\n  memory: lots\n", 0644);
  SpawnerConfig config;
  config.jobs_dir = tmp / "jobs";
  config.policy_files = {{"bad", tmp / "bad.yaml"}};
  auto s = startSpawner(config);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kPolicy);
  EXPECT_EQ(s.error().detail().rfind(tmp / "bad.yaml:3:", 0), 0u) << s.error().detail();
}

// StrictModes: the root spawner loads no policy that someone else could have written, an included
// one as much as the file named; the error names the file and why.
TEST(SpawnerProcessTest, PolicyIncludingAFileOthersCanWriteIsRefused) {
  TempDir tmp("spawner");
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  test::writeFile(tmp / "base.yaml",
                  "version: 1\nseccomp:\n  default_action: kill_process\n"
                  "  allow: ['@python-startup']\n",
                  0666);
  test::writeFile(tmp / "p.yaml", "version: 1\ninclude: [base.yaml]\n", 0644);
  SpawnerConfig config;
  config.jobs_dir = tmp / "jobs";
  config.policy_files = {{"p", tmp / "p.yaml"}};
  auto s = startSpawner(config);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kPolicy);
  EXPECT_NE(s.error().detail().find("refusing " + (tmp / "base.yaml") + ": " + (tmp / "base.yaml") +
                                    " is writable by everyone (mode 0666)"),
            std::string::npos)
      << s.error().detail();
  // Made safe, the same files load.
  ASSERT_EQ(::chmod((tmp / "base.yaml").c_str(), 0644), 0);
  config.cgroups.subtree = cgroupSubtree() + "-strict";
  auto ok = startSpawner(config);
  ASSERT_TRUE(ok) << ok.error().detail();
  ok->socket.reset();
  int status = 0;
  ::waitpid(ok->pid, &status, 0);
}

// StrictModes comes before reading: a policy file others could have written is refused unread, so
// the front's user cannot make the root spawner open the files it names (their keys would come
// back in the diagnostics, and a FIFO among them would block the spawner).
TEST(SpawnerProcessTest, PolicyOthersCanWriteIsRefusedBeforeItsIncludesAreRead) {
  TempDir tmp("spawner");
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  test::writeFile(tmp / "secret.yaml", "password: hunter2\n", 0600);
  test::writeFile(tmp / "p.yaml", "version: 1\ninclude: [secret.yaml]\n", 0666);
  SpawnerConfig config;
  config.jobs_dir = tmp / "jobs";
  config.policy_files = {{"p", tmp / "p.yaml"}};
  auto s = startSpawner(config);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Errc::kPolicy);
  EXPECT_NE(s.error().detail().find("refusing " + (tmp / "p.yaml") + ": " + (tmp / "p.yaml") +
                                    " is writable by everyone (mode 0666)"),
            std::string::npos)
      << s.error().detail();
  EXPECT_EQ(s.error().detail().find("password"), std::string::npos) << s.error().detail();
}

TEST(SpawnerProcessTest, StartRemovesLeftoverWorkingDirectories) {
  TempDir tmp("spawner");
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);
  ASSERT_EQ(::mkdir((tmp / "jobs").c_str(), 0711), 0);
  ASSERT_EQ(::mkdir((tmp / "jobs/7-0123456789abcdef").c_str(), 0700), 0);
  test::writeFile(tmp / "jobs/7-0123456789abcdef/job.py", "print(1)\n", 0644);
  TempDir host("host");
  test::writeFile(host / "keep", "host", 0644);
  ASSERT_EQ(::symlink(host.path().c_str(), (tmp / "jobs/7-0123456789abcdef/link").c_str()), 0);
  SpawnerConfig config;
  config.jobs_dir = tmp / "jobs";
  config.policy_files = testPolicies(tmp);
  config.cgroups.subtree = cgroupSubtree() + "-leftovers";
  auto s = startSpawner(config);
  ASSERT_TRUE(s) << s.error().detail();
  // Any answer from the spawner comes after its start-up cleanup.
  ASSERT_TRUE(sendToSpawner(s->socket.get(), SignalJob{1, SIGINT}));
  JobSpec spec;
  spec.job_id = 1;
  spec.policy = "nonexistent";
  spec.script_name = "job.py";
  ASSERT_TRUE(sendToSpawner(s->socket.get(), SpawnJob{spec}));
  pollfd p{s->socket.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 60000), 1);
  EXPECT_TRUE(jobDirs(tmp / "jobs").empty());
  EXPECT_EQ(test::readFileOrEmpty(host / "keep"), "host");
  s->socket.reset();
  int status = 0;
  ::waitpid(s->pid, &status, 0);
}

}  // namespace pyrun::sandbox
