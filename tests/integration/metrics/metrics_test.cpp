// pyrund's metrics_listen against a real pyrund and pyrun: /metrics after known jobs and
// refusals (another CA, revoked, no certificate), checked number by number and by promtool;
// /healthz 200 -> 503 through the SIGTERM drain; 404/405; the errors of a bad metrics_listen.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "support/pki.h"
#include "support/process.h"
#include "support/pyrund.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

using namespace std::chrono_literals;

struct Http {
  int status = 0;
  std::string headers;
  std::string body;
};

// One HTTP/1.1 request to 127.0.0.1:port; status 0 when the connection failed.
Http httpRequest(int port, const std::string& method, const std::string& target) {
  Http out;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return out;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return out;
  }
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return out;
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) response.append(buf, static_cast<size_t>(n));
  ::close(fd);
  auto end = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return out;
  out.status = std::stoi(response.substr(9, 3));
  out.headers = response.substr(0, end);
  out.body = response.substr(end + 4);
  return out;
}

// The value of the sample `series` (name with labels) in an exposition; -1 when absent.
double sampleValue(const std::string& text, const std::string& series) {
  std::string key = "\n" + series + " ";
  auto at = ("\n" + text).find(key);
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + key.size() - 1));
}

// A pyrund on 127.0.0.1 (kernel-chosen ports for the clients and for metrics_listen), whose
// policy is policy/default.yaml with a 2 s wall limit.
class MetricsServer {
 public:
  MetricsServer(Pki& pki, const std::string& extra_yaml = "")
      : pyrund_(dir_.path(), options(dir_, pki, extra_yaml)) {
    if (!pyrund_.started()) ADD_FAILURE() << pyrund_.startError();
  }
  std::string address() const { return pyrund_.address(); }
  int metricsPort() const { return pyrund_.metricsPort(); }  // 0 when it did not start
  Child& process() { return pyrund_.process(); }
  std::string script(const std::string& name, const std::string& body) {
    writeFile(dir_ / name, body);
    return dir_ / name;
  }

 private:
  static PyrundOptions options(const TempDir& dir, Pki& pki, const std::string& extra_yaml) {
    writeFile(dir / "policy.yaml", "version: 1\ninclude: [" + std::string(PYRUN_SOURCE_DIR) +
                                       "/policy/default.yaml]\nlimits:\n  wall_seconds: 2\n");
    PyrundOptions p;
    p.cert = pki.serverBundle();
    p.crl = pki.crl();
    p.metrics = true;
    p.config_yaml =
        "policies:\n  default: " + (dir / "policy.yaml") + "\nmax_jobs: 2\n" + extra_yaml;
    return p;
  }

  TempDir dir_{"metrics-srv"};
  Pyrund pyrund_;
};

class MetricsIntegrationTest : public ::testing::Test {
 protected:
  MetricsIntegrationTest() : dir_("metrics-pki"), pki_(dir_.path()) {
    ::chmod(dir_.path().c_str(), 0711);
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "pyrund's jobs need root here (per-job uids)";
  }
  TempDir dir_;
  Pki pki_;
};

