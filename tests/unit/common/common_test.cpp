// Tests for the common layer: errors, file helpers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/error.h"
#include "common/file.h"

namespace pyrun {
namespace {

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pyrun-common-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST(ErrorTest, ResultCarriesCodeAndDetail) {
  Result<int> r = Error(Errc::kNotFound, "no client named \"alice\"");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::kNotFound));
  EXPECT_EQ(r.error().detail(), "no client named \"alice\"");
  EXPECT_THROW(r.value(), ErrorException);
}

TEST(ErrorTest, ErrnoErrorMapsCommonCodes) {
  EXPECT_TRUE(errnoError("x", ENOENT).is(Errc::kNotFound));
  EXPECT_TRUE(errnoError("x", EACCES).is(Errc::kPermission));
  EXPECT_EQ(errnoError("open a", ENOENT).detail(), "open a: No such file or directory");
}

TEST_F(TempDir, WriteNewFileNeverOverwrites) {
  std::string p = dir_ + "/key";
  ASSERT_TRUE(writeNewFile(p, "one", 0600));
  auto again = writeNewFile(p, "two", 0600);
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(Errc::kAlreadyExists));
  EXPECT_EQ(readFile(p).value(), "one");
  struct stat st{};
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(TempDir, WriteNewFileRefusesSymlink) {
  std::string target = dir_ + "/target";
  std::string link = dir_ + "/link";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  EXPECT_FALSE(writeNewFile(link, "x", 0600));
  EXPECT_NE(access(target.c_str(), F_OK), 0);
}

TEST_F(TempDir, ReplaceFileSwapsContents) {
  std::string p = dir_ + "/index";
  ASSERT_TRUE(replaceFile(p, "old", 0644));
  ASSERT_TRUE(replaceFile(p, "new", 0644));
  EXPECT_EQ(readFile(p).value(), "new");
}

TEST_F(TempDir, RequirePrivateFileRejectsGroupReadable) {
  std::string p = dir_ + "/me.pem";
  ASSERT_TRUE(writeNewFile(p, "x", 0644));
  auto r = requirePrivateFile(p, "bundle");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::kPermission));
  EXPECT_NE(r.error().detail().find("0644"), std::string::npos);
  ASSERT_EQ(chmod(p.c_str(), 0600), 0);
  EXPECT_TRUE(requirePrivateFile(p, "bundle"));
}

}  // namespace
}  // namespace pyrun
