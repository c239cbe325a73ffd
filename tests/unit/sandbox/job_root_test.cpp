// The job's root as data: which steps go into a policy's root template and which each job mounts.
#include "sandbox/job_root.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "support/temp_dir.h"

namespace pyrun::sandbox {
namespace {

bool sameStep(const MountStep& a, const MountStep& b) {
  return a.kind == b.kind && a.source == b.source && a.target == b.target && a.data == b.data &&
         a.mode == b.mode && a.writable == b.writable && a.noexec == b.noexec &&
         a.optional == b.optional && a.per_job == b.per_job;
}

TEST(RootTemplatePlan, IsTheJobsPlanWithoutTheJobsOwnSteps) {
  test::TempDir staged("staged");
  test::writeFile(staged / "job.py", "print(1)\n");
  for (bool terminal : {false, true}) {
    auto job = planJobRoot(policy::Policy{}, staged.path(), {.terminal = terminal});
    auto tmpl = planRootTemplate(policy::Policy{}, {.terminal = terminal});
    ASSERT_TRUE(job) << job.error().detail();
    ASSERT_TRUE(tmpl) << tmpl.error().detail();
    std::vector<MountStep> shared;
    for (const auto& s : job->steps) {
      if (!s.per_job) shared.push_back(s);
    }
    ASSERT_EQ(shared.size(), tmpl->steps.size());
    for (size_t i = 0; i < shared.size(); ++i) {
      EXPECT_TRUE(sameStep(shared[i], tmpl->steps[i])) << describeMountStep(shared[i]);
    }
    EXPECT_EQ(job->landlock_read_only, tmpl->landlock_read_only);
    EXPECT_EQ(job->landlock_read_write, tmpl->landlock_read_write);
  }
}

TEST(RootTemplatePlan, JobsOwnStepsAreItsFilesTmpfsProcAndTerminalOnMountPointsOfTheTemplate) {
  test::TempDir staged("staged");
  test::writeFile(staged / "job.py", "print(1)\n");
  auto job = planJobRoot(policy::Policy{}, staged.path(), {.terminal = true});
  ASSERT_TRUE(job) << job.error().detail();
  std::set<std::string> template_dirs;
  std::set<std::string> own_mounts;
  for (const auto& s : job->steps) {
    if (!s.per_job) {
      // Nothing of a job's and nothing of its pid namespace goes into the shared template.
      EXPECT_NE(s.kind, MountKind::kJobTmpfs);
      EXPECT_NE(s.kind, MountKind::kJobDir);
      EXPECT_NE(s.kind, MountKind::kJobFile);
      EXPECT_NE(s.kind, MountKind::kProc);
      EXPECT_NE(s.kind, MountKind::kDevpts);
      EXPECT_NE(s.target.rfind("proc/", 0), 0u) << describeMountStep(s);
      if (s.kind == MountKind::kDir) template_dirs.insert(s.target);
      continue;
    }
    if (s.kind == MountKind::kJobDir || s.kind == MountKind::kJobFile) {
      EXPECT_EQ(s.target.rfind("job/", 0), 0u) << describeMountStep(s);
    } else if (s.kind == MountKind::kBind) {
      EXPECT_EQ(s.target.rfind("proc/", 0), 0u) << describeMountStep(s);  // the knobs
    } else {
      own_mounts.insert(s.target);
    }
  }
  EXPECT_EQ(own_mounts, (std::set<std::string>{"job", "tmp", "dev/shm", "dev/pts", "proc"}));
  // Their mount points are directories of the (read-only) template.
  for (const auto& target : own_mounts) EXPECT_EQ(template_dirs.count(target), 1u) << target;
}

}  // namespace
}  // namespace pyrun::sandbox
