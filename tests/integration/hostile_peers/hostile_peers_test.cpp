// pyrund against hostile peers: refused TLS clients (each refused, logged once, and the next good
// client served) and protocol abuse after authentication (each session ended, others untouched).
// The hostile side is hostile.py (and openssl s_client for TLS 1.2); the good side is the real
// pyrun client. Every test starts its own pyrund on 127.0.0.1 port 0 with a PKI made by pyrun-ca.
#include <arpa/inet.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/dir.h"
#include "support/pki.h"
#include "support/process.h"
#include "support/pyrund.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPython = "/usr/bin/python3";

class HostilePeersTest : public ::testing::Test {
 protected:
  // Starts pyrund with the repository's default policy, the CA's CRL, short deadlines (so that
  // slow peers are cut off quickly) and extra config lines; waits for its port file. Call it as
  // ASSERT_NO_FATAL_FAILURE(startServer(...)): a server that did not start ends the test.
  void startServer(const std::string& extra_yaml = "", int handshake_timeout_seconds = 1,
                   int idle_timeout_seconds = 2) {
    PyrundOptions o;
    o.cert = pki_.serverBundle();
    o.crl = pki_.crl();
    o.config_yaml = "policies:\n  default: " PYRUN_SOURCE_DIR
                    "/policy/default.yaml\n"
                    "identities:\n  default: default\nhandshake_timeout_seconds: " +
                    std::to_string(handshake_timeout_seconds) +
                    "\nidle_timeout_seconds: " + std::to_string(idle_timeout_seconds) +
                    "\nwrite_stall_timeout_seconds: " + std::to_string(idle_timeout_seconds) +
                    "\n" + extra_yaml;
    // The memory-bound test measures the front's growth.
    o.run.env["ASAN_OPTIONS"] = asanOptionsForMemoryMeasures();
    o.stop_signal = SIGKILL;
    pyrund_.reset();
    pyrund_ = std::make_unique<Pyrund>(dir_.path(), o);
    ASSERT_TRUE(pyrund_->started()) << pyrund_->startError();
    server_ = &pyrund_->process();
    port_ = pyrund_->port();
    log_ = server_->readStderrUntil("listening on", 30s);
  }

  // Runs hostile.py SCENARIO against the server with `cert` as the hostile identity and bob as
  // the bystander; expects it to print OK.
  void expectScenario(const std::string& scenario, const std::string& cert) {
    std::vector<std::string> argv = {
        kPython,       HOSTILE_PY, scenario, "--port",       std::to_string(port_),         "--ca",
        pki_.caCert(), "--good",   bob_,     "--server-pid", std::to_string(server_->pid())};
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
  std::unique_ptr<Pyrund> pyrund_;
  Child* server_ = nullptr;  // pyrund_'s process
  int port_ = 0;
  std::string log_;
  int good_jobs_ = 0;
};

// ---- before authentication ----

TEST_F(HostilePeersTest, RefusesRawGarbage) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("garbage", "");
  expectRefusedOnceThenServed("TLS handshake failed: wrong version number");
}

TEST_F(HostilePeersTest, RefusesPlaintextHttpRequest) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("http", "");
  expectRefusedOnceThenServed("TLS handshake failed: http request");
}

TEST_F(HostilePeersTest, RefusesTls12OnlyClient) {
  ASSERT_NO_FATAL_FAILURE(startServer());
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
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("refused_tls", "");
  expectRefusedOnceThenServed("peer did not return a certificate");
}

TEST_F(HostilePeersTest, RefusesCertificateFromAnotherCa) {
  TempDir other_dir("hostile-other-ca");
  Pki other(other_dir.path());
  // Same CN as a legitimate client: only the issuer differs.
  std::string forged = other.clientBundle("bob");
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("refused_tls", forged);
  // The forged bundle carries its own root, so OpenSSL names the untrusted self-signed root
  // rather than a missing issuer.
  expectRefusedOnceThenServed("client certificate: self-signed certificate in certificate chain");
}

