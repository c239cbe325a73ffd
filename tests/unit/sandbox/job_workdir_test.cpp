// A job's working directory /job is a tmpfs of the policy's size and file count inside the job's
// mount namespace, holding copies of the files the spawner staged, owned by the job; as root and
// unprivileged (user namespace). And the process limit of an unprivileged job without cgroups
// (RLIMIT_NPROC counted in the job's own user namespace).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "common/dir.h"
#include "run_job.h"
#include "sandbox/spawner.h"
#include "support/temp_dir.h"

namespace pyrun::sandbox {
namespace {

using test::TempDir;
using test_support::JobRun;
using test_support::runAsUser;
using test_support::runJob;
using test_support::whyNotStarted;

const std::string kDefaultPolicy = std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml";
constexpr uid_t kNobody = 65534;

bool isRoot() { return ::geteuid() == 0; }

// The shipped default policy with other limits.
std::string policyWith(const std::string& limits) {
  return "version: 1\ninclude: [" + kDefaultPolicy + "]\nlimits:\n" + limits;
}

// Prints /job's mount and mode, then every entry below it (name, kind, mode, owned by the job,
// size of files), then fills it to ENOSPC (bytes within the policy's workdir of 2M?), then creates
// empty files until that fails too, and how many it made.
const char* const kWorkdirProbe = R"(import errno, os, stat
def owned(st): return st.st_uid == os.getuid() and st.st_gid == os.getgid()
fstype = opts = '?'
for line in open('/proc/self/mountinfo'):
    fields = line.split()
    if fields[4] == '/job':
        rest = fields[fields.index('-') + 1:]
        fstype, opts = rest[0], rest[2]
inodes = [o for o in opts.split(',') if o.startswith('nr_inodes=')]
st = os.stat('/job')
print('job', fstype, inodes, oct(stat.S_IMODE(st.st_mode)), owned(st), os.getcwd())
for root, dirs, files in os.walk('/job'):
    dirs.sort()
    for name in sorted(dirs + files):
        path = os.path.join(root, name)
        st = os.lstat(path)
        size = '' if stat.S_ISDIR(st.st_mode) else st.st_size
        kind = 'd' if stat.S_ISDIR(st.st_mode) else 'f' if stat.S_ISREG(st.st_mode) else '?'
        print(path[5:], kind, oct(stat.S_IMODE(st.st_mode)), owned(st), size)
print('content', open('data/deep/run.sh').read().strip(), open('data/in.txt').read())
written = 0
try:
    with open('big', 'wb', buffering=0) as f:
        while written < (256 << 20):
            written += f.write(b'x' * 65536)
    print('fill ALLOWED', written)
except OSError as e:
    print('fill', errno.errorcode[e.errno], written <= (2 << 20), written >= (1 << 20))
os.unlink('big')
n = 0
try:
    while n < 100000:
        open('empty%d' % n, 'w').close()
        n += 1
    print('files ALLOWED', n)
except OSError as e:
    print('files', errno.errorcode[e.errno], n)
)";

// What kWorkdirProbe prints under bounded.yaml (2M, 20 files) for the files of probeSpec():
// staged are job.py, data/, data/in.txt, data/deep/, data/deep/run.sh and top.txt, so 14 of the
// 20 files remain to be made.
const char* const kProbeOutput =
    "job tmpfs ['nr_inodes=21'] 0o700 True /job\n"
    "data d 0o700 True \n"
    "job.py f 0o644 True SCRIPT\n"
    "top.txt f 0o640 True 3\n"
    "data/deep d 0o700 True \n"
    "data/in.txt f 0o600 True 5\n"
    "data/deep/run.sh f 0o755 True 10\n"
    "content #!/bin/sh hello\n"
    "fill ENOSPC True True\n"
    "files ENOSPC 14\n";

std::string probeOutput() {
  std::string want = kProbeOutput;
  want.replace(want.find("SCRIPT"), 6, std::to_string(std::string(kWorkdirProbe).size()));
  return want;
}

JobSpec probeSpec() {
  JobSpec spec;
  spec.job_id = 1;
  spec.policy = "bounded";
  spec.script_name = "job.py";
  spec.script = kWorkdirProbe;
  spec.files = {{"data/in.txt", 0600, "hello"},
                {"data/deep/run.sh", 0755, "#!/bin/sh\n"},
                {"top.txt", 0640, "top"}};
  return spec;
}

// Bytes of every regular file below dir (a host directory), not following links.
uint64_t bytesBelow(const std::string& dir) {
  uint64_t total = 0;
  auto entries = listDirectory(dir);
  if (!entries) return 0;
  for (const auto& e : *entries) {
    struct stat st {};
    std::string path = dir + "/" + e.name;
    if (::lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) total += bytesBelow(path);
    if (S_ISREG(st.st_mode)) total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

class JobWorkdirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    test::writeFile(tmp_ / "bounded.yaml", policyWith("  workdir: 2M\n  workdir_files: 20\n"));
    test::writeFile(tmp_ / "small.yaml", policyWith("  workdir: 2M\n"));
    config_.jobs_dir = tmp_ / "jobs";
    config_.job_uid_base = 700000u + static_cast<uint32_t>(::getpid() % 20000) * 16u;
    config_.job_uid_count = 16;
    config_.policy_files = {{"default", kDefaultPolicy},
                            {"bounded", tmp_ / "bounded.yaml"},
                            {"small", tmp_ / "small.yaml"}};
    // The working directory does not depend on cgroups; without them nothing is left to clean.
    config_.cgroups.prefer = CgroupVersion::kNone;
  }

  JobSpec spec(const std::string& policy, std::string script) {
    JobSpec s;
    s.job_id = 1;
    s.policy = policy;
    s.script_name = "job.py";
    s.script = std::move(script);
    return s;
  }

  // The test directory stays 0700 and root's: the job never needs the host's path.
  TempDir tmp_{"workdir"};
  SpawnerConfig config_;
};

TEST_F(JobWorkdirTest, StagedFilesAreCopiedWithTheirModesAndTheBoundsHold) {
  if (!isRoot()) GTEST_SKIP() << "per-job uids need a root spawner (the unprivileged test runs)";
  JobRun run = runJob(config_, probeSpec());
  ASSERT_EQ(whyNotStarted(run), "");
  EXPECT_EQ(run.out, probeOutput()) << run.err;
  EXPECT_FALSE(run.signaled);
  EXPECT_EQ(run.code, 0) << run.err;
}

TEST_F(JobWorkdirTest, UnprivilegedJobGetsTheSameWorkingDirectory) {
  if (!isRoot()) GTEST_SKIP() << "this test drops root to reach the unprivileged path";
  ASSERT_EQ(::chown(tmp_.path().c_str(), kNobody, kNobody), 0);
  JobRun run = runAsUser(kNobody, kNobody, [&] { return runJob(config_, probeSpec()); });
  ASSERT_EQ(whyNotStarted(run), "");
  EXPECT_EQ(run.out, probeOutput()) << run.err;
  EXPECT_EQ(run.code, 0) << run.err;
}

TEST_F(JobWorkdirTest, FullWorkdirAnswersEnospcAndTheJobStillGetsItsVerdict) {
  JobRun run = runJob(config_, spec("small",
                                    "import errno, os, sys\n"
                                    "try:\n"
                                    "    with open('big', 'wb') as f:\n"
                                    "        for _ in range(64):\n"
                                    "            f.write(b'x' * (1 << 20)); f.flush()\n"
                                    "    print('wrote 64 MiB')\n"
                                    "except OSError as e:\n"
                                    "    print('stopped', errno.errorcode[e.errno])\n"
                                    "os.unlink('big')\n"
                                    "open('after', 'w').write('room again')\n"
                                    "print(open('after').read())\n"
                                    "sys.exit(3)\n"));
  ASSERT_EQ(whyNotStarted(run), "");
  EXPECT_EQ(run.out, "stopped ENOSPC\nroom again\n") << run.err;
  EXPECT_FALSE(run.signaled);
  EXPECT_EQ(run.code, 3);
  EXPECT_EQ(run.cause, EndCause::kExited);
}

TEST_F(JobWorkdirTest, DerivedFileBoundStopsManyEmptyFiles) {
  // small.yaml sets only the size: 2M at one file per 16K gives 128, job.py one of them.
  JobRun run = runJob(config_, spec("small",
                                    "import errno\nn = 0\n"
                                    "try:\n"
                                    "    while n < 100000:\n"
                                    "        open('e%d' % n, 'w').close(); n += 1\n"
                                    "    print('ALLOWED', n)\n"
                                    "except OSError as e:\n"
                                    "    print(errno.errorcode[e.errno], n)\n"));
  ASSERT_EQ(whyNotStarted(run), "");
  EXPECT_EQ(run.out, "ENOSPC 127\n") << run.err;
}

TEST_F(JobWorkdirTest, JobWritesNeverReachTheHostJobsDirectory) {
  if (!isRoot()) GTEST_SKIP() << "the test reads the jobs directory, which is the job uid's";
  const std::string script =
      "import os, sys\n"
      "with open('big', 'wb') as f:\n"
      "    for _ in range(8): f.write(b'x' * (1 << 20))\n"
      "for i in range(100): open('f%d' % i, 'w').write('y' * 100)\n"
      "os.mkdir('sub'); open('sub/z', 'wb').write(b'z' * 4096)\n"
      "print('written', os.path.getsize('big'), len(os.listdir('.')), flush=True)\n"
      "sys.stdin.read()\n";
  uint64_t host_bytes = 0;
  JobRun run = runJob(config_, spec("default", script), "written",
                      [&](const JobStarted&) { host_bytes = bytesBelow(config_.jobs_dir); });
  ASSERT_EQ(whyNotStarted(run), "");
  EXPECT_EQ(run.out, "written 8388608 103\n") << run.err;
  // On the host, while the job ran: the staged script alone.
  EXPECT_EQ(host_bytes, script.size());
}

TEST_F(JobWorkdirTest, UploadLargerThanTheWorkdirFailsAtStageMount) {
  JobSpec s = spec("small", "print('ran')\n");
  s.files = {{"blob", 0644, std::string(3 << 20, 'b')}};
  JobRun run = runJob(config_, s);
  EXPECT_EQ(run.error, "");
  EXPECT_FALSE(run.started) << run.out;
  EXPECT_EQ(run.failed_stage, "mount");
  EXPECT_NE(run.failed_detail.find("copy the job's file blob to /job/blob"), std::string::npos)
      << run.failed_detail;
  EXPECT_NE(run.failed_detail.find("No space left on device"), std::string::npos)
      << run.failed_detail;
}

// ---- RLIMIT_NPROC in the job's user namespace ----

bool kernelCountsProcessesPerUserNamespace() {
  utsname u{};
  if (::uname(&u) != 0) return false;
  unsigned major = 0, minor = 0;
  if (std::sscanf(u.release, "%u.%u", &major, &minor) != 2) return false;
  return major > 5 || (major == 5 && minor >= 14);
}

TEST_F(JobWorkdirTest, UnprivilegedForkBombWithoutCgroupsIsBounded) {
  if (!isRoot()) GTEST_SKIP() << "this test drops root to reach the unprivileged path";
  if (!kernelCountsProcessesPerUserNamespace()) {
    GTEST_SKIP() << "Linux < 5.14 counts RLIMIT_NPROC per host uid: pyrun does not set it "
                    "in a user namespace there";
  }
  ASSERT_EQ(::chown(tmp_.path().c_str(), kNobody, kNobody), 0);
  // Children wait on a pipe until the parent is done, so they all live at once; without a bound
  // the script stops itself at 100.
  JobSpec s = spec("default",
                   "import os\n"
                   "r, w = os.pipe()\n"
                   "n, why = 0, 'none'\n"
                   "try:\n"
                   "    while n < 100:\n"
                   "        if os.fork() == 0:\n"
                   "            os.close(w); os.read(r, 1); os._exit(0)\n"
                   "        n += 1\n"
                   "except OSError as e:\n"
                   "    why = type(e).__name__\n"
                   "print('forked', n, why, flush=True)\n"
                   "os.close(w)\n"
                   "while True:\n"
                   "    try: os.wait()\n"
                   "    except ChildProcessError: break\n");
  s.limits.processes = 8;
  JobRun run = runAsUser(kNobody, kNobody, [&] { return runJob(config_, s); });
  ASSERT_EQ(whyNotStarted(run), "");
  unsigned forked = 0;
  char why[64] = {};
  ASSERT_EQ(std::sscanf(run.out.c_str(), "forked %u %63s", &forked, why), 2) << run.out << run.err;
  EXPECT_STREQ(why, "BlockingIOError") << run.out;
  // The init and the interpreter count too.
  EXPECT_LE(forked, 8u - 2u) << run.out;
  EXPECT_EQ(run.code, 0) << run.err;
}

}  // namespace
}  // namespace pyrun::sandbox
