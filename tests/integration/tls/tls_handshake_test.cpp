// mTLS handshakes between our contexts and openssl s_client / s_server, and every refusal.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include "integration/tls/tls_peer.h"
#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"
#include "tls/tls.h"

namespace pyrun::test {
namespace {

using std::chrono::seconds;
constexpr char kGreeting[] = "ready from pyrun\n";
constexpr char kServerHello[] = "hello from s_server\n";

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.pop_back();
  return s;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One field of `openssl x509 -noout <option>`, the text after the first '='.
std::string x509Field(const std::string& pem, const std::vector<std::string>& options) {
  std::vector<std::string> argv = {"openssl", "x509", "-in", pem, "-noout"};
  argv.insert(argv.end(), options.begin(), options.end());
  Outcome o = run(argv);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  auto eq = o.out.find('=');
  return eq == std::string::npos ? std::string() : trim(o.out.substr(eq + 1));
}

// The identity of the first certificate in pem as the openssl CLI sees it, in PeerIdentity's form.
tls::PeerIdentity opensslIdentity(const std::string& pem) {
  tls::PeerIdentity id;
  std::string subject = x509Field(pem, {"-subject", "-nameopt", "RFC2253"});
  auto cn = subject.find("CN=");
  if (cn != std::string::npos)
    id.common_name = subject.substr(cn + 3, subject.find(',', cn) - cn - 3);
  std::string serial = lower(x509Field(pem, {"-serial"}));
  serial.erase(0, std::min(serial.find_first_not_of('0'), serial.size() - 1));
  id.serial = serial;
  std::string fingerprint = lower(x509Field(pem, {"-fingerprint", "-sha256"}));
  fingerprint.erase(std::remove(fingerprint.begin(), fingerprint.end(), ':'), fingerprint.end());
  id.fingerprint_sha256 = fingerprint;
  Outcome pin = run({"sh", "-c",
                     "openssl x509 -in '" + pem +
                         "' -noout -pubkey | openssl pkey -pubin -outform DER"
                         " | openssl dgst -sha256 -binary | base64"});
  EXPECT_EQ(pin.exit_code, 0) << pin.err;
  id.spki_pin = "sha256//" + trim(pin.out);
  return id;
}

void expectSameIdentity(const tls::PeerIdentity& ours, const tls::PeerIdentity& openssl) {
  EXPECT_EQ(ours.common_name, openssl.common_name);
  EXPECT_EQ(ours.serial, openssl.serial);
  EXPECT_EQ(ours.fingerprint_sha256, openssl.fingerprint_sha256);
  EXPECT_EQ(ours.spki_pin, openssl.spki_pin);
  EXPECT_EQ(ours.fingerprint_sha256.size(), 64u);
}

class TlsHandshakeTest : public ::testing::Test {
 protected:
  TlsHandshakeTest() : pki_(dir_.path()) {}

  std::shared_ptr<boost::asio::ssl::context> serverContext(bool with_crl = true) {
    tls::ServerConfig config;
    config.bundle_file = pki_.serverBundle();
    config.ca_file = pki_.caCert();
    if (with_crl) config.crl_file = pki_.crl();
    auto context = tls::makeServerContext(config);
    EXPECT_TRUE(context) << (context ? "" : context.error().detail());
    return context ? *context : nullptr;
  }

  std::shared_ptr<boost::asio::ssl::context> clientContext(const std::string& bundle) {
    auto context = tls::makeClientContext({.bundle_file = bundle, .ca_file = "", .pin = ""});
    EXPECT_TRUE(context) << (context ? "" : context.error().detail());
    return context ? *context : nullptr;
  }

  // openssl s_client against our server; extra arguments pick certificate, protocol and ALPN.
  // -ign_eof keeps it reading until the server closes, so it sees a TLS 1.3 rejection alert.
  Outcome sClient(unsigned short port, const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"openssl",
                                     "s_client",
                                     "-connect",
                                     "127.0.0.1:" + std::to_string(port),
                                     "-CAfile",
                                     pki_.caCert(),
                                     "-servername",
                                     "localhost",
                                     "-verify_return_error",
                                     "-ign_eof"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv, {.stdin_data = "", .env = {}, .cwd = "", .timeout = seconds(60)});
  }