TEST_F(HostilePeersTest, RefusesExpiredCertificate) {
  std::string old = pki_.clientBundle(
      "old", {"--not-before", "2020-01-01T00:00:00Z", "--not-after", "2020-02-01T00:00:00Z"});
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("refused_tls", old);
  expectRefusedOnceThenServed("certificate has expired");
}

TEST_F(HostilePeersTest, RefusesNotYetValidCertificate) {
  std::string early = pki_.clientBundle(
      "early", {"--not-before", "2030-01-01T00:00:00Z", "--not-after", "2030-02-01T00:00:00Z"});
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("refused_tls", early);
  expectRefusedOnceThenServed("not yet valid");
}

TEST_F(HostilePeersTest, RefusesCertificateRevokedBeforeStart) {
  pki_.revoke("alice");
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("refused_tls", alice_);
  expectRefusedOnceThenServed("certificate revoked");
}

TEST_F(HostilePeersTest, RefusesCertificateRevokedWhileRunningAfterSighup) {
  ASSERT_NO_FATAL_FAILURE(startServer());
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
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("refused_tls", pki_.serverBundle());
  expectRefusedOnceThenServed("unsupported certificate purpose");
}

TEST_F(HostilePeersTest, ClosesTcpConnectionThatNeverStartsTls) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("slow_tcp", "");
  expectRefusedOnceThenServed("no TLS handshake within 1 s");
}

TEST_F(HostilePeersTest, ClosesHandshakeStalledAfterClientHello) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("slow_client_hello", alice_);
  expectRefusedOnceThenServed("no TLS handshake within 1 s");
}

// ---- after authentication: each runs next to a bystander session checked byte for byte ----

TEST_F(HostilePeersTest, OversizeFrameGetsBadFrameBeforeAllocation) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("oversize_frame", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, TruncatedFrameThenCloseEndsOnlyThatSession) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("truncated_frame", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, UnknownFrameTypesGetBadFrame) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("unknown_type", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, FramesOutOfOrderGetUnexpectedFrame) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("out_of_order", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, NeverEndingUploadIsCutByTheRequestDeadline) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("endless_upload", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, SilentClientAfterHandshakeGetsTimeout) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("slow_after_handshake", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, ClientThatNeverReadsOutputBlocksOnlyItsJob) {
  // An idle timeout far above the scenario's length: the stall limit is the next test's subject.
  ASSERT_NO_FATAL_FAILURE(startServer("", 1, 600));
  expectScenario("never_reads_output", alice_);
  expectGoodJobServed();
}

TEST_F(HostilePeersTest, ClientThatStopsReadingIsCutOffAfterTheIdleTimeout) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  expectScenario("stops_reading", alice_);
  std::string log = expectGoodJobServed();
  EXPECT_EQ(countLines(log, {"read nothing for 2 s; closing the connection and killing job"}), 1u)
      << log;
  EXPECT_EQ(countLines(log, {"went away"}), 0u) << log;
}

TEST_F(HostilePeersTest, OneByteStdinFramesCannotInflateTheFrontsMemory) {
  startServer("", 1, 600);
  expectScenario("tiny_stdin_frames", alice_);
  expectGoodJobServed();
}

// ---- caps before authentication: refusal beyond each cap, service again below it ----

TEST_F(HostilePeersTest, ConnectionsOverTheCapAreRefusedUntilOneCloses) {
  ASSERT_NO_FATAL_FAILURE(startServer("max_connections: 2\n", 60, 60));
  expectScenario("connection_cap", alice_);
  std::string log = server_->readStderrUntil("accepting again", 30s);
  // One line per burst of refusals (a retry that comes before the server saw a close starts
  // another burst).
  EXPECT_GE(countLines(log, {"refusing connections: too many open connections (2)"}), 1u) << log;
  EXPECT_GE(countLines(log, {"connections over the caps; accepting again"}), 1u) << log;
}

