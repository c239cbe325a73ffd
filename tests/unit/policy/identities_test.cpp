// Tests for the server config's identities mapping (certificate CN -> policy name).
#include "policy/identities.h"

#include <gtest/gtest.h>

namespace pyrun::policy {
namespace {

TEST(Identities, MapsClientsAndFallsBackToTheDefault) {
  auto map = parseIdentitiesFromConfig(
      "listen: 0.0.0.0:9091\nidentities:\n  default: default\n  clients:\n    alice: strict\n",
      "pyrund.yaml", {"default", "strict"});
  ASSERT_TRUE(map) << map.error().detail();
  EXPECT_EQ(map->policyFor("alice").value_or(""), "strict");
  EXPECT_EQ(map->policyFor("bob").value_or(""), "default");
}

TEST(Identities, WithoutADefaultUnknownClientsAreRefused) {
  auto map = parseIdentitiesFromConfig("identities:\n  clients:\n    alice: strict\n", "c.yaml");
  ASSERT_TRUE(map) << map.error().detail();
  EXPECT_EQ(map->policyFor("alice").value_or(""), "strict");
  EXPECT_FALSE(map->policyFor("mallory"));
}

TEST(Identities, ConfigWithoutIdentitiesMapsEveryoneToDefault) {
  auto map = parseIdentitiesFromConfig("listen: 0.0.0.0:9091\n", "c.yaml");
  ASSERT_TRUE(map);
  EXPECT_EQ(map->policyFor("anyone").value_or(""), "default");
}

TEST(Identities, UnknownPolicyIsAnErrorWithItsPosition) {
  auto map = parseIdentitiesFromConfig("identities:\n  clients:\n    alice: stirct\n", "c.yaml",
                                       {"default", "strict"});
  ASSERT_FALSE(map);
  EXPECT_TRUE(map.error().is(Errc::kPolicy));
  EXPECT_EQ(map.error().detail(), "c.yaml:3:12: unknown policy \"stirct\"");
}

TEST(Identities, UnknownKeyDuplicateClientAndBadNameAreErrors) {
  auto map = parseIdentitiesFromConfig(
      "identities:\n  defualt: x\n  clients:\n    alice: strict\n    alice: default\n"
      "    bob: ../etc\n",
      "c.yaml");
  ASSERT_FALSE(map);
  EXPECT_EQ(map.error().detail(),
            "c.yaml:2:3: unknown key \"defualt\" in identities (known: default, clients)\n"
            "c.yaml:5:5: client \"alice\" is listed twice\n"
            "c.yaml:6:10: a policy name must be letters, digits, '-' or '_'");
}

TEST(Identities, WrongShapeIsAnError) {
  auto map = parseIdentitiesFromConfig("identities: [alice]\n", "c.yaml");
  ASSERT_FALSE(map);
  EXPECT_EQ(map.error().detail(),
            "c.yaml:1:13: identities must be a mapping with default and clients");
}

}  // namespace
}  // namespace pyrun::policy