TEST_F(MetricsIntegrationTest, ScrapeAfterKnownJobsCountsThem) {
  MetricsServer server(pki_);
  ASSERT_NE(server.metricsPort(), 0);
  const std::string alice = pki_.clientBundle("alice");
  auto pyrun = [&](const std::string& script) {
    return run({binary("pyrun"), "--cert", alice, server.address(), script});
  };
  // Three jobs that end by themselves (verdict ok, whatever their exit status) and one that the
  // 2 s wall limit kills.
  EXPECT_EQ(pyrun(server.script("hello.py", "print('hello')\n")).exit_code, 0);
  EXPECT_EQ(pyrun(server.script("hello2.py", "print('hello again')\n")).exit_code, 0);
  EXPECT_EQ(pyrun(server.script("three.py", "import sys\nsys.exit(3)\n")).exit_code, 3);
  EXPECT_EQ(pyrun(server.script("slow.py", "import time\ntime.sleep(30)\n")).exit_code, 137);
  // A client whose certificate another CA issued: refused as untrusted, no job.
  TempDir other_dir("metrics-other");
  Pki other(other_dir.path());
  EXPECT_EQ(run({binary("pyrun"), "--cert", other.clientBundle("mallory"), "--ca", pki_.caCert(),
                 server.address(), server.script("x.py", "print(1)\n")})
                .exit_code,
            255);
  // bob is revoked, and a SIGHUP reloads the CRL and the policies (a reload that succeeds).
  const std::string bob = pki_.clientBundle("bob");
  pki_.revoke("bob");
  server.process().signal(SIGHUP);
  std::string text;
  ASSERT_TRUE(eventually(
      [&] {
        text = httpRequest(server.metricsPort(), "GET", "/metrics").body;
        return sampleValue(text, "pyrund_policy_reloads_total{result=\"ok\"}") == 1;
      },
      20s))
      << text;
  EXPECT_EQ(run({binary("pyrun"), "--cert", bob, server.address(), server.script("b.py", "1\n")})
                .exit_code,
            255);
  // A TLS client without a certificate.
  RunOptions no_input;
  run({"openssl", "s_client", "-connect", server.address(), "-tls1_3", "-alpn", "pyrun/1",
       "-servername", "localhost"},
      no_input);

  ASSERT_TRUE(eventually(
      [&] {
        Http r = httpRequest(server.metricsPort(), "GET", "/metrics");
        text = r.body;
        return r.status == 200 &&
               sampleValue(text, "pyrund_handshakes_refused_total{reason=\"no_certificate\"}") ==
                   1 &&
               sampleValue(text, "pyrund_connections_open") == 0;
      },
      20s))
      << text;
  EXPECT_EQ(sampleValue(text, "pyrund_jobs_started_total"), 4) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_jobs_ended_total{verdict=\"ok\"}"), 3) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_jobs_ended_total{verdict=\"wall-limit\"}"), 1) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_jobs_ended_total{verdict=\"syscall\"}"), 0) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_jobs_running"), 0) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_jobs_queued"), 0) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_handshakes_refused_total{reason=\"untrusted\"}"), 1) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_handshakes_refused_total{reason=\"revoked\"}"), 1) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_handshakes_refused_total{reason=\"expired\"}"), 0) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_handshakes_refused_total{reason=\"timeout\"}"), 0) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_job_duration_seconds_count"), 4) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_job_queue_wait_seconds_count"), 4) << text;
  // The wall-limited job ran about 2 s; the others well under a second.
  EXPECT_EQ(sampleValue(text, "pyrund_job_duration_seconds_bucket{le=\"1\"}"), 3) << text;
  EXPECT_GE(sampleValue(text, "pyrund_job_duration_seconds_sum"), 1.9) << text;
  EXPECT_GT(sampleValue(text, "pyrund_received_bytes_total"), 0) << text;
  EXPECT_GT(sampleValue(text, "pyrund_sent_bytes_total"), 0) << text;
  EXPECT_GT(sampleValue(text, "pyrund_crl_next_update_timestamp_seconds"),
            static_cast<double>(::time(nullptr)))
      << text;
  EXPECT_EQ(sampleValue(text, "pyrund_policy_reloads_total{result=\"failed\"}"), 0) << text;
  EXPECT_EQ(sampleValue(text, "pyrund_draining"), 0) << text;

  // Prometheus's own checker accepts the exposition.
  if (::access("/usr/bin/promtool", X_OK) != 0) {
    GTEST_SKIP() << "promtool is not installed (apt-get install prometheus): not checked";
  }
  RunOptions with_text;
  with_text.stdin_data = text;
  auto checked = run({"/usr/bin/promtool", "check", "metrics"}, with_text);
  EXPECT_EQ(checked.exit_code, 0) << checked.out << checked.err;
}