TEST_F(HostilePeersTest, HandshakesOverTheGlobalCapAreRefusedUntilOneEnds) {
  ASSERT_NO_FATAL_FAILURE(startServer("max_handshakes: 2\nmax_handshakes_per_source: 8\n", 60, 60));
  expectScenario("handshake_cap", alice_);
  std::string log = server_->readStderrUntil("accepting again", 30s);
  EXPECT_GE(countLines(log, {"refusing connections: too many TLS handshakes in progress (2)"}), 1u)
      << log;
  EXPECT_GE(countLines(log, {"connections over the caps; accepting again"}), 1u) << log;
}

TEST_F(HostilePeersTest, HandshakesOverThePerSourceCapAreRefusedUntilOneEnds) {
  ASSERT_NO_FATAL_FAILURE(
      startServer("max_handshakes: 64\nmax_handshakes_per_source: 2\n", 60, 60));
  expectScenario("source_cap", alice_);
  std::string log = server_->readStderrUntil("accepting again", 30s);
  EXPECT_GE(countLines(log, {"refusing connections: too many TLS handshakes in progress from "
                             "127.0.0.1 (2)"}),
            1u)
      << log;
}

// Descriptors of a process (what RLIMIT_NOFILE counts).
size_t openDescriptors(pid_t pid) {
  auto entries = listDirectory("/proc/" + std::to_string(pid) + "/fd");
  return entries ? entries->size() : 0;
}

// Sets RLIMIT_NOFILE of the front. Without CAP_SYS_RESOURCE only a process of the same user may:
// when the test runs as root, the front has become "nobody" (pyrund's default `user`), and a
// child of the test becomes nobody too to do it.
bool lowerOpenFileLimit(pid_t front, rlim_t limit) {
  const rlimit low{limit, limit};
  if (::geteuid() != 0) return ::prlimit(front, RLIMIT_NOFILE, &low, nullptr) == 0;
  const passwd* nobody = ::getpwnam("nobody");
  if (nobody == nullptr) return false;
  const uid_t uid = nobody->pw_uid;
  const gid_t gid = nobody->pw_gid;
  pid_t child = ::fork();
  if (child == 0) {
    bool ok = ::setgroups(0, nullptr) == 0 && ::setresgid(gid, gid, gid) == 0 &&
              ::setresuid(uid, uid, uid) == 0 &&
              ::prlimit(front, RLIMIT_NOFILE, &low, nullptr) == 0;
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

TEST_F(HostilePeersTest, AcceptFailingWithEmfileBacksOffAndRecovers) {
#if defined(__SANITIZE_ADDRESS__)
  // The sanitizer build adds UBSan, whose vptr check probes memory through a pipe of its own: out
  // of descriptors it takes any polymorphic object (Boost's error categories, on the failed
  // accept) for an invalid one, and -fno-sanitize-recover makes that report fatal, suppressions
  // included. What runs out of descriptors cannot be observed under it.
  GTEST_SKIP() << "UBSan's vptr check itself needs file descriptors";
#endif
  ASSERT_NO_FATAL_FAILURE(
      startServer("max_handshakes: 1000\nmax_handshakes_per_source: 1000\n", 60, 60));
  // The front alone (not the spawner, whose jobs need descriptors) gets room for a few more
  // descriptors than it holds now: enough for one job (its socket, three pipes, the spec's
  // memfd), too few for the connections below.
  const pid_t front = server_->pid();
  ASSERT_TRUE(lowerOpenFileLimit(front, openDescriptors(front) + 8));
  std::vector<int> held;
  for (int i = 0; i < 24; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port_));
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    held.push_back(fd);
  }
  std::string log = server_->readStderrUntil("accept failed", 30s);
  EXPECT_NE(log.find("accept failed: Too many open files; retrying every 100 ms"),
            std::string::npos)
      << log;
  // Still there (a zombie would not count).
  std::string stat = readFileOrEmpty("/proc/" + std::to_string(front) + "/stat");
  ASSERT_FALSE(stat.empty());
  EXPECT_NE(stat[stat.rfind(')') + 2], 'Z') << stat;
  for (int fd : held) ::close(fd);
  log = server_->readStderrUntil("accepting again after", 30s);
  EXPECT_NE(log.find("accepting again after"), std::string::npos) << log;
  expectGoodJobServed();
}

}  // namespace
}  // namespace pyrun::test
