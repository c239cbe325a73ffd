// A job's cgroup gets the CPU quota of its policy's limits.cpus: the spawner, started with real
// policies, runs a job, and the test reads the quota of the cgroup the job's init is in (cgroup v1
// cpu.cfs_quota_us and cpu.cfs_period_us, or v2 cpu.max).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "run_job.h"
#include "sandbox/cgroup.h"
#include "sandbox/spawner.h"
#include "support/temp_dir.h"

namespace pyrun::sandbox {
namespace {

using test::TempDir;
using test_support::JobRun;
using test_support::runJob;
using test_support::whyNotStarted;

const std::string kDefaultPolicy = std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream s(text);
  std::string part;
  while (std::getline(s, part, separator)) parts.push_back(part);
  return parts;
}

// The CPU quota of the cgroup pid is in, as "<quota> <period>": from the v1 cpu hierarchy when
// the process is in one, else from its v2 cgroup's cpu.max. Empty when neither can be read.
std::string cpuQuotaOf(pid_t pid) {
  std::string v1_path, v2_path;
  for (const std::string& line : split(slurp("/proc/" + std::to_string(pid) + "/cgroup"), '\n')) {
    // "<id>:<controllers>:<path>"
    size_t first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    std::string path = line.substr(second + 1);
    if (controllers.empty()) v2_path = path;
    for (const std::string& c : split(controllers, ',')) {
      if (c == "cpu") v1_path = path;
    }
  }
  // Mount points: "<id> <parent> <dev> <root> <mount point> <options> ... - <type> <src> <super>"
  for (const std::string& line : split(slurp("/proc/self/mountinfo"), '\n')) {
    std::vector<std::string> f = split(line, ' ');
    size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 5 || dash + 3 >= f.size()) continue;
    const std::string& root = f[3];
    const std::string& mount_point = f[4];
    const std::string& type = f[dash + 1];
    auto below = [&](const std::string& path) {
      return root == "/" ? path : path.substr(std::min(root.size(), path.size()));
    };
    if (type == "cgroup" && !v1_path.empty()) {
      bool cpu = false;
      for (const std::string& option : split(f[dash + 3], ',')) cpu = cpu || option == "cpu";
      if (!cpu) continue;
      std::string dir = mount_point + below(v1_path);
      std::string quota = slurp(dir + "/cpu.cfs_quota_us");
      std::string period = slurp(dir + "/cpu.cfs_period_us");
      if (quota.empty() || period.empty()) continue;
      return quota.substr(0, quota.find('\n')) + " " + period.substr(0, period.find('\n'));
    }
    if (type == "cgroup2" && v1_path.empty() && !v2_path.empty()) {
      std::string max = slurp(mount_point + below(v2_path) + "/cpu.max");
      if (!max.empty()) return max.substr(0, max.find('\n'));
    }
  }
  return "";
}

std::string subtreeName() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return "pyrun-cpu-test-" + std::to_string(::getpid()) + "-" + info->name();
}

class CgroupCpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "creating job cgroups here needs root";
    auto cgroups = detectCgroups({subtreeName(), CgroupVersion::kV2, false});
    ASSERT_TRUE(cgroups) << cgroups.error().detail();
    if (!cgroups->usable() || !cgroups->hasCpu()) {
      for (const auto& dir : cgroups->subtreeDirs()) ::rmdir(dir.c_str());
      GTEST_SKIP() << "no usable cgroup setup with a cpu controller here: "
                   << cgroups->description();
    }
    cgroups_ = std::move(*cgroups);
    test::writeFile(tmp_ / "half.yaml",
                    "version: 1\ninclude: [" + kDefaultPolicy + "]\nlimits:\n  cpus: 0.5\n");
    test::writeFile(tmp_ / "two.yaml",
                    "version: 1\ninclude: [" + kDefaultPolicy + "]\nlimits:\n  cpus: 2\n");
    config_.jobs_dir = tmp_ / "jobs";
    config_.job_uid_base = 1100000u + static_cast<uint32_t>(::getpid() % 20000) * 16u;
    config_.job_uid_count = 16;
    config_.policy_files = {{"half", tmp_ / "half.yaml"}, {"two", tmp_ / "two.yaml"}};
    config_.cgroups.subtree = subtreeName();
    config_.cgroups.require = true;
  }

  void TearDown() override {
    if (!cgroups_.usable()) return;
    // Each spawner removed its job cgroups and the subtree when it stopped; this covers a failure.
    (void)cgroups_.removeLeftovers();
    for (const auto& dir : cgroups_.subtreeDirs()) ::rmdir(dir.c_str());
  }

  // The quota of the job's cgroup while it runs, under the named policy.
  std::string quotaOfAJobUnder(const std::string& policy) {
    JobSpec spec;
    spec.job_id = 1;
    spec.policy = policy;
    spec.script_name = "job.py";
    spec.script = "import sys\nprint('ready', flush=True)\nsys.stdin.read()\n";
    std::string quota;
    JobRun run = runJob(config_, spec, "ready",
                        [&](const JobStarted& started) { quota = cpuQuotaOf(started.pid); });
    EXPECT_EQ(whyNotStarted(run), "");
    EXPECT_EQ(run.out, "ready\n") << run.err;
    EXPECT_EQ(run.code, 0) << run.err;
    return quota;
  }

  TempDir tmp_{"cgroup-cpu"};
  SpawnerConfig config_;
  Cgroups cgroups_;
};

TEST_F(CgroupCpuTest, JobCgroupGetsTheQuotaOfLimitsCpus) {
  // cpus: 0.5 is half of each 100 ms period; cpus: 2 is two periods' worth (two cores).
  std::string half = quotaOfAJobUnder("half");
  std::string two = quotaOfAJobUnder("two");
  EXPECT_EQ(half, "50000 100000");
  EXPECT_EQ(two, "200000 100000");
}

}  // namespace
}  // namespace pyrun::sandbox
