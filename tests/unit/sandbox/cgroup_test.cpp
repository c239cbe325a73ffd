// Job cgroups on this host: real processes joined to real cgroups (v1 here; the v2 code on the
// cgroup2 mount where the host allows), limits that kill, kill-all, statistics and cleanup.
#include "sandbox/cgroup.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "sandbox/clone3.h"
#include "support/process.h"

namespace pyrun::sandbox {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A subtree name of this test alone: ctest runs tests in parallel, and removeLeftovers() empties
// the whole subtree.
std::string uniqueSubtree() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return "pyrun-test-" + std::to_string(::getpid()) + "-" + info->name();
}

// A process alive (and not a zombie waiting for its parent).
bool alive(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// python3 -c script, joined to the job's cgroup before exec; stdout on a pipe.
struct Started {
  pid_t pid = -1;
  UniqueFd out;
};

Started startInJob(const CgroupJoin& join, const std::string& script) {
  auto pipe = makePipe();
  EXPECT_TRUE(pipe);
  std::string python = "/usr/bin/python3", flag = "-c", isolated = "-I";
  std::string code = script;
  char* argv[] = {python.data(), isolated.data(), flag.data(), code.data(), nullptr};
  int write_end = pipe->second.get();
  pid_t pid = ::fork();
  if (pid == 0) {
    // Between fork and exec: system calls only.
    if (joinCgroup(join) != 0) _exit(120);
    if (::dup2(write_end, 1) < 0) _exit(121);
    ::execv(argv[0], argv);
    _exit(122);
  }
  EXPECT_GT(pid, 0);
  return {pid, std::move(pipe->first)};
}

// Reads until `needle` appears, end of file, or 60 s without it.
std::string readUntil(int fd, const std::string& needle) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

int waitStatus(pid_t pid) {
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  return status;
}

// Prints the pid of a grandchild that left the session and the parent, then exits: the grandchild
// outlives the job's main process, as a daemon would.
constexpr const char* kDaemonScript = R"(
import os, signal, sys
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print("daemon", os.getpid(), flush=True)
        while True:
            signal.pause()
    os._exit(0)
os.wait()
)";

pid_t daemonPid(const std::string& out) {
  size_t at = out.find("daemon ");
  if (at == std::string::npos) return -1;
  return static_cast<pid_t>(std::stol(out.substr(at + 7)));
}

// ---- v1 (this host) ----

class CgroupV1Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "cgroup v1 hierarchies are writable by root only";
    auto cg = detectCgroups({uniqueSubtree(), CgroupVersion::kV1, true});
    if (!cg) {
      GTEST_SKIP() << "this host has no usable cgroup v1 memory and pids hierarchies: "
                   << cg.error().detail();
    }
    cgroups_ = std::move(*cg);
  }
  void TearDown() override {
    if (!cgroups_.usable()) return;
    EXPECT_TRUE(cgroups_.removeLeftovers());
    for (const auto& dir : cgroups_.subtreeDirs()) ::rmdir(dir.c_str());
  }
  Cgroups cgroups_;
};

TEST_F(CgroupV1Test, DetectsMemoryAndPidsHierarchiesAndCreatesTheSubtree) {
  EXPECT_EQ(cgroups_.version(), CgroupVersion::kV1);
  EXPECT_TRUE(cgroups_.hasMemory());
  EXPECT_TRUE(cgroups_.hasPids());
  ASSERT_GE(cgroups_.subtreeDirs().size(), 2u);
  for (const auto& dir : cgroups_.subtreeDirs()) {
    EXPECT_TRUE(exists(dir + "/cgroup.procs")) << dir;
    EXPECT_NE(dir.find(uniqueSubtree()), std::string::npos) << dir;
  }
}

