// The policy set: every policy loaded, every mistake reported with file:line:col, identities
// resolved, reload all or nothing.
#include "server/policy_set.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>

#include "support/temp_dir.h"

namespace pyrun::server {
namespace {

const std::string kPolicyDir = PYRUN_SOURCE_DIR "/policy";

TEST(PolicySet, LoadsEveryPolicyAndMapsIdentities) {
  ServerConfig c;
  c.policies = {{"default", kPolicyDir + "/default.yaml"}, {"strict", kPolicyDir + "/strict.yaml"}};
  c.identities.by_common_name.emplace("alice", "strict");
  auto set = loadPolicySet(c);
  ASSERT_TRUE(set.has_value()) << set.error().detail();
  EXPECT_EQ(set->policyNameFor("alice"), "strict");
  EXPECT_EQ(set->policyNameFor("bob"), "default");
  EXPECT_EQ(set->policies.at("strict").limits.cpu_seconds, 5u);
}

TEST(PolicySet, NoDefaultMeansUnknownClientsGetNoPolicy) {
  ServerConfig c;
  c.policies = {{"strict", kPolicyDir + "/strict.yaml"}};
  c.identities.default_policy.clear();
  c.identities.by_common_name.emplace("alice", "strict");
  auto set = loadPolicySet(c);
  ASSERT_TRUE(set.has_value()) << set.error().detail();
  EXPECT_EQ(set->policyNameFor("alice"), "strict");
  EXPECT_EQ(set->policyNameFor("mallory"), "");
}

TEST(PolicySet, ReportsEveryInvalidPolicyWithFileLineColumn) {
  test::TempDir dir("pset");
  test::writeFile(dir / "bad.yaml", "version: 1\nlimits:\n  cpu_secnds: 3\n");
  ServerConfig c;
  c.policies = {{"default", kPolicyDir + "/default.yaml"},
                {"bad", dir / "bad.yaml"},
                {"missing", dir / "missing.yaml"}};
  auto set = loadPolicySet(c);
  ASSERT_FALSE(set.has_value());
  const std::string d = set.error().detail();
  EXPECT_NE(d.find(dir / "bad.yaml:3:3: "), std::string::npos) << d;
  EXPECT_NE(d.find("missing.yaml"), std::string::npos) << d;
}

TEST(PolicySet, ReloadReadsPoliciesAndIdentitiesFromTheConfigFile) {
  test::TempDir dir("pset");
  test::writeFile(dir / "pyrund.yaml", "policies:\n  default: " + kPolicyDir +
                                           "/default.yaml\n  strict: " + kPolicyDir +
                                           "/strict.yaml\nidentities:\n  default: default\n"
                                           "  clients:\n    alice: strict\n");
  auto set = reloadPolicySet(dir / "pyrund.yaml");
  ASSERT_TRUE(set.has_value()) << set.error().detail();
  EXPECT_EQ(set->policyNameFor("alice"), "strict");
  test::writeFile(dir / "pyrund.yaml", "policies:\n  default: " + kPolicyDir +
                                           "/default.yaml\nidentities:\n  clients:\n"
                                           "    alice: strict\n");
  auto bad = reloadPolicySet(dir / "pyrund.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().detail().find(dir / "pyrund.yaml:5:12: unknown policy \"strict\""),
            std::string::npos)
      << bad.error().detail();
}

// The root spawner's reload reads the config, not the policies: a policy file others could have
// written (and the files it includes) is not opened before the spawner's StrictModes check.
TEST(PolicySet, SpawnersReloadReadsNoPolicyFile) {
  test::TempDir dir("pset");
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  test::writeFile(dir / "secret.yaml", "password: hunter2\n", 0600);
  test::writeFile(dir / "p.yaml", "version: 1\ninclude: [secret.yaml]\n", 0666);
  test::writeFile(dir / "pyrund.yaml", "policies:\n  default: " + (dir / "p.yaml") + "\n", 0644);
  auto files = policyFilesForSpawner(dir / "pyrund.yaml");
  ASSERT_TRUE(files.has_value()) << files.error().detail();
  EXPECT_EQ(*files, (std::map<std::string, std::string>{{"default", dir / "p.yaml"}}));
  // A config file others could write is refused before it is parsed.
  ASSERT_EQ(::chmod((dir / "pyrund.yaml").c_str(), 0666), 0);
  auto refused = policyFilesForSpawner(dir / "pyrund.yaml");
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), Errc::kPermission);
  EXPECT_NE(refused.error().detail().find("refusing " + (dir / "pyrund.yaml")), std::string::npos)
      << refused.error().detail();
}

}  // namespace
}  // namespace pyrun::server
