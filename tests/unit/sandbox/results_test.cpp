// Result files copied out of a job's working directory: matching regular files only, never
// through a link, within the limits.
#include "sandbox/results.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/job_root.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::sandbox {
namespace {

using test::TempDir;

class ResultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::mkdir(job_.c_str(), 0700);
    ::mkdir(dest_.c_str(), 0700);
  }
  ResultsCopy copy(std::vector<std::string> patterns, uint64_t files = 100,
                   uint64_t bytes = 1 << 20, const std::string& name = "r") {
    UniqueFd job(::open(job_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    UniqueFd dest(::open(dest_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto r = copyResults(job.get(), patterns, dest.get(), name, nullptr, files, bytes);
    EXPECT_TRUE(r) << (r ? "" : r.error().detail());
    return r ? *r : ResultsCopy{};
  }
  TempDir tmp_{"results"};
  std::string job_ = tmp_ / "job";
  std::string dest_ = tmp_ / "dest";
};

TEST_F(ResultsTest, CopiesMatchingRegularFilesWithTheirModes) {
  ::mkdir((job_ + "/out").c_str(), 0755);
  test::writeFile(job_ + "/out/a.png", "png", 0640);
  test::writeFile(job_ + "/out/b.txt", "txt");
  test::writeFile(job_ + "/report.csv", "csv");
  auto c = copy({"out/*.png", "report.csv"});
  EXPECT_EQ(c.files, 2u);
  EXPECT_EQ(test::readFileOrEmpty(dest_ + "/r/out/a.png"), "png");
  EXPECT_EQ(test::readFileOrEmpty(dest_ + "/r/report.csv"), "csv");
  EXPECT_NE(::access((dest_ + "/r/out/b.txt").c_str(), F_OK), 0);
  struct stat st {};
  ASSERT_EQ(::stat((dest_ + "/r/out/a.png").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(ResultsTest, NeverFollowsLinksNorCopiesSpecialFiles) {
  test::writeFile(tmp_ / "secret", "host secret");
  ::mkdir((tmp_ / "hostdir").c_str(), 0755);
  test::writeFile(tmp_ / "hostdir/x", "host file");
  ASSERT_EQ(::symlink((tmp_ / "secret").c_str(), (job_ + "/out.txt").c_str()), 0);
  ASSERT_EQ(::symlink((tmp_ / "hostdir").c_str(), (job_ + "/dir").c_str()), 0);
  ASSERT_EQ(::mkfifo((job_ + "/fifo").c_str(), 0644), 0);
  test::writeFile(job_ + "/plain", "plain");
  auto c = copy({"**"});
  EXPECT_EQ(c.files, 1u);
  EXPECT_EQ(test::readFileOrEmpty(dest_ + "/r/plain"), "plain");
  for (const char* name : {"/r/out.txt", "/r/dir", "/r/fifo"}) {
    struct stat st {};
    EXPECT_NE(::lstat((dest_ + name).c_str(), &st), 0) << name;
  }
}

TEST_F(ResultsTest, StopsAtTheLimitsAndSaysWhatWasLeftOut) {
  for (int i = 0; i < 5; ++i) test::writeFile(job_ + "/f" + std::to_string(i), "12345");
  auto c = copy({"*"}, 3, 1 << 20);
  EXPECT_EQ(c.files, 3u);
  EXPECT_NE(c.detail.find("left out"), std::string::npos) << c.detail;
  auto d = copy({"*"}, 100, 12, "r2");
  EXPECT_EQ(d.files, 2u);  // 10 bytes; a third file would make 15
  EXPECT_EQ(d.bytes, 10u);
}

TEST(StagedTree, AHardlinkedFileIsRefused) {
  TempDir tmp("staged");
  test::writeFile(tmp / "a", "x");
  ASSERT_EQ(::link((tmp / "a").c_str(), (tmp / "b").c_str()), 0);
  auto plan = planJobRoot(policy::Policy{}, tmp.path());
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().detail().find("links"), std::string::npos) << plan.error().detail();
}

}  // namespace
}  // namespace pyrun::sandbox