TEST_F(CgroupV1Test, CreateJobWritesLimitsWithSwapIncluded) {
  auto job = cgroups_.createJob(1, {64ull << 20, 16, cgroups_.hasCpu() ? 1000u : 0u});
  ASSERT_TRUE(job) << job.error().detail();
  bool memory = false, pids = false;
  for (const auto& dir : job->paths()) {
    EXPECT_NE(dir.find("/job-1"), std::string::npos);
    if (exists(dir + "/memory.limit_in_bytes")) {
      memory = true;
      EXPECT_EQ(std::stoull(slurp(dir + "/memory.limit_in_bytes")), 64ull << 20);
      if (exists(dir + "/memory.memsw.limit_in_bytes")) {
        EXPECT_EQ(std::stoull(slurp(dir + "/memory.memsw.limit_in_bytes")), 64ull << 20);
      } else {
        EXPECT_EQ(std::stoull(slurp(dir + "/memory.swappiness")), 0u);
      }
    }
    if (exists(dir + "/pids.max")) {
      pids = true;
      EXPECT_EQ(slurp(dir + "/pids.max"), "16\n");
    }
    if (exists(dir + "/cpu.cfs_quota_us")) {
      EXPECT_EQ(slurp(dir + "/cpu.cfs_quota_us"), "100000\n");
    }
  }
  EXPECT_TRUE(memory);
  EXPECT_TRUE(pids);
  EXPECT_EQ(job->join().count, static_cast<int>(job->paths().size()));
}

// CLONE_INTO_CGROUP is v2 only: on v1 the job's first process still joins after the clone.
TEST_F(CgroupV1Test, JobsJoinAfterTheCloneOnV1) {
  EXPECT_FALSE(cgroups_.clonesIntoCgroup());
  auto job = cgroups_.createJob(6, {});
  ASSERT_TRUE(job) << job.error().detail();
  EXPECT_EQ(job->cloneIntoFd(), -1);
  EXPECT_EQ(job->join().count, static_cast<int>(job->paths().size()));
}

TEST_F(CgroupV1Test, RefusesASecondJobCgroupOfTheSameId) {
  auto first = cgroups_.createJob(5, {});
  ASSERT_TRUE(first) << first.error().detail();
  auto second = cgroups_.createJob(5, {});
  ASSERT_FALSE(second);
  EXPECT_TRUE(second.error().is(Errc::kSandbox));
  EXPECT_NE(second.error().detail().find("job-5"), std::string::npos) << second.error().detail();
  for (const auto& dir : first->paths()) EXPECT_TRUE(exists(dir)) << dir;
}

TEST_F(CgroupV1Test, JoinedProcessIsInTheJobCgroup) {
  auto job = cgroups_.createJob(2, {});
  ASSERT_TRUE(job) << job.error().detail();
  auto p = startInJob(job->join(),
                      "import os, signal\nprint('pid', os.getpid(), flush=True)\nsignal.pause()");
  std::string out = readUntil(p.out.get(), "pid ");
  auto pids = job->pids();
  ASSERT_TRUE(pids) << pids.error().detail();
  EXPECT_EQ(*pids, std::vector<pid_t>{p.pid}) << out;
  for (const auto& dir : job->paths()) {
    EXPECT_NE(slurp(dir + "/cgroup.procs").find(std::to_string(p.pid)), std::string::npos) << dir;
  }
  ASSERT_TRUE(job->killAll());
  EXPECT_TRUE(WIFSIGNALED(waitStatus(p.pid)));
}

