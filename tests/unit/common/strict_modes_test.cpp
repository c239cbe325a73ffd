// StrictModes: files a privileged process reads must be changeable by root (or the process's own
// user) alone, through every directory above them.
#include "common/strict_modes.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "support/temp_dir.h"

namespace pyrun {
namespace {

using test::TempDir;
using test::writeFile;

class StrictModesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0); }

  // The error's text, or "ok".
  std::string check(const std::string& path) {
    auto r = checkStrictModes(path);
    if (r) return "ok";
    EXPECT_EQ(r.error().code(), Errc::kPermission) << r.error().detail();
    return r.error().detail();
  }

  TempDir dir_{"strict"};
};

// The tests' own layout (/tmp is root's and sticky, the test directory 0755, files 0644) is the
// shape of a deployment's: it passes.
TEST_F(StrictModesTest, FileWritableOnlyByItsOwnerPasses) {
  writeFile(dir_ / "p.yaml", "version: 1\n", 0644);
  EXPECT_EQ(check(dir_ / "p.yaml"), "ok");
  writeFile(dir_ / "private.yaml", "version: 1\n", 0600);
  EXPECT_EQ(check(dir_ / "private.yaml"), "ok");
}

TEST_F(StrictModesTest, GroupOrOtherWritableFileIsRefused) {
  writeFile(dir_ / "g.yaml", "version: 1\n", 0664);
  EXPECT_EQ(check(dir_ / "g.yaml"), "refusing " + (dir_ / "g.yaml") + ": " + (dir_ / "g.yaml") +
                                        " is writable by its group (mode 0664); only root may be "
                                        "able to change it");
  writeFile(dir_ / "o.yaml", "version: 1\n", 0646);
  EXPECT_EQ(check(dir_ / "o.yaml"), "refusing " + (dir_ / "o.yaml") + ": " + (dir_ / "o.yaml") +
                                        " is writable by everyone (mode 0646); only root may be "
                                        "able to change it");
}

// Whoever can write a directory above the file can replace the file.
TEST_F(StrictModesTest, WritableDirectoryAboveIsRefused) {
  ASSERT_EQ(::mkdir((dir_ / "shared").c_str(), 0775), 0);
  ASSERT_EQ(::chmod((dir_ / "shared").c_str(), 0775), 0);
  ASSERT_EQ(::mkdir((dir_ / "shared/etc").c_str(), 0755), 0);
  writeFile(dir_ / "shared/etc/p.yaml", "version: 1\n", 0644);
  EXPECT_EQ(check(dir_ / "shared/etc/p.yaml"),
            "refusing " + (dir_ / "shared/etc/p.yaml") + ": " + (dir_ / "shared") +
                " is writable by its group (mode 0775); only root may be able to change it");
  // Sticky but not root's: its owner may still remove what is in it.
  ASSERT_EQ(::chmod((dir_ / "shared").c_str(), 01777), 0);
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown((dir_ / "shared").c_str(), 4242, 4242), 0);
    EXPECT_EQ(check(dir_ / "shared/etc/p.yaml"),
              "refusing " + (dir_ / "shared/etc/p.yaml") + ": " + (dir_ / "shared") +
                  " is owned by uid 4242, not root; only root may be able to change it");
    // Root's and sticky, like /tmp: others may add entries, never replace ours.
    ASSERT_EQ(::chown((dir_ / "shared").c_str(), 0, 0), 0);
    EXPECT_EQ(check(dir_ / "shared/etc/p.yaml"), "ok");
  }
}

TEST_F(StrictModesTest, FileOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "giving a file away needs root";
  writeFile(dir_ / "p.yaml", "version: 1\n", 0644);
  ASSERT_EQ(::chown((dir_ / "p.yaml").c_str(), 4242, 0), 0);
  EXPECT_EQ(check(dir_ / "p.yaml"), "refusing " + (dir_ / "p.yaml") + ": " + (dir_ / "p.yaml") +
                                        " is owned by uid 4242, not root; only root may be able "
                                        "to change it");
}

// A link in a safe place to a file in an unsafe one: where it leads is checked too.
TEST_F(StrictModesTest, LinkToAFileInAWritableDirectoryIsRefused) {
  ASSERT_EQ(::mkdir((dir_ / "open").c_str(), 0777), 0);
  ASSERT_EQ(::chmod((dir_ / "open").c_str(), 0777), 0);
  writeFile(dir_ / "open/p.yaml", "version: 1\n", 0644);
  ASSERT_EQ(::symlink((dir_ / "open/p.yaml").c_str(), (dir_ / "link.yaml").c_str()), 0);
  EXPECT_EQ(check(dir_ / "link.yaml"),
            "refusing " + (dir_ / "link.yaml") + ": " + (dir_ / "open") +
                " is writable by everyone (mode 0777); only root may be able to change it");
}

TEST_F(StrictModesTest, MissingFileIsNotFound) {
  auto r = checkStrictModes(dir_ / "absent.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::kNotFound);
}

}  // namespace
}  // namespace pyrun
