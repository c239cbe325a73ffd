// Job working directories: safe names, exclusive creation, and removal that never follows links.
#include "sandbox/workdir.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/temp_dir.h"

namespace pyrun::sandbox {
namespace {

using test::TempDir;

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

TEST(CheckRelativePath, AcceptsPlainRelativePaths) {
  EXPECT_TRUE(checkRelativePath("a.py"));
  EXPECT_TRUE(checkRelativePath("pkg/mod.py"));
  EXPECT_TRUE(checkRelativePath("a/b/c/.hidden"));
  EXPECT_TRUE(checkRelativePath("..."));
}

TEST(CheckRelativePath, RejectsNamesThatEscapeOrAreMalformed) {
  for (const std::string& bad : std::vector<std::string>{
           "", "/etc/passwd", "../x", "a/../../b", "a/./b", ".", "..", "a//b", "a/",
           std::string("a\0b", 3), std::string(256, 'x'), std::string(5000, 'x')}) {
    auto r = checkRelativePath(bad);
    EXPECT_FALSE(r) << "accepted '" << bad << "'";
    if (!r) {
      EXPECT_TRUE(r.error().is(Errc::kInvalidArgument));
      EXPECT_EQ(r.error().detail().rfind("file name '", 0), 0u) << r.error().detail();
    }
  }
}

class WorkDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fd = openJobsDir(jobs_);
    ASSERT_TRUE(fd) << fd.error().detail();
    jobs_fd_ = std::move(*fd);
  }
  JobSpec spec() {
    JobSpec s;
    s.job_id = 12;
    s.script_name = "main.py";
    s.script = "print(1)\n";
    return s;
  }
  TempDir tmp_{"workdir"};
  std::string jobs_ = tmp_ / "jobs";
  UniqueFd jobs_fd_;
};