TEST_F(CgroupV1Test, MemoryBombIsKilledAndReportedAsOom) {
  auto job = cgroups_.createJob(3, {64ull << 20, 0, 0});
  ASSERT_TRUE(job) << job.error().detail();
  // Writes every byte of 256 MiB: resident memory, not a lazy zero mapping.
  auto p = startInJob(job->join(), "s = b'x' * (256 << 20)\nprint('survived', len(s))");
  int status = waitStatus(p.pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  auto stats = job->stats();
  ASSERT_TRUE(stats) << stats.error().detail();
  EXPECT_TRUE(stats->oom_killed);
  EXPECT_FALSE(stats->pids_limit_hit);
  EXPECT_GT(stats->peak_memory_bytes, 32ull << 20);
  EXPECT_LE(stats->peak_memory_bytes, 64ull << 20);
  EXPECT_TRUE(job->remove());
}

TEST_F(CgroupV1Test, ProgramWithinTheMemoryLimitRunsAndIsNotReportedAsOom) {
  auto job = cgroups_.createJob(4, {64ull << 20, 0, 0});
  ASSERT_TRUE(job) << job.error().detail();
  auto p = startInJob(job->join(), "s = b'x' * (8 << 20)\nprint('survived', len(s))");
  std::string out = readUntil(p.out.get(), "survived");
  int status = waitStatus(p.pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(out.find("survived 8388608"), std::string::npos) << out;
  auto stats = job->stats();
  ASSERT_TRUE(stats) << stats.error().detail();
  EXPECT_FALSE(stats->oom_killed);
  EXPECT_GT(stats->peak_memory_bytes, 8ull << 20);
}

TEST_F(CgroupV1Test, ForkBombIsBoundedByPidsMaxAndReported) {
  auto job = cgroups_.createJob(6, {0, 8, 0});
  ASSERT_TRUE(job) << job.error().detail();
  auto p = startInJob(job->join(), R"(
import errno, os, signal
n = 0
try:
    for _ in range(100):
        if os.fork() == 0:
            signal.pause()
            os._exit(0)
        n += 1
except BlockingIOError:
    print("fork refused", flush=True)
print("forked", n, flush=True)
)");
  std::string out = readUntil(p.out.get(), "forked");
  EXPECT_NE(out.find("fork refused"), std::string::npos) << out;
  size_t at = out.find("forked ");
  ASSERT_NE(at, std::string::npos) << out;
  int forked = std::stoi(out.substr(at + 7));
  EXPECT_LE(forked, 7) << out;
  EXPECT_EQ(waitStatus(p.pid), 0);
  auto stats = job->stats();
  ASSERT_TRUE(stats) << stats.error().detail();
  EXPECT_TRUE(stats->pids_limit_hit);
  // The paused children are still in the job: killAll must find them all.
  auto before = job->pids();
  ASSERT_TRUE(before);
  EXPECT_EQ(before->size(), static_cast<size_t>(forked));
  ASSERT_TRUE(job->killAll());
  EXPECT_TRUE(job->pids()->empty());
}

TEST_F(CgroupV1Test, KillAllKillsProcessesThatLeftTheSessionAndTheParent) {
  auto job = cgroups_.createJob(7, {0, 16, 0});
  ASSERT_TRUE(job) << job.error().detail();
  auto p = startInJob(job->join(), kDaemonScript);
  std::string out = readUntil(p.out.get(), "\n");
  pid_t daemon = daemonPid(out);
  ASSERT_GT(daemon, 0) << out;
  EXPECT_EQ(waitStatus(p.pid), 0);
  // The main process is gone, the daemon is not: only the cgroup still knows it.
  ASSERT_TRUE(alive(daemon));
  EXPECT_EQ(*job->pids(), std::vector<pid_t>{daemon});
  ASSERT_TRUE(job->killAll());
  EXPECT_TRUE(job->pids()->empty());
  EXPECT_TRUE(test::eventually([&] { return !alive(daemon); }));
}

TEST_F(CgroupV1Test, RemoveKillsWhatIsLeftAndLeavesNothing) {
  auto job = cgroups_.createJob(8, {64ull << 20, 16, 0});
  ASSERT_TRUE(job) << job.error().detail();
  auto p = startInJob(job->join(), kDaemonScript);
  pid_t daemon = daemonPid(readUntil(p.out.get(), "\n"));
  ASSERT_GT(daemon, 0);
  waitStatus(p.pid);
  std::vector<std::string> paths = job->paths();
  ASSERT_TRUE(job->remove());
  for (const auto& dir : paths) EXPECT_FALSE(exists(dir)) << dir;
  EXPECT_TRUE(test::eventually([&] { return !alive(daemon); }));
  EXPECT_TRUE(job->remove());  // idempotent
  EXPECT_FALSE(job->killAll());
}

TEST_F(CgroupV1Test, DestructorRemovesTheJobCgroup) {
  std::vector<std::string> paths;
  {
    auto job = cgroups_.createJob(9, {});
    ASSERT_TRUE(job) << job.error().detail();
    paths = job->paths();
    JobCgroup moved = std::move(*job);
    EXPECT_EQ(moved.paths(), paths);
  }
  for (const auto& dir : paths) EXPECT_FALSE(exists(dir)) << dir;
}

TEST_F(CgroupV1Test, RemovesLeftoverJobCgroupsAndKillsTheirProcesses) {
  // A crashed run: job cgroups with a live process, that no JobCgroup owns any more.
  pid_t daemon = -1;
  std::vector<std::string> paths;
  {
    auto job = cgroups_.createJob(10, {});
    ASSERT_TRUE(job) << job.error().detail();
    auto p = startInJob(job->join(), kDaemonScript);
    daemon = daemonPid(readUntil(p.out.get(), "\n"));
    waitStatus(p.pid);
    paths = job->paths();
    // The daemon moves to job-11, which no JobCgroup owns (job-10's owner removes only job-10).
    for (const auto& dir : paths) {
      std::string leftover = dir.substr(0, dir.rfind('/')) + "/job-11";
      ASSERT_EQ(::mkdir(leftover.c_str(), 0755), 0) << leftover;
      std::ofstream(leftover + "/cgroup.procs") << daemon << std::flush;
    }
  }
  ASSERT_GT(daemon, 0);
  ASSERT_TRUE(alive(daemon));
  std::string unrelated = cgroups_.subtreeDirs()[0] + "/not-a-job";
  ASSERT_EQ(::mkdir(unrelated.c_str(), 0755), 0);

  auto removed = cgroups_.removeLeftovers();
  ASSERT_TRUE(removed) << removed.error().detail();
  EXPECT_EQ(*removed, 1);
  for (const auto& dir : cgroups_.subtreeDirs()) EXPECT_FALSE(exists(dir + "/job-11")) << dir;
  EXPECT_TRUE(test::eventually([&] { return !alive(daemon); }));
  EXPECT_TRUE(exists(unrelated));
  ::rmdir(unrelated.c_str());
}

TEST(DetectCgroups, PrefersV2AndFallsBackToV1WhenV2LacksTheControllers) {
  if (::geteuid() != 0) GTEST_SKIP() << "cgroup v1 hierarchies are writable by root only";
  auto cg = detectCgroups({uniqueSubtree(), CgroupVersion::kV2, true});
  ASSERT_TRUE(cg) << cg.error().detail();
  std::string unified = slurp("/sys/fs/cgroup/unified/cgroup.controllers");
  if (exists("/sys/fs/cgroup/unified") && unified.find("memory") == std::string::npos) {
    // This host: a hybrid layout whose cgroup2 mount has no controllers.
    EXPECT_EQ(cg->version(), CgroupVersion::kV1) << cg->description();
  }
  EXPECT_TRUE(cg->hasMemory());
  EXPECT_TRUE(cg->hasPids());
  for (const auto& dir : cg->subtreeDirs()) EXPECT_EQ(::rmdir(dir.c_str()), 0) << dir;
}

TEST(DetectCgroups, DisabledByConfigurationFallsBackToNone) {
  auto cg = detectCgroups({"pyrun", CgroupVersion::kNone, false});
  ASSERT_TRUE(cg);
  EXPECT_FALSE(cg->usable());
  EXPECT_NE(cg->description().find("disabled"), std::string::npos);
  auto job = cg->createJob(1, {});
  ASSERT_FALSE(job);
  EXPECT_TRUE(job.error().is(Errc::kSandbox));
  EXPECT_EQ(*cg->removeLeftovers(), 0);
}

TEST(DetectCgroups, RequiredButDisabledIsAnError) {
  auto cg = detectCgroups({"pyrun", CgroupVersion::kNone, true});
  ASSERT_FALSE(cg);
  EXPECT_NE(cg.error().detail().find("required"), std::string::npos) << cg.error().detail();
}

TEST(DetectCgroups, RejectsASubtreeNameThatIsAPath) {
  for (const char* bad : {"", "a/b", "..", "."}) {
    auto cg = detectCgroups({bad, CgroupVersion::kV1, false});
    ASSERT_FALSE(cg) << bad;
    EXPECT_TRUE(cg.error().is(Errc::kInvalidArgument));
  }
}

// ---- v2, on the host's cgroup2 mount (here: without controllers) ----

std::string cgroup2Mount() {
  for (const char* dir : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
    struct statfs fs {};
    if (::statfs(dir, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) return dir;
  }
  return {};
}

class CgroupV2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    mount_ = cgroup2Mount();
    if (mount_.empty()) {
      GTEST_SKIP() << "no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified";
    }
    if (::geteuid() != 0) GTEST_SKIP() << "creating cgroups under the cgroup2 root needs root";
    auto cg = openCgroupV2At(mount_, uniqueSubtree());
    ASSERT_TRUE(cg) << cg.error().detail();
    cgroups_ = std::move(*cg);
  }
  void TearDown() override {
    if (!cgroups_.usable()) return;
    EXPECT_TRUE(cgroups_.removeLeftovers());
    for (const auto& dir : cgroups_.subtreeDirs()) ::rmdir(dir.c_str());
  }
  std::string mount_;
  Cgroups cgroups_;
};

TEST_F(CgroupV2Test, JoinKillAllAndRemoveWork) {
  EXPECT_EQ(cgroups_.version(), CgroupVersion::kV2);
  auto job = cgroups_.createJob(1, {});
  ASSERT_TRUE(job) << job.error().detail();
  ASSERT_EQ(job->paths().size(), 1u);
  auto p = startInJob(job->join(), kDaemonScript);
  pid_t daemon = daemonPid(readUntil(p.out.get(), "\n"));
  ASSERT_GT(daemon, 0);
  EXPECT_EQ(waitStatus(p.pid), 0);
  ASSERT_TRUE(alive(daemon));
  EXPECT_EQ(*job->pids(), std::vector<pid_t>{daemon});
  ASSERT_TRUE(job->killAll());
  EXPECT_TRUE(job->pids()->empty());
  EXPECT_TRUE(test::eventually([&] { return !alive(daemon); }));
  std::string dir = job->paths()[0];
  ASSERT_TRUE(job->remove());
  EXPECT_FALSE(exists(dir));
}

// By the kernel's version, not by the probe under test (cloneIntoCgroupSupport).
bool kernelHasCloneIntoCgroup() {
  utsname u{};
  if (::uname(&u) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 5 || (major == 5 && minor >= 7);
}

// What the child of cloneProcess reads first, before it does anything else: its /proc/self/cgroup
// line of the unified hierarchy ("0::<path>"), and whether the clone worked (errno otherwise).
struct CloneOutcome {
  int error = 0;
  std::string cgroup_line;
};

CloneOutcome cloneAndReadOwnCgroup(int cgroup_fd) {
  CloneOutcome outcome;
  auto pipe = makePipe();
  EXPECT_TRUE(pipe);
  const int write_end = pipe->second.get();
  pid_t pid = cloneProcess({.cgroup_fd = cgroup_fd});
  if (pid == 0) {
    // A raw clone3 child: system calls and the stack only.
    char buf[4096];
    int fd = ::open("/proc/self/cgroup", O_RDONLY | O_CLOEXEC);
    if (fd < 0) _exit(120);
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0 || ::write(write_end, buf, static_cast<size_t>(n)) != n) _exit(121);
    _exit(0);
  }
  if (pid < 0) {
    outcome.error = errno;
    return outcome;
  }
  pipe->second.reset();
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipe->first.get(), buf, sizeof buf)) > 0;) {
    text.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(waitStatus(pid), 0);
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("0::", 0) == 0) outcome.cgroup_line = line;
  }
  return outcome;
}

