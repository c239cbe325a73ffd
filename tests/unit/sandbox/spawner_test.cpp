// The spawner with real processes: jobs run /usr/bin/python3 confined as docs/SANDBOX.md says.
#include "sandbox/spawner.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

#include "sandbox/channel.h"
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
  DIR* d = ::opendir("/proc");
  while (dirent* e = ::readdir(d)) {
    char* end;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    if (pred(static_cast<pid_t>(pid))) found.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
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
    s.script_name = "job.py";
    s.script = std::move(script);
    return s;
  }

  void submit(const JobSpec& s) {
    auto r = sendToSpawner(spawner_.socket.get(), SpawnJob{s});
    ASSERT_TRUE(r) << r.error().detail();
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
    submit(s);
    Received started = expectStarted(s.job_id);
    JobResult result;
    if (started.fds.size() != 3) return result;
    result.started = std::get<JobStarted>(started.message);
    if (!stdin_data.empty()) {
      EXPECT_EQ(::write(started.fds[0].get(), stdin_data.data(), stdin_data.size()),
                static_cast<ssize_t>(stdin_data.size()));
    }
    started.fds[0].reset();
    // Drain both pipes together: a job that fills one while we block on the other would hang.
    pollfd p[2] = {{started.fds[1].get(), POLLIN, 0}, {started.fds[2].get(), POLLIN, 0}};
    int open = 2;
    while (open > 0) {
      if (::poll(p, 2, 60000) <= 0) {
        ADD_FAILURE() << "job output did not end within 60 s";
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (p[i].fd < 0 || p[i].revents == 0) continue;
        char buf[65536];
        ssize_t n = ::read(p[i].fd, buf, sizeof buf);
        if (n <= 0) {
          p[i].fd = -1;
          --open;
        } else {
          (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
        }
      }
    }
    result.ended = expectEnded(s.job_id);
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

TEST_F(SpawnerTest, StdinReachesTheScriptWithItsEnd) {
  auto r = runJob(spec(1, "import sys\ndata = sys.stdin.read()\nprint(len(data), data.upper())\n"),
                  "hello\nworld\n");
  EXPECT_EQ(r.out, "12 HELLO\nWORLD\n\n");
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
  submit(spec(1,
              "import time\nprint('ready', flush=True)\n"
              "try:\n    time.sleep(600)\nexcept KeyboardInterrupt:\n"
              "    print('interrupted')\n    raise\n"));
  Received started = expectStarted(1);
  ASSERT_EQ(started.fds.size(), 3u);
  started.fds[0].reset();
  ASSERT_EQ(readUntil(started.fds[1].get(), "ready\n"), "ready\n");
  send(SignalJob{1, SIGINT});
  EXPECT_EQ(readAllFrom(started.fds[1].get()), "interrupted\n");
  EXPECT_NE(readAllFrom(started.fds[2].get()).find("KeyboardInterrupt"), std::string::npos);
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
  EXPECT_GE(r.ended.cpu_us, 900000u);
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
  EXPECT_EQ(cwd.rfind(config_.jobs_dir + "/1-", 0), 0u) << r.out << r.err;
  EXPECT_EQ(mode, "0o700");
  EXPECT_EQ(owned, "True");
  EXPECT_FALSE(exists(cwd));
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
      "os.link('" +
      host / "secret" +
      "', 'hard')\n"
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
  DIR* d = ::opendir(config_.jobs_dir.c_str());
  ASSERT_NE(d, nullptr);
  int entries = 0;
  while (dirent* e = ::readdir(d)) entries += e->d_name[0] == '.' ? 0 : 1;
  ::closedir(d);
  EXPECT_EQ(entries, 0);
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
  EXPECT_EQ(rest, "HOME=" + cwd + "\nLANG=C.UTF-8\nPATH=/usr/bin:/bin\nPYTHONUNBUFFERED=1\n" +
                      "TMPDIR=" + cwd + "\n")
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
      "import os, time\nprint(os.getcwd(), os.getuid(), flush=True)\n"
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
  JobSpec s = spec(1, "pass\n");
  s.interpreter = "/nonexistent/python3";
  submit(s);
  Received r = next();
  ASSERT_TRUE(std::holds_alternative<JobFailed>(r.message));
  const auto& f = std::get<JobFailed>(r.message);
  EXPECT_EQ(f.job_id, 1u);
  EXPECT_EQ(f.stage, "execve");
  EXPECT_EQ(f.error, ENOENT);
  EXPECT_EQ(f.detail, "execve /nonexistent/python3: No such file or directory");
  EXPECT_TRUE(r.fds.empty());
  // Nothing of the job is left.
  EXPECT_EQ(::rmdir(config_.jobs_dir.c_str()), 0);
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
  std::string cwd = readUntil(started.fds[1].get(), "\n");
  ASSERT_FALSE(cwd.empty());
  cwd.pop_back();
  ASSERT_TRUE(exists(cwd));

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
  auto s = startSpawner(config);
  if (!s) return "startSpawner: " + s.error().detail();
  JobSpec spec;
  spec.job_id = 1;
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
  EXPECT_EQ(::rmdir((tmp / "jobs").c_str()), 0);
}

bool isGoneOrZombie(pid_t pid) {
  std::string stat = test::readFileOrEmpty("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren == std::string::npos || stat.compare(paren, 4, ") Z ") == 0;
}

TEST(SpawnerProcessTest, DeathOfTheFrontTakesTheSpawnerAndItsJobsDown) {
  TempDir tmp("spawner");
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0711), 0);
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  pid_t front = ::fork();
  ASSERT_GE(front, 0);
  if (front == 0) {
    // A front that starts one job, says which processes it made, and waits to be killed.
    SpawnerConfig config;
    config.jobs_dir = tmp / "jobs";
    auto s = startSpawner(config);
    if (!s) _exit(1);
    JobSpec spec;
    spec.job_id = 1;
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
}  // namespace pyrun::sandbox
