// Admission caps: pre-authentication connection and handshake caps, per-identity job quotas.
#include "server/quotas.h"

#include <gtest/gtest.h>

namespace pyrun::server {
namespace {

using Refusal = ConnectionGate::Refusal;
using namespace std::chrono_literals;

TEST(ConnectionGate, CapsHandshakesPerSource) {
  ConnectionGate gate(100, 100, 2);
  EXPECT_EQ(gate.admit("10.0.0.1"), Refusal::kNone);
  EXPECT_EQ(gate.admit("10.0.0.1"), Refusal::kNone);
  EXPECT_EQ(gate.admit("10.0.0.1"), Refusal::kSourceHandshakes);
  // Another address is not affected.
  EXPECT_EQ(gate.admit("10.0.0.2"), Refusal::kNone);
  EXPECT_EQ(gate.handshakesFrom("10.0.0.1"), 2u);
  gate.handshakeEnded("10.0.0.1");
  EXPECT_EQ(gate.admit("10.0.0.1"), Refusal::kNone);
  EXPECT_EQ(gate.describe(Refusal::kSourceHandshakes, "10.0.0.1"),
            "too many TLS handshakes in progress from 10.0.0.1 (2)");
}

TEST(ConnectionGate, CapsHandshakesGloballyAndFreesThemWhenDone) {
  ConnectionGate gate(100, 2, 10);
  EXPECT_EQ(gate.admit("a"), Refusal::kNone);
  EXPECT_EQ(gate.admit("b"), Refusal::kNone);
  EXPECT_EQ(gate.admit("c"), Refusal::kHandshakes);
  gate.handshakeEnded("a");
  EXPECT_EQ(gate.handshakes(), 1u);
  EXPECT_EQ(gate.admit("c"), Refusal::kNone);
  // Finished handshakes leave no per-source entry behind.
  gate.handshakeEnded("a");
  EXPECT_EQ(gate.handshakesFrom("a"), 0u);
}

TEST(ConnectionGate, CapsConnectionsUntilOneCloses) {
  ConnectionGate gate(2, 10, 10);
  EXPECT_EQ(gate.admit("a"), Refusal::kNone);
  EXPECT_EQ(gate.admit("a"), Refusal::kNone);
  gate.handshakeEnded("a");
  gate.handshakeEnded("a");
  // Authenticated connections still count against max_connections.
  EXPECT_EQ(gate.admit("b"), Refusal::kConnections);
  EXPECT_EQ(gate.connections(), 2u);
  gate.connectionClosed();
  EXPECT_EQ(gate.admit("b"), Refusal::kNone);
}

TEST(IdentityQuota, RefusesTheJobAboveTheConcurrentCapWithASentence) {
  IdentityQuota quota(2, 100);
  auto now = IdentityQuota::Clock::now();
  ASSERT_TRUE(quota.admit("alice", now).has_value());
  ASSERT_TRUE(quota.admit("alice", now).has_value());
  auto third = quota.admit("alice", now);
  ASSERT_FALSE(third.has_value());
  EXPECT_EQ(third.error().detail(), "too many jobs running for alice: 2 of 2");
  // Bob has his own count.
  EXPECT_TRUE(quota.admit("bob", now).has_value());
  quota.release("alice");
  EXPECT_EQ(quota.active("alice"), 1u);
  EXPECT_TRUE(quota.admit("alice", now).has_value());
}

TEST(IdentityQuota, LimitsStartsPerMinuteOverASlidingWindow) {
  IdentityQuota quota(100, 3);
  auto t0 = IdentityQuota::Clock::time_point{} + 1h;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(quota.admit("alice", t0 + std::chrono::seconds(i)).has_value());
    quota.release("alice");
  }
  auto fourth = quota.admit("alice", t0 + 30s);
  ASSERT_FALSE(fourth.has_value());
  EXPECT_EQ(fourth.error().detail(),
            "too many job starts for alice: 3 in the last minute, the limit is 3");
  // One minute after the first start, one start is allowed again.
  EXPECT_TRUE(quota.admit("alice", t0 + 60s).has_value());
  EXPECT_FALSE(quota.admit("alice", t0 + 60s).has_value());
}

}  // namespace
}  // namespace pyrun::server