TEST_F(WorkDirTest, JobsDirIsCreated0711AndASymlinkIsRefused) {
  struct stat st {};
  ASSERT_EQ(::stat(jobs_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  ASSERT_EQ(::symlink(jobs_.c_str(), (tmp_ / "link").c_str()), 0);
  auto r = openJobsDir(tmp_ / "link");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find(tmp_ / "link"), std::string::npos) << r.error().detail();
  EXPECT_FALSE(openJobsDir("relative/jobs"));
}

TEST_F(WorkDirTest, WritesScriptAndFilesWithTheirModes) {
  JobSpec s = spec();
  s.files = {{"data/in.txt", 0600, "abc"}, {"data/deep/x", 04755, "x"}, {"top", 0640, ""}};
  auto wd = createWorkDir(jobs_fd_.get(), jobs_, s, nullptr);
  ASSERT_TRUE(wd) << wd.error().detail();
  EXPECT_EQ(wd->path, jobs_ + "/" + wd->name);
  EXPECT_EQ(wd->name.rfind("12-", 0), 0u);
  EXPECT_EQ(wd->name.size(), 3u + 16u);
  struct stat st {};
  ASSERT_EQ(::stat(wd->path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(test::readFileOrEmpty(wd->path + "/main.py"), "print(1)\n");
  EXPECT_EQ(test::readFileOrEmpty(wd->path + "/data/in.txt"), "abc");
  ASSERT_EQ(::stat((wd->path + "/data/in.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // Set-id bits are never granted, only permission bits.
  ASSERT_EQ(::stat((wd->path + "/data/deep/x").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_TRUE(removeTree(jobs_fd_.get(), wd->name));
  EXPECT_FALSE(exists(wd->path));
}

TEST_F(WorkDirTest, ChownsEverythingToTheJobOwnerWhenRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  JobSpec s = spec();
  s.files = {{"d/f", 0644, "f"}};
  Owner owner{321321, 321322};
  auto wd = createWorkDir(jobs_fd_.get(), jobs_, s, &owner);
  ASSERT_TRUE(wd) << wd.error().detail();
  for (std::string p : {"", "/main.py", "/d", "/d/f"}) {
    struct stat st {};
    ASSERT_EQ(::stat((wd->path + p).c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_uid, 321321u) << p;
    EXPECT_EQ(st.st_gid, 321322u) << p;
  }
}

TEST_F(WorkDirTest, RejectsEscapingNamesAndLeavesNothingBehind) {
  for (std::string bad : {"../escape", "/abs", "a/../../b"}) {
    JobSpec s = spec();
    s.files = {{"ok.txt", 0644, "ok"}, {bad, 0644, "bad"}};
    auto wd = createWorkDir(jobs_fd_.get(), jobs_, s, nullptr);
    ASSERT_FALSE(wd) << bad;
    EXPECT_NE(wd.error().detail().find(bad), std::string::npos) << wd.error().detail();
  }
  JobSpec s = spec();
  s.script_name = "dir/main.py";
  auto wd = createWorkDir(jobs_fd_.get(), jobs_, s, nullptr);
  ASSERT_FALSE(wd);
  EXPECT_NE(wd.error().detail().find("base name"), std::string::npos);
  EXPECT_FALSE(exists(tmp_ / "escape"));
  EXPECT_FALSE(exists(tmp_ / "b"));
  EXPECT_EQ(test::readFileOrEmpty(tmp_ / "jobs/../escape"), "");
  // Every partial working directory was removed.
  UniqueFd dir(::open(jobs_.c_str(), O_RDONLY | O_DIRECTORY));
  EXPECT_EQ(::rmdir(jobs_.c_str()), 0) << "jobs directory is not empty";
}

TEST_F(WorkDirTest, RefusesDuplicateNamesInsteadOfOverwriting) {
  JobSpec s = spec();
  s.files = {{"main.py", 0644, "evil"}};
  auto wd = createWorkDir(jobs_fd_.get(), jobs_, s, nullptr);
  ASSERT_FALSE(wd);
  EXPECT_NE(wd.error().detail().find("File exists"), std::string::npos) << wd.error().detail();
  s.files = {{"a", 0644, "file"}, {"a/b", 0644, "under a file"}};
  EXPECT_FALSE(createWorkDir(jobs_fd_.get(), jobs_, s, nullptr));
}

TEST_F(WorkDirTest, RemovalNeverFollowsLinksOutOfTheTree) {
  TempDir host("host");
  test::writeFile(host / "secret", "keep me", 0644);
  ASSERT_EQ(::mkdir((host / "dir").c_str(), 0755), 0);
  test::writeFile(host / "dir/inside", "keep me too", 0644);
  auto wd = createWorkDir(jobs_fd_.get(), jobs_, spec(), nullptr);
  ASSERT_TRUE(wd) << wd.error().detail();
  ASSERT_EQ(::symlink((host / "secret").c_str(), (wd->path + "/sym").c_str()), 0);
  ASSERT_EQ(::symlink((host / "dir").c_str(), (wd->path + "/dirlink").c_str()), 0);
  ASSERT_EQ(::link((host / "secret").c_str(), (wd->path + "/hard").c_str()), 0);
  ASSERT_EQ(::mkdir((wd->path + "/locked").c_str(), 0700), 0);
  test::writeFile(wd->path + "/locked/f", "x", 0000);
  ASSERT_EQ(::symlink((host / "dir").c_str(), (wd->path + "/locked/deeplink").c_str()), 0);
  ASSERT_EQ(::chmod((wd->path + "/locked").c_str(), 0000), 0);

  auto r = removeTree(jobs_fd_.get(), wd->name);
  ASSERT_TRUE(r) << r.error().detail();
  EXPECT_FALSE(exists(wd->path));
  EXPECT_EQ(test::readFileOrEmpty(host / "secret"), "keep me");
  EXPECT_EQ(test::readFileOrEmpty(host / "dir/inside"), "keep me too");
  struct stat st {};
  ASSERT_EQ(::stat((host / "secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(st.st_nlink, 1u);
  ASSERT_EQ(::stat((host / "dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(WorkDirTest, RemovesTreesDeeperThanTheRecursionBound) {
  auto wd = createWorkDir(jobs_fd_.get(), jobs_, spec(), nullptr);
  ASSERT_TRUE(wd) << wd.error().detail();
  UniqueFd dir(::open(wd->path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(::mkdirat(dir.get(), "d", 0700), 0);
    UniqueFd sub(::openat(dir.get(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (i % 50 == 0) {
      UniqueFd f(::openat(sub.get(), "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
      ASSERT_TRUE(f);
    }
    dir = std::move(sub);
  }
  dir.reset();
  auto r = removeTree(jobs_fd_.get(), wd->name);
  ASSERT_TRUE(r) << r.error().detail();
  EXPECT_FALSE(exists(wd->path));
}

TEST_F(WorkDirTest, RemovingAMissingOrNonDirectoryEntryIsSafe) {
  EXPECT_TRUE(removeTree(jobs_fd_.get(), "does-not-exist"));
  TempDir host("host");
  test::writeFile(host / "secret", "keep", 0644);
  ASSERT_EQ(::symlink((host / "secret").c_str(), (jobs_ + "/7-link").c_str()), 0);
  ASSERT_TRUE(removeTree(jobs_fd_.get(), "7-link"));
  EXPECT_FALSE(exists(jobs_ + "/7-link"));
  EXPECT_EQ(test::readFileOrEmpty(host / "secret"), "keep");
}

}  // namespace
}  // namespace pyrun::sandbox

namespace pyrun::sandbox {
namespace {

// Uploads staged by the front and moved into place by the spawner, and result files copied out.
class StagingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fd = openJobsDir(jobs_);
    ASSERT_TRUE(fd) << fd.error().detail();
    jobs_fd_ = std::move(*fd);
    auto up = openUploadsDir(jobs_fd_.get(), jobs_, nullptr);
    ASSERT_TRUE(up) << up.error().detail();
    uploads_fd_ = std::move(*up);
  }
  void put(const std::string& path, const std::string& body) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::write(fd, body.data(), body.size()), static_cast<ssize_t>(body.size()));
    ::close(fd);
  }
  std::string read(const std::string& path) {
    std::string out;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "(missing)";
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return out;
  }
  JobSpec spec(const std::string& upload) {
    JobSpec s;
    s.job_id = 7;
    s.script_name = "main.py";
    s.script = "print(1)\n";
    s.upload = upload;
    return s;
  }
  TempDir tmp_{"staging"};
  std::string jobs_ = tmp_ / "jobs";
  std::string uploads_ = jobs_ + "/.uploads";
  UniqueFd jobs_fd_, uploads_fd_;
};

TEST_F(StagingTest, MovesTheUploadIntoPlaceAndWritesTheScriptBeside) {
  ASSERT_EQ(::mkdir((uploads_ + "/u1").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((uploads_ + "/u1/data").c_str(), 0755), 0);
  put(uploads_ + "/u1/data/in.csv", "a,b\n");
  auto wd = createWorkDir(jobs_fd_.get(), jobs_, spec("u1"), nullptr, uploads_fd_.get());
  ASSERT_TRUE(wd) << wd.error().detail();
  EXPECT_FALSE(exists(uploads_ + "/u1"));
  EXPECT_EQ(read(wd->path + "/data/in.csv"), "a,b\n");
  EXPECT_EQ(read(wd->path + "/main.py"), "print(1)\n");
}

TEST_F(StagingTest, RefusesBadUploadNamesAndAnUploadThatIsALink) {
  for (std::string bad : {"../x", "a/b", ".", ".."}) {
    EXPECT_FALSE(createWorkDir(jobs_fd_.get(), jobs_, spec(bad), nullptr, uploads_fd_.get()))
        << bad;
  }
  ASSERT_EQ(::mkdir((tmp_ / "elsewhere").c_str(), 0700), 0);
  ASSERT_EQ(::symlink((tmp_ / "elsewhere").c_str(), (uploads_ + "/link").c_str()), 0);
  EXPECT_FALSE(createWorkDir(jobs_fd_.get(), jobs_, spec("link"), nullptr, uploads_fd_.get()));
  EXPECT_FALSE(exists(tmp_ / "elsewhere/main.py"));
}

TEST_F(StagingTest, AScriptNameAlreadyUploadedFailsAndLeavesNothing) {
  ASSERT_EQ(::mkdir((uploads_ + "/u2").c_str(), 0700), 0);
  put(uploads_ + "/u2/main.py", "uploaded");
  EXPECT_FALSE(createWorkDir(jobs_fd_.get(), jobs_, spec("u2"), nullptr, uploads_fd_.get()));
  // The failed job leaves neither its working directory nor the upload behind.
  EXPECT_FALSE(exists(uploads_ + "/u2"));
}

}  // namespace
}  // namespace pyrun::sandbox