  std::vector<std::string> withBundle(const std::string& bundle, std::vector<std::string> more) {
    more.insert(more.begin(), {"-cert", bundle, "-key", bundle});
    return more;
  }

  // openssl s_server for one connection with the issued server bundle, requiring a client
  // certificate; returns once it listens (its port in *port). It sends "hello from s_server".
  std::unique_ptr<Child> sServer(const std::vector<std::string>& extra, unsigned short* port) {
    std::vector<std::string> argv = {
        "openssl", "s_server",    "-accept",           "127.0.0.1:0", "-naccept",
        "1",       "-cert",       pki_.serverBundle(), "-key",        pki_.serverBundle(),
        "-CAfile", pki_.caCert(), "-Verify",           "2",           "-verify_return_error"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto child = std::make_unique<Child>(argv);
    child->writeStdin(kServerHello);
    // s_server flushes "ACCEPT 127.0.0.1:PORT\n" in one write once it listens; a pipe delivers a
    // write that small whole, so the line is complete when its start is seen.
    const std::string prefix = "ACCEPT 127.0.0.1:";
    std::string out = child->readStdoutUntil(prefix, seconds(30));
    auto at = out.find(prefix);
    *port = 0;
    if (at == std::string::npos || out.find('\n', at) == std::string::npos) {
      ADD_FAILURE() << "s_server did not report its port: " << out;
      return child;
    }
    *port = static_cast<unsigned short>(std::stoi(out.substr(at + prefix.size())));
    return child;
  }

  TempDir dir_{"tls"};
  Pki pki_;
};

// --- our server context, openssl s_client as the client ---

TEST_F(TlsHandshakeTest, OpensslClientCompletesMutualTlsWithOurServer) {
  std::string alice = pki_.clientBundle("alice");
  OneConnectionServer server(serverContext(), kGreeting);
  Outcome client = sClient(server.port(), withBundle(alice, {"-alpn", "pyrun/1"}));
  PeerOutcome seen = server.wait();

  ASSERT_TRUE(seen.handshake_ok) << seen.error;
  EXPECT_EQ(seen.error, "");
  ASSERT_TRUE(seen.peer.has_value());
  EXPECT_EQ(seen.peer->common_name, "alice");
  expectSameIdentity(*seen.peer, opensslIdentity(alice));
  EXPECT_NE(client.out.find(kGreeting), std::string::npos) << client.out << client.err;
  EXPECT_NE(client.out.find("TLSv1.3"), std::string::npos) << client.out;
  EXPECT_NE(client.out.find("ALPN protocol: pyrun/1"), std::string::npos) << client.out;
  EXPECT_NE(client.out.find("Verify return code: 0 (ok)"), std::string::npos) << client.out;
}

TEST_F(TlsHandshakeTest, RefusesClientWithoutCertificate) {
  OneConnectionServer server(serverContext(), kGreeting);
  Outcome client = sClient(server.port(), {"-alpn", "pyrun/1"});
  PeerOutcome seen = server.wait();

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("peer did not return a certificate"), std::string::npos) << seen.error;
  EXPECT_NE(client.err.find("alert certificate required"), std::string::npos) << client.err;
  EXPECT_EQ(client.out.find(kGreeting), std::string::npos);
}

TEST_F(TlsHandshakeTest, RefusesClientCertFromOtherCa) {
  TempDir other_dir("tls-other");
  Pki other(other_dir.path());
  std::string mallory = other.clientBundle("mallory");
  OneConnectionServer server(serverContext(), kGreeting);
  Outcome client = sClient(server.port(), withBundle(mallory, {"-alpn", "pyrun/1"}));
  PeerOutcome seen = server.wait();

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("client certificate: unable to get local issuer certificate"),
            std::string::npos)
      << seen.error;
  EXPECT_NE(client.err.find("alert unknown ca"), std::string::npos) << client.err;
  EXPECT_EQ(client.out.find(kGreeting), std::string::npos);
}

TEST_F(TlsHandshakeTest, RefusesExpiredClientCert) {
  std::string old = pki_.clientBundle(
      "old", {"--not-before", "2019-01-01T00:00:00Z", "--not-after", "2020-01-01T00:00:00Z"});
  OneConnectionServer server(serverContext(), kGreeting);
  Outcome client = sClient(server.port(), withBundle(old, {"-alpn", "pyrun/1"}));
  PeerOutcome seen = server.wait();

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("certificate has expired"), std::string::npos) << seen.error;
  EXPECT_NE(client.err.find("alert certificate expired"), std::string::npos) << client.err;
  EXPECT_EQ(client.out.find(kGreeting), std::string::npos);
}