// The job's cgroup as /proc/self/cgroup names it: its path below the cgroup2 mount's root.
std::string cgroupLine(const std::string& mount, const std::string& dir) {
  return "0::" + dir.substr(mount.size());
}

// The kernel puts the child in the job's cgroup as it creates it: the child's very first look at
// its cgroup finds the job's, with no step of its own to get there.
TEST_F(CgroupV2Test, CloneIntoCgroupBirthsTheChildInsideTheJobCgroup) {
  if (!kernelHasCloneIntoCgroup()) GTEST_SKIP() << "CLONE_INTO_CGROUP needs Linux 5.7+";
  ASSERT_EQ(cloneIntoCgroupSupport(), 0) << "the probe finds no CLONE_INTO_CGROUP on Linux 5.7+";
  ASSERT_TRUE(cgroups_.clonesIntoCgroup());
  auto job = cgroups_.createJob(11, {});
  ASSERT_TRUE(job) << job.error().detail();
  ASSERT_GE(job->cloneIntoFd(), 0);
  CloneOutcome born = cloneAndReadOwnCgroup(job->cloneIntoFd());
  ASSERT_EQ(born.error, 0) << std::strerror(born.error);
  EXPECT_EQ(born.cgroup_line, cgroupLine(mount_, job->paths()[0]));
  EXPECT_NE(born.cgroup_line, cgroupLine(mount_, mount_));  // not where this process is
  ASSERT_TRUE(job->remove());
}

