// The client's side of transfers without a server: -f/--get/-o/-q on the command line, the upload
// plan (modules beside the script, -f trees, names), the result writer against hostile names, and
// the progress line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "client/options.h"
#include "client/progress.h"
#include "client/results.h"
#include "client/upload.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::client {
namespace {

using test::TempDir;

Result<Command> parse(std::vector<std::string> args) {
  return parseCommandLine(args, Environment{std::nullopt, "/home/u"});
}

TEST(TransferOptions, FilesGetsOutputAndQuiet) {
  auto c = parse({"-f", "data", "--file=x.csv:in/x.csv", "--get", "out/*", "-o", "res", "-q",
                  "--no-modules", "host", "s.py"});
  ASSERT_TRUE(c) << c.error().detail();
  const Options& o = c->options;
  ASSERT_EQ(o.files.size(), 2u);
  EXPECT_EQ(o.files[0], (FileArg{"data", "data"}));
  EXPECT_EQ(o.files[1], (FileArg{"x.csv", "in/x.csv"}));
  EXPECT_EQ(o.gets, std::vector<std::string>{"out/*"});
  EXPECT_EQ(o.output_dir, "res");
  EXPECT_TRUE(o.quiet);
  EXPECT_FALSE(o.modules);
}

TEST(TransferOptions, FileArgDefaultsAndErrors) {
  EXPECT_EQ(*parseFileArg("/a/b/c.txt"), (FileArg{"/a/b/c.txt", "c.txt"}));
  EXPECT_EQ(*parseFileArg("dir/"), (FileArg{"dir", "dir"}));
  EXPECT_EQ(*parseFileArg("a:b:c"), (FileArg{"a:b", "c"}));  // split at the last ':'
  EXPECT_FALSE(parseFileArg(":x"));
  EXPECT_FALSE(parseFileArg("x:"));
}

class UploadPlanTest : public ::testing::Test {
 protected:
  std::string put(const std::string& rel, const std::string& body = "") {
    for (size_t slash = rel.find('/'); slash != std::string::npos;
         slash = rel.find('/', slash + 1)) {
      ::mkdir((dir_ / rel.substr(0, slash)).c_str(), 0755);
    }
    test::writeFile(dir_ / rel, body);
    return dir_ / rel;
  }
  std::vector<std::string> names(const UploadPlan& p) {
    std::vector<std::string> out;
    for (const auto& e : p.entries) out.push_back(e.name);
    return out;
  }
  TempDir dir_{"plan"};
};

TEST_F(UploadPlanTest, FileArgumentsWinOverModulesOfTheSameName) {
  Options o;
  o.script = put("app/main.py");
  put("app/util.py", "a");
  auto other = put("other.py", "b");
  o.files = {FileArg{other, "util.py"}};
  auto plan = planUpload(o);
  ASSERT_TRUE(plan) << plan.error().detail();
  EXPECT_EQ(names(*plan), std::vector<std::string>{"util.py"});
  EXPECT_EQ(plan->entries[0].local, other);
}

TEST_F(UploadPlanTest, RefusesTheScriptsNameAndDuplicates) {
  Options o;
  o.script = put("main.py");
  auto x = put("x.txt");
  o.modules = false;
  o.files = {FileArg{x, "main.py"}};
  EXPECT_FALSE(planUpload(o));
  o.files = {FileArg{x, "a"}, FileArg{x, "a"}};
  EXPECT_FALSE(planUpload(o));
  o.files = {FileArg{x, "a"}, FileArg{x, "a/b"}};
  EXPECT_FALSE(planUpload(o));
}

TEST_F(UploadPlanTest, RefusesModulesBeyondTheByteBound) {
  Options o;
  o.script = put("main.py");
  put("big.py", std::string(kMaxModuleBytes + 1, '#'));
  auto plan = planUpload(o);
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().detail().find("--no-modules"), std::string::npos);
  o.modules = false;
  EXPECT_TRUE(planUpload(o));
}

class ResultWriterTest : public ::testing::Test {
 protected:
  ResultWriter writer(uint32_t files = 10, uint64_t bytes = 100) {
    return ResultWriter(UniqueFd(::open(out().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)), files,
                        bytes);
  }
  std::string out() { return dir_ / "out"; }
  void SetUp() override { ::mkdir(out().c_str(), 0755); }
  TempDir dir_{"results"};
};

TEST_F(ResultWriterTest, WritesInPiecesAndRenamesIntoPlace) {
  auto w = writer();
  ASSERT_TRUE(w.begin({"a/b.txt", 0640, 6}));
  EXPECT_TRUE(w.owed());
  const std::string one = "abc", two = "def";
  ASSERT_TRUE(w.data(std::span(reinterpret_cast<const uint8_t*>(one.data()), 3)));
  ASSERT_TRUE(w.data(std::span(reinterpret_cast<const uint8_t*>(two.data()), 3)));
  EXPECT_FALSE(w.owed());
  EXPECT_EQ(test::readFileOrEmpty(out() + "/a/b.txt"), "abcdef");
  struct stat st {};
  ASSERT_EQ(::stat((out() + "/a/b.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
}

TEST_F(ResultWriterTest, RefusesHostileNamesAndExcess) {
  for (std::string bad : {"../x", "/etc/x", "a/../../x", "a\nb", ".", ""}) {
    auto w = writer();
    auto r = w.begin({bad, 0644, 1});
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().is(Errc::kProtocol)) << bad;
  }
  auto w = writer(1, 4);
  EXPECT_FALSE(w.begin({"big", 0644, 5}));
  ASSERT_TRUE(w.begin({"ok", 0644, 1}));
  const uint8_t two[2] = {1, 2};
  EXPECT_FALSE(w.data(std::span(two, 2)));  // more than announced
}

TEST(ProgressLine, SaysBytesRateAndTimeLeft) {
  using namespace std::chrono_literals;
  EXPECT_EQ(Progress::line("sending", 50u << 20, 100u << 20, 5s),
            "pyrun: sending 50.0 MiB of 100.0 MiB (50%), 10.0 MiB/s, 0:05 left");
  EXPECT_EQ(Progress::line("receiving", 3u << 20, 0, 1s), "pyrun: receiving 3.0 MiB, 3.0 MiB/s");
}

}  // namespace
}  // namespace pyrun::client