TEST_F(TlsHandshakeTest, RefusesServerCertUsedAsClientCert) {
  OneConnectionServer server(serverContext(), kGreeting);
  Outcome client = sClient(server.port(), withBundle(pki_.serverBundle(), {"-alpn", "pyrun/1"}));
  PeerOutcome seen = server.wait();

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("unsupported certificate purpose"), std::string::npos) << seen.error;
  EXPECT_NE(client.err.find("alert unsupported certificate"), std::string::npos) << client.err;
  EXPECT_EQ(client.out.find(kGreeting), std::string::npos);
}

TEST_F(TlsHandshakeTest, RefusesRevokedClientCert) {
  std::string alice = pki_.clientBundle("alice");
  pki_.revoke("alice");
  OneConnectionServer server(serverContext(/*with_crl=*/true), kGreeting);
  Outcome client = sClient(server.port(), withBundle(alice, {"-alpn", "pyrun/1"}));
  PeerOutcome seen = server.wait();

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("client certificate: certificate revoked"), std::string::npos)
      << seen.error;
  EXPECT_NE(client.err.find("alert certificate revoked"), std::string::npos) << client.err;
  EXPECT_EQ(client.out.find(kGreeting), std::string::npos);
}

TEST_F(TlsHandshakeTest, RevokedClientIsAcceptedOnlyWithoutCrl) {
  // The CRL is what refuses a revoked certificate: without one configured it still verifies.
  // This pins RefusesRevokedClientCert to the CRL check rather than to something else.
  std::string alice = pki_.clientBundle("alice");
  pki_.revoke("alice");
  OneConnectionServer server(serverContext(/*with_crl=*/false), kGreeting);
  Outcome client = sClient(server.port(), withBundle(alice, {"-alpn", "pyrun/1"}));
  PeerOutcome seen = server.wait();
  EXPECT_TRUE(seen.handshake_ok) << seen.error;
}

TEST_F(TlsHandshakeTest, RefusesTls12) {
  std::string alice = pki_.clientBundle("alice");
  OneConnectionServer server(serverContext(), kGreeting);
  Outcome client = sClient(server.port(), withBundle(alice, {"-alpn", "pyrun/1", "-tls1_2"}));
  PeerOutcome seen = server.wait();

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("unsupported protocol"), std::string::npos) << seen.error;
  EXPECT_NE(client.err.find("alert protocol version"), std::string::npos) << client.err;
}

TEST_F(TlsHandshakeTest, RefusesWrongAlpn) {
  std::string alice = pki_.clientBundle("alice");
  OneConnectionServer server(serverContext(), kGreeting);
  Outcome client = sClient(server.port(), withBundle(alice, {"-alpn", "http/1.1"}));
  PeerOutcome seen = server.wait();

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("no application protocol"), std::string::npos) << seen.error;
  EXPECT_NE(client.err.find("alert no application protocol"), std::string::npos) << client.err;
}

TEST_F(TlsHandshakeTest, RefusesClientWithoutAlpn) {
  std::string alice = pki_.clientBundle("alice");
  OneConnectionServer server(serverContext(), kGreeting);
  Outcome client = sClient(server.port(), withBundle(alice, {}));
  PeerOutcome seen = server.wait();

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("no application protocol"), std::string::npos) << seen.error;
  EXPECT_NE(client.err.find("alert no application protocol"), std::string::npos) << client.err;
}

TEST_F(TlsHandshakeTest, NeverIssuesASessionTicket) {
  // A resumed session skips certificate verification and with it the CRL. In TLS 1.3 resumption
  // needs a ticket from the server: none may be sent, so s_client has no session to save.
  std::string alice = pki_.clientBundle("alice");
  std::string session = dir_ / "session.pem";
  OneConnectionServer server(serverContext(), kGreeting);
  Outcome client =
      sClient(server.port(), withBundle(alice, {"-alpn", "pyrun/1", "-sess_out", session}));
  PeerOutcome seen = server.wait();
  ASSERT_TRUE(seen.handshake_ok) << seen.error;
  EXPECT_NE(client.out.find(kGreeting), std::string::npos) << client.out;
  EXPECT_EQ(client.out.find("Session Ticket"), std::string::npos) << client.out;
  struct stat st {};
  EXPECT_NE(::stat(session.c_str(), &st), 0) << "s_client saved a resumable session";
}