// Fail closed: a descriptor the kernel cannot clone into gives no process at all, with the
// reason, never a child left in the caller's cgroup.
TEST_F(CgroupV2Test, CloneIntoCgroupRefusesADescriptorOfNoV2CgroupAndStartsNothing) {
  if (!kernelHasCloneIntoCgroup()) GTEST_SKIP() << "CLONE_INTO_CGROUP needs Linux 5.7+";
  ASSERT_EQ(cloneIntoCgroupSupport(), 0) << "the probe finds no CLONE_INTO_CGROUP on Linux 5.7+";
  UniqueFd not_cgroup(::open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(not_cgroup);
  CloneOutcome outcome = cloneAndReadOwnCgroup(not_cgroup.get());
  EXPECT_EQ(outcome.error, EBADF);
  EXPECT_EQ(outcome.cgroup_line, "");
  // A cgroup v1 directory is a cgroup, but not one a process can be cloned into.
  for (const char* v1 : {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"}) {
    struct statfs fs {};
    if (::statfs(v1, &fs) != 0 || fs.f_type != CGROUP_SUPER_MAGIC) continue;
    UniqueFd dir(::open(v1, O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir) << v1;
    EXPECT_EQ(cloneAndReadOwnCgroup(dir.get()).error, EBADF) << v1;
  }
}

// A job cgroup removed behind the spawner's back (its descriptor still open) takes no process.
TEST_F(CgroupV2Test, CloneIntoARemovedJobCgroupFails) {
  if (!kernelHasCloneIntoCgroup()) GTEST_SKIP() << "CLONE_INTO_CGROUP needs Linux 5.7+";
  ASSERT_EQ(cloneIntoCgroupSupport(), 0) << "the probe finds no CLONE_INTO_CGROUP on Linux 5.7+";
  auto job = cgroups_.createJob(12, {});
  ASSERT_TRUE(job) << job.error().detail();
  ASSERT_EQ(::rmdir(job->paths()[0].c_str()), 0);
  CloneOutcome outcome = cloneAndReadOwnCgroup(job->cloneIntoFd());
  // ENOENT: the kernel finds no live cgroup behind the directory (ENODEV on some versions).
  EXPECT_TRUE(outcome.error == ENOENT || outcome.error == ENODEV) << std::strerror(outcome.error);
  EXPECT_EQ(outcome.cgroup_line, "");
  // A cgroup of that name again, for the JobCgroup to remove.
  ASSERT_EQ(::mkdir(job->paths()[0].c_str(), 0755), 0);
  ASSERT_TRUE(job->remove());
}

// Where cloning into cgroups is off (as on kernels before 5.7), jobs join after the clone.
TEST_F(CgroupV2Test, WithoutCloneIntoCgroupJobsJoinAfterTheClone) {
  auto cg = openCgroupV2At(mount_, uniqueSubtree(), {.clone_into_cgroup = false});
  ASSERT_TRUE(cg) << cg.error().detail();
  EXPECT_FALSE(cg->clonesIntoCgroup());
  auto job = cg->createJob(13, {});
  ASSERT_TRUE(job) << job.error().detail();
  EXPECT_EQ(job->cloneIntoFd(), -1);
  EXPECT_EQ(job->join().count, 1);
  ASSERT_TRUE(job->remove());
}

TEST_F(CgroupV2Test, KillAllWithoutCgroupKillFreezesAndKillsEveryProcess) {
  auto cg = openCgroupV2At(mount_, uniqueSubtree(), {.use_cgroup_kill = false});
  ASSERT_TRUE(cg) << cg.error().detail();
  auto job = cg->createJob(5, {});
  ASSERT_TRUE(job) << job.error().detail();
  if (!exists(job->paths()[0] + "/cgroup.freeze")) {
    GTEST_SKIP() << "this kernel's cgroup v2 has no cgroup.freeze (Linux < 5.2)";
  }
  // A process that keeps forking: without the freeze, new children could appear between the
  // reading of cgroup.procs and the kills.
  auto p = startInJob(job->join(), R"(
import os, time
print("spawning", flush=True)
while True:
    if os.fork() == 0:
        time.sleep(0.01)
        os._exit(0)
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        pass
)");
  ASSERT_NE(readUntil(p.out.get(), "spawning").find("spawning"), std::string::npos);
  ASSERT_TRUE(job->killAll());
  EXPECT_TRUE(job->pids()->empty());
  int status = waitStatus(p.pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  // killAll thaws the cgroup again: a cgroup left frozen would hang the next process put there.
  EXPECT_NE(slurp(job->paths()[0] + "/cgroup.events").find("frozen 0"), std::string::npos);
  ASSERT_TRUE(job->remove());
}

TEST_F(CgroupV2Test, RefusesLimitsWhoseControllerIsMissingAndLeavesNothing) {
  if (cgroups_.hasMemory()) GTEST_SKIP() << mount_ << " offers the memory controller";
  auto job = cgroups_.createJob(2, {64ull << 20, 0, 0});
  ASSERT_FALSE(job);
  EXPECT_TRUE(job.error().is(Errc::kSandbox));
  EXPECT_NE(job.error().detail().find("memory controller"), std::string::npos)
      << job.error().detail();
  EXPECT_FALSE(exists(cgroups_.subtreeDirs()[0] + "/job-2"));
}

TEST_F(CgroupV2Test, MemoryBombIsKilledAndReportedAsOom) {
  if (!cgroups_.hasMemory()) {
    GTEST_SKIP() << "the cgroup2 mount at " << mount_
                 << " does not offer the memory controller (on this host it is bound to a cgroup "
                    "v1 hierarchy); the v1 tests cover memory limits here";
  }
  auto job = cgroups_.createJob(3, {64ull << 20, 0, 0});
  ASSERT_TRUE(job) << job.error().detail();
  EXPECT_EQ(slurp(job->paths()[0] + "/memory.max"), std::to_string(64ull << 20) + "\n");
  auto p = startInJob(job->join(), "s = b'x' * (256 << 20)\nprint('survived', len(s))");
  int status = waitStatus(p.pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto stats = job->stats();
  ASSERT_TRUE(stats) << stats.error().detail();
  EXPECT_TRUE(stats->oom_killed);
}

TEST_F(CgroupV2Test, ForkBombIsBoundedByPidsMaxAndReported) {
  if (!cgroups_.hasPids()) {
    GTEST_SKIP() << "the cgroup2 mount at " << mount_
                 << " does not offer the pids controller (on this host it is bound to a cgroup v1 "
                    "hierarchy); the v1 tests cover process limits here";
  }
  auto job = cgroups_.createJob(4, {0, 4, 0});
  ASSERT_TRUE(job) << job.error().detail();
  auto p = startInJob(job->join(), R"(
import os, signal
try:
    for _ in range(50):
        if os.fork() == 0:
            signal.pause()
except BlockingIOError:
    print("fork refused", flush=True)
)");
  EXPECT_NE(readUntil(p.out.get(), "refused").find("fork refused"), std::string::npos);
  waitStatus(p.pid);
  auto stats = job->stats();
  ASSERT_TRUE(stats) << stats.error().detail();
  EXPECT_TRUE(stats->pids_limit_hit);
}

}  // namespace
}  // namespace pyrun::sandbox
