// The metrics registry's exposition text, metrics_listen parsing, and the status listener's
// answers (without sockets).
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "server/config.h"
#include "server/http_status.h"

namespace pyrun::server {
namespace {

bool hasLine(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(MetricsTest, RendersEveryFamilyWithZeroesBeforeAnyJob) {
  Metrics m;
  std::string text = m.render({});
  EXPECT_TRUE(hasLine(text, "pyrund_jobs_started_total 0")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_jobs_ended_total{verdict=\"ok\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_jobs_ended_total{verdict=\"internal-error\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_handshakes_refused_total{reason=\"revoked\"} 0")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_job_duration_seconds_count 0")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_draining 0")) << text;
  EXPECT_TRUE(hasLine(text, "# TYPE pyrund_job_queue_wait_seconds histogram")) << text;
  // No CRL known: no sample rather than a misleading 0.
  EXPECT_EQ(text.find("pyrund_crl_next_update_timestamp_seconds"), std::string::npos);
}

TEST(MetricsTest, CountsJobsByVerdictAndFillsCumulativeBuckets) {
  Metrics m;
  m.jobStarted();
  m.jobStarted();
  m.jobStarted();
  m.jobEnded(proto::Verdict::kOk, 0.02);
  m.jobEnded(proto::Verdict::kOk, 3);
  m.jobEnded(proto::Verdict::kWallLimit, 1000);
  std::string text = m.render({.jobs_running = 2, .jobs_queued = 5, .connections_open = 7});
  EXPECT_TRUE(hasLine(text, "pyrund_jobs_started_total 3")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_jobs_ended_total{verdict=\"ok\"} 2")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_jobs_ended_total{verdict=\"wall-limit\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_jobs_running 2")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_jobs_queued 5")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_connections_open 7")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_job_duration_seconds_bucket{le=\"0.025\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_job_duration_seconds_bucket{le=\"5\"} 2")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_job_duration_seconds_bucket{le=\"300\"} 2")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_job_duration_seconds_bucket{le=\"+Inf\"} 3")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_job_duration_seconds_count 3")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_job_duration_seconds_sum 1003.02")) << text;
}

TEST(MetricsTest, CountsRefusalsReloadsBytesAndTheCrl) {
  Metrics m;
  m.refused(Refusal::kRevoked);
  m.refused(Refusal::kRevoked);
  m.refused(Refusal::kMaxHandshakesPerSource);
  m.policyReload(true);
  m.policyReload(false);
  m.policyReload(false);
  m.bytesIn(10);
  m.bytesOut(20);
  m.bytesOut(5);
  m.crlNextUpdate(1800000000);
  std::string text = m.render({.draining = true});
  EXPECT_TRUE(hasLine(text, "pyrund_handshakes_refused_total{reason=\"revoked\"} 2")) << text;
  EXPECT_TRUE(
      hasLine(text, "pyrund_handshakes_refused_total{reason=\"max_handshakes_per_source\"} 1"))
      << text;
  EXPECT_TRUE(hasLine(text, "pyrund_policy_reloads_total{result=\"ok\"} 1")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_policy_reloads_total{result=\"failed\"} 2")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_received_bytes_total 10")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_sent_bytes_total 25")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_crl_next_update_timestamp_seconds 1800000000")) << text;
  EXPECT_TRUE(hasLine(text, "pyrund_draining 1")) << text;
}

TEST(MetricsListenTest, ParsesIpv4AndBracketedIpv6) {
  auto v4 = parseListenAddress("127.0.0.1:9464", "metrics_listen");
  ASSERT_TRUE(v4) << v4.error().detail();
  EXPECT_EQ(v4->first, "127.0.0.1");
  EXPECT_EQ(v4->second, 9464);
  auto v6 = parseListenAddress("[::1]:0", "metrics_listen");
  ASSERT_TRUE(v6) << v6.error().detail();
  EXPECT_EQ(v6->first, "::1");
  EXPECT_EQ(v6->second, 0);
}

TEST(MetricsListenTest, RejectsWhatIsNotAnAddressAndPort) {
  for (const char* bad : {"127.0.0.1", "localhost:9464", "::1:9464", "[::1]", "[::1]9464",
                          "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "1.2.3:80", ":9464",
                          "[127.0.0.1]:80", "127.0.0.1:80x"}) {
    auto r = parseListenAddress(bad, "metrics_listen");
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().detail().find("metrics_listen"), std::string::npos) << r.error().detail();
      EXPECT_NE(r.error().detail().find("ADDR:PORT"), std::string::npos) << r.error().detail();
    }
  }
}

TEST(MetricsListenTest, ConfigFileErrorsCarryTheirPosition) {
  ServerConfig c;
  auto r = applyConfigYaml(c, "port: 9091\nmetrics_listen: nowhere\n", "pyrund.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail().find("pyrund.yaml:2:"), std::string::npos) << r.error().detail();
  ServerConfig ok;
  ASSERT_TRUE(applyConfigYaml(ok, "metrics_listen: \"[::1]:9464\"\n", "pyrund.yaml"));
  EXPECT_EQ(ok.metrics_address, "::1");
  EXPECT_EQ(ok.metrics_port, 9464);
  EXPECT_TRUE(ServerConfig{}.metrics_listen.empty()) << "metrics must be off by default";
}

StatusSource source(bool accepting) {
  return {[] { return std::string("pyrund_up 1\n"); }, [accepting] { return accepting; }};
}

TEST(StatusAnswerTest, ServesMetricsAndHealth) {
  auto metrics = answerStatusRequest("GET", "/metrics", source(true));
  EXPECT_EQ(metrics.status, 200u);
  EXPECT_EQ(metrics.body, "pyrund_up 1\n");
  EXPECT_NE(metrics.content_type.find("version=0.0.4"), std::string::npos);
  EXPECT_EQ(answerStatusRequest("GET", "/metrics?format=text", source(true)).status, 200u);
  EXPECT_EQ(answerStatusRequest("GET", "/healthz", source(true)).status, 200u);
  EXPECT_EQ(answerStatusRequest("HEAD", "/healthz", source(true)).status, 200u);
}

TEST(StatusAnswerTest, HealthIs503WhileDraining) {
  auto r = answerStatusRequest("GET", "/healthz", source(false));
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(r.body, "draining\n");
  // Metrics keep being served through the drain.
  EXPECT_EQ(answerStatusRequest("GET", "/metrics", source(false)).status, 200u);
}

TEST(StatusAnswerTest, UnknownPathsAre404AndOtherMethods405) {
  EXPECT_EQ(answerStatusRequest("GET", "/", source(true)).status, 404u);
  EXPECT_EQ(answerStatusRequest("GET", "/metrics/", source(true)).status, 404u);
  EXPECT_EQ(answerStatusRequest("GET", "/../metrics", source(true)).status, 404u);
  auto post = answerStatusRequest("POST", "/metrics", source(true));
  EXPECT_EQ(post.status, 405u);
  EXPECT_EQ(post.allow, "GET, HEAD");
  EXPECT_EQ(answerStatusRequest("DELETE", "/healthz", source(true)).status, 405u);
}

}  // namespace
}  // namespace pyrun::server
