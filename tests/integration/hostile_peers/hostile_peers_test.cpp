// pyrund against hostile peers: refused TLS clients (each refused, logged once, and the next good
// client served) and protocol abuse after authentication (each session ended, others untouched).
// The hostile side is hostile.py (and openssl s_client for TLS 1.2); the good side is the real
// pyrun client. Every test starts its own pyrund on 127.0.0.1 port 0 with a PKI made by pyrun-ca.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <sstream>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPython = "/usr/bin/python3";

// Lines of text that contain every one of the needles.
size_t countLines(const std::string& text, const std::vector<std::string>& needles) {
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    bool all = true;
    for (const auto& needle : needles) all = all && line.find(needle) != std::string::npos;
    if (all) ++n;
  }
  return n;
}

class HostilePeersTest : public ::testing::Test {
 protected:
  // Starts pyrund with the repository's default policy, the CA's CRL, short deadlines (so that
  // slow peers are cut off quickly) and extra config lines; waits for its port file.
  void startServer(const std::string& extra_yaml = "") {
    // Jobs run under their own uids when the test runs as root: they must reach their working
    // directory below this one.
    ::chmod(dir_.path().c_str(), 0711);
    writeFile(dir_ / "pyrund.yaml",
              "listen: 127.0.0.1\nport: 0\nport_file: " + (dir_ / "port") + "\ncert: " +
                  pki_.serverBundle() + "\ncrl: " + pki_.crl() + "\njobs_dir: " + (dir_ / "jobs") +
                  "\npolicies:\n  default: " + PYRUN_SOURCE_DIR "/policy/default.yaml\n" +
                  "identities:\n  default: default\n" + "handshake_timeout_seconds: 1\n" +
                  "idle_timeout_seconds: 2\n" + extra_yaml);
    // Under ASan, freed memory sits in a quarantine of up to 256 MiB that would count as the
    // front's growth in the memory-bound test: keep it small so the measure is pyrund's own.
    RunOptions server_options;
    const char* asan = std::getenv("ASAN_OPTIONS");
    std::string asan_options = asan != nullptr ? asan : "";
    server_options.env["ASAN_OPTIONS"] =
        asan_options + (asan_options.empty() ? "" : ":") + "quarantine_size_mb=1";
    server_ = std::make_unique<Child>(
        std::vector<std::string>{binary("pyrund"), "--config", dir_ / "pyrund.yaml"},
        server_options);
    ASSERT_TRUE(eventually([&] { return !readFileOrEmpty(dir_ / "port").empty(); }, 30s))
        << server_->wait(1s).err;
    port_ = std::stoi(readFileOrEmpty(dir_ / "port"));
    log_ = server_->readStderrUntil("listening on", 30s);
  }

  // Runs hostile.py SCENARIO against the server with `cert` as the hostile identity and bob as
  // the bystander; expects it to print OK.
  void expectScenario(const std::string& scenario, const std::string& cert) {
    std::vector<std::string> argv = {kPython, HOSTILE_PY, scenario, "--port", std::to_string(port_),
                                     "--ca", pki_.caCert(), "--good", bob_,
                                     "--server-pid", std::to_string(server_->pid())};
    if (!cert.empty()) {
      argv.push_back("--cert");
      argv.push_back(cert);
    }
    RunOptions options;
    options.timeout = 180s;
    auto out = run(argv, options);
    EXPECT_EQ(out.exit_code, 0) << out.out << out.err << "\npyrund's log:\n" << serverLog();
    EXPECT_EQ(out.out, "OK\n") << out.err;
  }

  // What pyrund logged so far (reads what is waiting, without blocking for long).
  std::string serverLog() { return log_ = server_->readStderrUntil("\x01never\x01", 1s); }

  // A real job with the real client: exact output and exit status. Returns the log up to the
  // server's line for that job's end, so that everything logged for earlier peers is in it.
  std::string expectGoodJobServed() {
    const std::string token = "served-" + std::to_string(++good_jobs_);
    writeFile(dir_ / "good.py", "import sys\nprint(sys.argv[1])\nsys.exit(5)\n");
    auto out = run({binary("pyrun"), "--cert", bob_, "127.0.0.1:" + std::to_string(port_),
                    dir_ / "good.py", token});
    EXPECT_EQ(out.exit_code, 5) << out.err << "\npyrund's log:\n" << serverLog();
    EXPECT_EQ(out.out, token + "\n") << out.err;
    log_ = server_->readStderrUntil("ended: exit 5, ok", 60s);
    const size_t ends = countLines(log_, {"ended: exit 5, ok"});
    EXPECT_GE(ends, static_cast<size_t>(good_jobs_)) << log_;
    return log_;
  }

  // After a refused attempt: one log line names the refusal and its reason; no other connection
  // failure was logged; and the next good client is served.
  void expectRefusedOnceThenServed(const std::string& reason) {
    std::string log = expectGoodJobServed();
    EXPECT_EQ(countLines(log, {"connection from 127.0.0.1:", "failed"}), 1u) << log;
    EXPECT_EQ(countLines(log, {"connection from 127.0.0.1:", "failed", reason}), 1u) << log;
    EXPECT_EQ(countLines(log, {"[E]"}), 0u) << log;
  }

  TempDir dir_{"hostile"};
  Pki pki_{dir_.path()};
  std::string alice_ = pki_.clientBundle("alice");
  std::string bob_ = pki_.clientBundle("bob");
  std::unique_ptr<Child> server_;
  int port_ = 0;
  std::string log_;
  int good_jobs_ = 0;
};

