// Tests for the pyrun-policy program: check and explain as an admin runs them.
#include <gtest/gtest.h>

#include <string>

#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun {
namespace {

using test::binary;
using test::Outcome;
using test::run;

const std::string kPolicyDir = std::string(PYRUN_SOURCE_DIR) + "/policy";

TEST(PyrunPolicyCheck, ShippedPoliciesPass) {
  Outcome o = run({binary("pyrun-policy"), "check", kPolicyDir + "/default.yaml",
                   kPolicyDir + "/strict.yaml"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, kPolicyDir + "/default.yaml: ok\n" + kPolicyDir + "/strict.yaml: ok\n");
  EXPECT_EQ(o.err, "");
}

TEST(PyrunPolicyCheck, BadFilePrintsEachMistakeWithItsPositionAndFails) {
  test::TempDir dir("cli");
  std::string bad = dir / "bad.yaml";
  test::writeFile(bad,
                  "version: 1\n"
                  "seccomp:\n"
                  "  default_action: kill_process\n"
                  "  allow: [read, sokcet]\n"
                  "limits:\n"
                  "  memory: lots\n");
  Outcome o = run({binary("pyrun-policy"), "check", kPolicyDir + "/default.yaml", bad});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.out, kPolicyDir + "/default.yaml: ok\n");
  EXPECT_EQ(o.err, bad + ":4:17: unknown syscall \"sokcet\" (did you mean \"socket\"?)\n" + bad +
                       ":6:11: limits.memory: \"lots\" is not a size (use bytes or a number with K, "
                       "M, G or T, e.g. 512M)\n");
}

TEST(PyrunPolicyCheck, MissingFileFails) {
  Outcome o = run({binary("pyrun-policy"), "check", "/nonexistent/p.yaml"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_NE(o.err.find("/nonexistent/p.yaml"), std::string::npos) << o.err;
}

TEST(PyrunPolicyExplain, ShowsLimitsGroupsAndFilterSize) {
  Outcome o = run({binary("pyrun-policy"), "explain", kPolicyDir + "/default.yaml"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("policy default ("), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("memory:       512M (" + kPolicyDir + "/default.yaml:"), std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("default_action: kill_process"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("@python-threads ("), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("socket if arg0 & 0xffffffff == 0x2 (low 32 bits) -> errno EPERM"),
            std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("answer ENOSYS"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(" BPF instructions ("), std::string::npos) << o.out;
}

TEST(PyrunPolicyExplain, InvalidPolicyFailsWithPositions) {
  test::TempDir dir("cli");
  std::string bad = dir / "bad.yaml";
  test::writeFile(bad, "version: 1\nseccomp:\n  allow: [read]\n");
  Outcome o = run({binary("pyrun-policy"), "explain", bad});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.err.rfind(bad + ":2:1: seccomp.default_action is required", 0), 0u) << o.err;
  EXPECT_EQ(o.out, "");
}

TEST(PyrunPolicyUsage, HelpAndMistakes) {
  Outcome help = run({binary("pyrun-policy"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("pyrun-policy check FILE..."), std::string::npos);
  EXPECT_NE(help.out.find("pyrun-policy explain FILE"), std::string::npos);
  EXPECT_EQ(run({binary("pyrun-policy")}).exit_code, 2);
  EXPECT_EQ(run({binary("pyrun-policy"), "check"}).exit_code, 2);
  EXPECT_EQ(run({binary("pyrun-policy"), "explain", "a", "b"}).exit_code, 2);
  Outcome unknown = run({binary("pyrun-policy"), "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown command \"frobnicate\""), std::string::npos);
}

}  // namespace
}  // namespace pyrun