// --- our client context, openssl s_server as the server ---

TEST_F(TlsHandshakeTest, OurClientCompletesMutualTlsWithOpensslServer) {
  std::string alice = pki_.clientBundle("alice");
  std::string pin = opensslIdentity(pki_.serverBundle()).spki_pin;
  unsigned short port = 0;
  auto server = sServer({"-alpn", "pyrun/1"}, &port);
  PeerOutcome seen = connectOnce(clientContext(alice), port, "localhost", kServerHello, pin);

  ASSERT_TRUE(seen.handshake_ok) << seen.error;
  ASSERT_TRUE(seen.peer.has_value()) << seen.error;
  expectSameIdentity(*seen.peer, opensslIdentity(pki_.serverBundle()));
  EXPECT_EQ(seen.peer->common_name, "localhost");
  EXPECT_NE(seen.received.find("hello from s_server"), std::string::npos) << seen.error;
  // s_server verified our client certificate on its side.
  Outcome s = server->wait(seconds(30));
  EXPECT_NE(s.err.find("depth=0 CN = alice"), std::string::npos) << s.out << s.err;
  EXPECT_EQ(s.err.find("verify error"), std::string::npos) << s.err;
}

TEST_F(TlsHandshakeTest, OurClientAcceptsServerByIpAddress) {
  std::string alice = pki_.clientBundle("alice");
  unsigned short port = 0;
  auto server = sServer({"-alpn", "pyrun/1"}, &port);
  PeerOutcome seen = connectOnce(clientContext(alice), port, "127.0.0.1", kServerHello);
  EXPECT_TRUE(seen.handshake_ok) << seen.error;
  EXPECT_NE(seen.received.find("hello from s_server"), std::string::npos) << seen.error;
}

TEST_F(TlsHandshakeTest, OurClientReportsHostnameMismatch) {
  std::string alice = pki_.clientBundle("alice");
  unsigned short port = 0;
  auto server = sServer({"-alpn", "pyrun/1"}, &port);
  PeerOutcome seen = connectOnce(clientContext(alice), port, "pyrun.example.org", kServerHello);

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("server certificate: hostname mismatch"), std::string::npos)
      << seen.error;
  EXPECT_EQ(seen.received, "");
}

TEST_F(TlsHandshakeTest, OurClientReportsIpAddressMismatch) {
  std::string alice = pki_.clientBundle("alice");
  unsigned short port = 0;
  auto server = sServer({"-alpn", "pyrun/1"}, &port);
  PeerOutcome seen = connectOnce(clientContext(alice), port, "192.0.2.1", kServerHello);

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("server certificate: IP address mismatch"), std::string::npos)
      << seen.error;
}

TEST_F(TlsHandshakeTest, OurClientRefusesWrongPin) {
  std::string alice = pki_.clientBundle("alice");
  // The CA's key is a real key that is not the server's.
  std::string wrong = opensslIdentity(pki_.caCert()).spki_pin;
  unsigned short port = 0;
  auto server = sServer({"-alpn", "pyrun/1"}, &port);
  PeerOutcome seen = connectOnce(clientContext(alice), port, "localhost", kServerHello, wrong);

  EXPECT_TRUE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("server key does not match pin " + wrong), std::string::npos)
      << seen.error;
  EXPECT_EQ(seen.received, "") << "nothing may be read from a server that fails the pin";
}

TEST_F(TlsHandshakeTest, OurClientRefusesServerWithoutAlpn) {
  // A TLS server that ignores ALPN completes the handshake; checkServer must still refuse it.
  std::string alice = pki_.clientBundle("alice");
  unsigned short port = 0;
  auto server = sServer({}, &port);
  PeerOutcome seen = connectOnce(clientContext(alice), port, "localhost", kServerHello);

  EXPECT_TRUE(seen.handshake_ok) << seen.error;
  EXPECT_NE(seen.error.find("did not agree to protocol pyrun/1"), std::string::npos) << seen.error;
  EXPECT_EQ(seen.received, "");
}

