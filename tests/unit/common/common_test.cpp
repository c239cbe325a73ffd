// Tests for the common layer: errors, file helpers, directory listing, hex text.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/dir.h"
#include "common/error.h"
#include "common/fd.h"
#include "common/file.h"
#include "common/hex.h"

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
  struct stat st {};
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

TEST_F(TempDir, ListDirectoryNamesEveryEntryButDotAndDotDot) {
  ASSERT_EQ(::mkdir((dir_ + "/sub").c_str(), 0700), 0);
  ASSERT_TRUE(writeNewFile(dir_ + "/file", "x", 0600));
  ASSERT_EQ(::symlink("/nonexistent", (dir_ + "/link").c_str()), 0);
  auto entries = listDirectory(dir_);
  ASSERT_TRUE(entries) << entries.error().detail();
  std::vector<std::string> names;
  for (const auto& e : *entries) {
    names.push_back(e.name);
    if (e.name == "sub") {
      EXPECT_EQ(e.type, DT_DIR);
    } else if (e.name == "link") {
      EXPECT_EQ(e.type, DT_LNK);
    }
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"file", "link", "sub"}));
}

TEST_F(TempDir, ListDirectoryByDescriptorStartsOverAndKeepsTheDescriptor) {
  ASSERT_TRUE(writeNewFile(dir_ + "/a", "x", 0600));
  UniqueFd fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  // A second listing of the same descriptor sees everything again (the offset is shared).
  for (int round = 0; round < 2; ++round) {
    auto entries = listDirectory(fd.get(), dir_);
    ASSERT_TRUE(entries) << entries.error().detail();
    ASSERT_EQ(entries->size(), 1u);
    EXPECT_EQ(entries->front().name, "a");
  }
  EXPECT_EQ(::fcntl(fd.get(), F_GETFD), FD_CLOEXEC);
}

TEST_F(TempDir, ListDirectoryNamesWhatItCouldNotRead) {
  auto missing = listDirectory(dir_ + "/missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().detail(),
            "read directory " + dir_ + "/missing: No such file or directory");
  auto bad = listDirectory(-1, "nothing");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().detail(), "read directory nothing: Bad file descriptor");
}

TEST(HexTest, DigestsAreTwoLowerCaseDigitsPerByte) {
  const unsigned char bytes[] = {0x00, 0x0a, 0xff, 0x5c};
  EXPECT_EQ(hexLower(bytes, sizeof bytes), "000aff5c");
  EXPECT_EQ(hexLower(bytes, 0), "");
}

TEST(HexTest, SerialsHaveNoLeadingZeros) {
  EXPECT_EQ(serialText("0A12"), "a12");
  EXPECT_EQ(serialText("7F"), "7f");
  EXPECT_EQ(serialText("00"), "0");
  EXPECT_EQ(serialText("0"), "0");
  EXPECT_EQ(serialText("-0A"), "-a");
}

}  // namespace
}  // namespace pyrun