TEST_F(MetricsIntegrationTest, HealthzTurns503WhileDrainingAndJobsFinish) {
  MetricsServer server(pki_);
  ASSERT_NE(server.metricsPort(), 0);
  EXPECT_EQ(httpRequest(server.metricsPort(), "GET", "/healthz").status, 200);
  const std::string alice = pki_.clientBundle("alice");
  Child job({binary("pyrun"), "--cert", alice, server.address(),
             server.script("drain.py",
                           "import time\nprint('started', flush=True)\n"
                           "time.sleep(1.5)\nprint('finished')\n")});
  ASSERT_NE(job.readStdoutUntil("started", 30s).find("started"), std::string::npos);
  server.process().signal(SIGTERM);
  Http health;
  ASSERT_TRUE(eventually(
      [&] {
        health = httpRequest(server.metricsPort(), "GET", "/healthz");
        return health.status == 503;
      },
      5s))
      << health.status << " " << health.body;
  EXPECT_EQ(health.body, "draining\n");
  Http metrics = httpRequest(server.metricsPort(), "GET", "/metrics");
  EXPECT_EQ(sampleValue(metrics.body, "pyrund_draining"), 1) << metrics.body;
  EXPECT_EQ(sampleValue(metrics.body, "pyrund_jobs_running"), 1) << metrics.body;
  // The running job keeps its grace period and ends by itself.
  auto ended = job.wait(30s);
  EXPECT_EQ(ended.exit_code, 0) << ended.err;
  EXPECT_NE(ended.out.find("finished"), std::string::npos) << ended.out;
  auto stopped = server.process().wait(30s);
  EXPECT_EQ(stopped.exit_code, 0) << stopped.err;
  // Once pyrund has stopped, nothing listens there any more.
  EXPECT_EQ(httpRequest(server.metricsPort(), "GET", "/healthz").status, 0);
}

TEST_F(MetricsIntegrationTest, UnknownPathIs404AndPostIs405) {
  MetricsServer server(pki_);
  ASSERT_NE(server.metricsPort(), 0);
  Http missing = httpRequest(server.metricsPort(), "GET", "/secret");
  EXPECT_EQ(missing.status, 404);
  Http post = httpRequest(server.metricsPort(), "POST", "/metrics");
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.headers.find("Allow: GET, HEAD"), std::string::npos) << post.headers;
  Http head = httpRequest(server.metricsPort(), "HEAD", "/metrics");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  Http ok = httpRequest(server.metricsPort(), "GET", "/metrics");
  EXPECT_NE(ok.headers.find("text/plain; version=0.0.4"), std::string::npos) << ok.headers;
}

TEST_F(MetricsIntegrationTest, BadMetricsListenIsAConfigurationError) {
  TempDir dir("metrics-bad");
  writeFile(dir / "pyrund.yaml", "policies:\n  default: " + std::string(PYRUN_SOURCE_DIR) +
                                     "/policy/default.yaml\nmetrics_listen: localhost\n");
  auto from_file = run({binary("pyrund"), "--config", dir / "pyrund.yaml", "--cert",
                        pki_.serverBundle(), "--jobs-dir", dir / "jobs"});
  EXPECT_EQ(from_file.exit_code, 2) << from_file.err;
  EXPECT_NE(from_file.err.find("pyrund.yaml:3:1: metrics_listen"), std::string::npos)
      << from_file.err;
  EXPECT_NE(from_file.err.find("expected ADDR:PORT"), std::string::npos) << from_file.err;
  auto from_flag = run({binary("pyrund"), "--config", dir / "pyrund.yaml", "--metrics-listen",
                        "[::1]", "--cert", pki_.serverBundle(), "--jobs-dir", dir / "jobs"});
  EXPECT_EQ(from_flag.exit_code, 2) << from_flag.err;
}

TEST_F(MetricsIntegrationTest, MetricsPortInUseStopsTheStart) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  TempDir dir("metrics-busy");
  ::chmod(dir.path().c_str(), 0711);
  writeFile(dir / "pyrund.yaml",
            "policies:\n  default: " + std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml\n");
  auto o = run({binary("pyrund"), "--config", dir / "pyrund.yaml", "--listen", "127.0.0.1",
                "--port", "0", "--metrics-listen", "127.0.0.1:" + std::to_string(ntohs(a.sin_port)),
                "--cert", pki_.serverBundle(), "--jobs-dir", dir / "jobs"});
  ::close(fd);
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_NE(o.err.find("metrics_listen: cannot listen on 127.0.0.1:"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace pyrun::test