TEST_F(TlsHandshakeTest, OurClientReportsServerWithOtherAlpn) {
  std::string alice = pki_.clientBundle("alice");
  unsigned short port = 0;
  auto server = sServer({"-alpn", "other/1"}, &port);
  PeerOutcome seen = connectOnce(clientContext(alice), port, "localhost", kServerHello);

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_EQ(seen.error,
            "TLS handshake failed: no application protocol (pyrun/1 is required) (reported by "
            "the server)");
  EXPECT_EQ(seen.received, "");
}

TEST_F(TlsHandshakeTest, OurClientRefusesTls12Server) {
  std::string alice = pki_.clientBundle("alice");
  unsigned short port = 0;
  auto server = sServer({"-alpn", "pyrun/1", "-tls1_2"}, &port);
  PeerOutcome seen = connectOnce(clientContext(alice), port, "localhost", kServerHello);

  EXPECT_FALSE(seen.handshake_ok);
  EXPECT_NE(seen.error.find("unsupported protocol"), std::string::npos) << seen.error;
}

TEST_F(TlsHandshakeTest, OurClientLearnsOfRevocationOnFirstRead) {
  std::string alice = pki_.clientBundle("alice");
  pki_.revoke("alice");
  unsigned short port = 0;
  auto server = sServer({"-alpn", "pyrun/1", "-crl_check", "-CRL", pki_.crl()}, &port);
  PeerOutcome seen = connectOnce(clientContext(alice), port, "localhost", kServerHello);

  // TLS 1.3: our side of the handshake completes; the server's verdict is the first read.
  EXPECT_TRUE(seen.handshake_ok);
  EXPECT_EQ(seen.error, "TLS handshake failed: certificate revoked (reported by the server)");
  EXPECT_EQ(seen.received, "");
}

// --- both ends ours ---

TEST_F(TlsHandshakeTest, OurClientAndServerAgreeOnIdentities) {
  std::string alice = pki_.clientBundle("alice");
  OneConnectionServer server(serverContext(), kGreeting);
  PeerOutcome client = connectOnce(clientContext(alice), server.port(), "localhost", kGreeting,
                                   opensslIdentity(pki_.serverBundle()).spki_pin);
  PeerOutcome seen = server.wait();

  ASSERT_TRUE(seen.handshake_ok) << seen.error;
  ASSERT_TRUE(client.handshake_ok) << client.error;
  EXPECT_EQ(client.error, "");
  EXPECT_EQ(client.received, kGreeting);
  ASSERT_TRUE(seen.peer && client.peer);
  expectSameIdentity(*seen.peer, opensslIdentity(alice));
  expectSameIdentity(*client.peer, opensslIdentity(pki_.serverBundle()));
}

TEST_F(TlsHandshakeTest, BothEndsNameTheRevocation) {
  std::string alice = pki_.clientBundle("alice");
  pki_.revoke("alice");
  OneConnectionServer server(serverContext(), kGreeting);
  PeerOutcome client = connectOnce(clientContext(alice), server.port(), "localhost", kGreeting);
  PeerOutcome seen = server.wait();

  EXPECT_EQ(seen.error, "TLS handshake failed: client certificate: certificate revoked");
  EXPECT_EQ(client.error, "TLS handshake failed: certificate revoked (reported by the server)");
}

TEST_F(TlsHandshakeTest, RefusesOpenBundleBeforeAnyConnection) {
  std::string alice = pki_.clientBundle("alice");
  ASSERT_EQ(::chmod(alice.c_str(), 0644), 0);
  auto client = tls::makeClientContext({.bundle_file = alice, .ca_file = "", .pin = ""});
  ASSERT_FALSE(client);
  EXPECT_TRUE(client.error().is(Errc::kPermission));
  EXPECT_EQ(client.error().detail(), "bundle " + alice +
                                         " has mode 0644: it must not be accessible by group or "
                                         "others (chmod 600 " +
                                         alice + ")");

  std::string server_bundle = pki_.serverBundle();
  ASSERT_EQ(::chmod(server_bundle.c_str(), 0640), 0);
  auto server =
      tls::makeServerContext({.bundle_file = server_bundle, .ca_file = "", .crl_file = ""});
  ASSERT_FALSE(server);
  EXPECT_TRUE(server.error().is(Errc::kPermission)) << server.error().detail();
}

}  // namespace
}  // namespace pyrun::test