// ---- before authentication ----

TEST_F(HostilePeersTest, RefusesRawGarbage) {
  startServer();
  expectScenario("garbage", "");
  expectRefusedOnceThenServed("TLS handshake failed: wrong version number");
}

TEST_F(HostilePeersTest, RefusesPlaintextHttpRequest) {
  startServer();
  expectScenario("http", "");
  expectRefusedOnceThenServed("TLS handshake failed: http request");
}

TEST_F(HostilePeersTest, RefusesTls12OnlyClient) {
  startServer();
  // A valid certificate and the right ALPN, so that the protocol version is the only fault.
  RunOptions options;
  options.timeout = 60s;
  auto out = run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port_),
                  "-tls1_2", "-alpn", "pyrun/1", "-cert", alice_, "-CAfile", pki_.caCert()},
                 options);
  EXPECT_NE(out.exit_code, 0) << out.out;
  EXPECT_NE(out.err.find("alert protocol version"), std::string::npos) << out.err;
  expectRefusedOnceThenServed("TLS handshake failed: unsupported protocol");
}

TEST_F(HostilePeersTest, RefusesClientWithoutCertificate) {
  startServer();
  expectScenario("refused_tls", "");
  expectRefusedOnceThenServed("peer did not return a certificate");
}

TEST_F(HostilePeersTest, RefusesCertificateFromAnotherCa) {
  TempDir other_dir("hostile-other-ca");
  Pki other(other_dir.path());
  // Same CN as a legitimate client: only the issuer differs.
  std::string forged = other.clientBundle("bob");
  startServer();
  expectScenario("refused_tls", forged);
  // The forged bundle carries its own root, so OpenSSL names the untrusted self-signed root
  // rather than a missing issuer.
  expectRefusedOnceThenServed("client certificate: self-signed certificate in certificate chain");
}

TEST_F(HostilePeersTest, RefusesExpiredCertificate) {
  std::string old = pki_.clientBundle(
      "old", {"--not-before", "2020-01-01T00:00:00Z", "--not-after", "2020-02-01T00:00:00Z"});
  startServer();
  expectScenario("refused_tls", old);
  expectRefusedOnceThenServed("certificate has expired");
}

TEST_F(HostilePeersTest, RefusesNotYetValidCertificate) {
  std::string early = pki_.clientBundle(
      "early", {"--not-before", "2030-01-01T00:00:00Z", "--not-after", "2030-02-01T00:00:00Z"});
  startServer();
  expectScenario("refused_tls", early);
  expectRefusedOnceThenServed("not yet valid");
}

TEST_F(HostilePeersTest, RefusesCertificateRevokedBeforeStart) {
  pki_.revoke("alice");
  startServer();
  expectScenario("refused_tls", alice_);
  expectRefusedOnceThenServed("certificate revoked");
}

TEST_F(HostilePeersTest, RefusesCertificateRevokedWhileRunningAfterSighup) {
  startServer();
  expectScenario("good", alice_);  // alice is admitted before the revocation
  const size_t reloads = countLines(log_, {"CRL reloaded from"});
  pki_.revoke("alice");
  server_->signal(SIGHUP);
  log_ = server_->readStderrUntil("CRL reloaded from", 30s);
  ASSERT_TRUE(eventually(
      [&] {
        log_ = server_->readStderrUntil("CRL reloaded from", 1s);
        return countLines(log_, {"CRL reloaded from"}) > reloads;
      },
      30s))
      << log_;
  expectScenario("refused_tls", alice_);
  expectRefusedOnceThenServed("certificate revoked");
}

TEST_F(HostilePeersTest, RefusesServerCertificateUsedAsClientCertificate) {
  startServer();
  expectScenario("refused_tls", pki_.serverBundle());
  expectRefusedOnceThenServed("unsupported certificate purpose");
}

TEST_F(HostilePeersTest, ClosesTcpConnectionThatNeverStartsTls) {
  startServer();
  expectScenario("slow_tcp", "");
  expectRefusedOnceThenServed("no TLS handshake within 1 s");
}

TEST_F(HostilePeersTest, ClosesHandshakeStalledAfterClientHello) {
  startServer();
  expectScenario("slow_client_hello", alice_);
  expectRefusedOnceThenServed("no TLS handshake within 1 s");
}

// ---- after authentication: each runs next to a bystander session checked byte for byte ----

TEST_F(HostilePeersTest, OversizeFrameGetsBadFrameBeforeAllocation) {
  startServer();
  expectScenario("oversize_frame", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, TruncatedFrameThenCloseEndsOnlyThatSession) {
  startServer();
  expectScenario("truncated_frame", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, UnknownFrameTypesGetBadFrame) {
  startServer();
  expectScenario("unknown_type", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, FramesOutOfOrderGetUnexpectedFrame) {
  startServer();
  expectScenario("out_of_order", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, NeverEndingUploadIsCutByTheRequestDeadline) {
  startServer();
  expectScenario("endless_upload", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, SilentClientAfterHandshakeGetsTimeout) {
  startServer();
  expectScenario("slow_after_handshake", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, ClientThatNeverReadsOutputBlocksOnlyItsJob) {
  startServer();
  expectScenario("never_reads_output", alice_);
  expectGoodJobServed();
}

}  // namespace
}  // namespace pyrun::test
