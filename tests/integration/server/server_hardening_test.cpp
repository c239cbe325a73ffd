// pyrund facing hostile or unlucky conditions: policies per identity and their reload, revocation
// while running, pre-authentication deadlines and caps, per-identity quotas, SIGTERM and SIGKILL,
// and the audit log. Each test runs a real pyrund on loopback.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/dir.h"
#include "pyrund_fixture.h"

namespace pyrun::test {
namespace {

// Limits of policy/strict.yaml and policy/default.yaml as STARTED reports them (cpu, wall,
// memory, output).
const std::vector<std::string> kStrictLimits{"5", "20", "268435456", "4194304"};
const std::vector<std::string> kDefaultLimits{"10", "60", "536870912", "16777216"};

std::string strictPolicies() {
  return "policies:\n  default: " PYRUN_SOURCE_DIR
         "/policy/default.yaml\n  strict: " PYRUN_SOURCE_DIR "/policy/strict.yaml\n";
}

std::vector<std::string> entriesOf(const std::string& path) {
  std::vector<std::string> out;
  if (auto entries = listDirectory(path)) {
    for (auto& e : *entries) out.push_back(std::move(e.name));
  }
  return out;
}

// True if some process has `token` in its command line.
bool processWithToken(const std::string& token) {
  for (const auto& pid : entriesOf("/proc")) {
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = readFileOrEmpty("/proc/" + pid + "/cmdline");
    if (cmdline.find(token) != std::string::npos) return true;
  }
  return false;
}

// Replaces path with a copy of from (rename over it, as pyrun-ca does).
void copyFile(const std::string& from, const std::string& path) {
  writeFile(path + ".new", readFileOrEmpty(from), 0644);
  ASSERT_EQ(std::rename((path + ".new").c_str(), path.c_str()), 0);
}

TEST_F(PyrundTest, EachIdentityGetsItsPolicysLimits) {
  ASSERT_NO_FATAL_FAILURE(startServer(
      strictPolicies() + "identities:\n  default: default\n  clients:\n    alice: strict\n",
      false));
  expectScenario("started_limits", kStrictLimits);
  expectScenario("started_limits", kDefaultLimits, pki_.clientBundle("bob"));
}

TEST_F(PyrundTest, ClientWithoutPolicyIsRefusedInPlainWords) {
  ASSERT_NO_FATAL_FAILURE(
      startServer(strictPolicies() + "identities:\n  clients:\n    alice: strict\n", false));
  // No default: bob has no policy. The scenario expects a refusal before READY.
  RunOptions options;
  auto out = run(scenarioArgv("started_limits", kDefaultLimits, pki_.clientBundle("bob")), options);
  EXPECT_NE(out.exit_code, 0);
  EXPECT_NE(out.out.find("no policy for client"), std::string::npos) << out.out << out.err;
}

TEST_F(PyrundTest, InvalidPolicyStopsTheStartWithFileLineColumn) {
  writeFile(dir_ / "broken.yaml", "version: 1\nlimits:\n  cpu_secnds: 3\n");
  writeFile(dir_ / "pyrund.yaml",
            configText("policies:\n  default: " + (dir_ / "broken.yaml") + "\n", false));
  auto out = run({binary("pyrund"), "--config", dir_ / "pyrund.yaml"});
  EXPECT_EQ(out.exit_code, 2) << out.err;
  EXPECT_NE(out.err.find("pyrund: " + (dir_ / "broken.yaml") + ":3:3: unknown key"),
            std::string::npos)
      << out.err;
  EXPECT_TRUE(readFileOrEmpty(dir_ / "port").empty());
}

// StrictModes: root reads the config and the policies; a file that others could have written
// stops the start, named with the reason.
TEST_F(PyrundTest, ConfigOthersCanWriteStopsTheStart) {
  writeFile(dir_ / "pyrund.yaml", configText(""), 0664);
  auto out = run({binary("pyrund"), "--config", dir_ / "pyrund.yaml"});
  EXPECT_EQ(out.exit_code, 2) << out.err;
  EXPECT_NE(out.err.find("pyrund: refusing " + (dir_ / "pyrund.yaml") + ": " +
                         (dir_ / "pyrund.yaml") + " is writable by its group (mode 0664)"),
            std::string::npos)
      << out.err;
  EXPECT_TRUE(readFileOrEmpty(dir_ / "port").empty());
}

TEST_F(PyrundTest, PolicyOthersCanWriteStopsTheStart) {
  writeFile(dir_ / "pyrund.yaml", configText(""));
  ASSERT_EQ(::chmod((dir_ / "default.yaml").c_str(), 0666), 0);
  auto out = run({binary("pyrund"), "--config", dir_ / "pyrund.yaml"});
  EXPECT_NE(out.exit_code, 0) << out.err;
  EXPECT_NE(out.err.find("refusing " + (dir_ / "default.yaml") + ": " + (dir_ / "default.yaml") +
                         " is writable by everyone (mode 0666)"),
            std::string::npos)
      << out.err;
  EXPECT_TRUE(readFileOrEmpty(dir_ / "port").empty());
}

// Refused before it is read: root opens nothing a policy others could write names, and none of
// an included file's content reaches the diagnostics.
TEST_F(PyrundTest, PolicyOthersCanWriteIsRefusedUnread) {
  writeFile(dir_ / "secret.yaml", "password: hunter2\n", 0600);
  writeFile(dir_ / "p.yaml", "version: 1\ninclude: [secret.yaml]\n", 0666);
  writeFile(dir_ / "pyrund.yaml",
            configText("policies:\n  default: " + (dir_ / "p.yaml") + "\n", false));
  auto out = run({binary("pyrund"), "--config", dir_ / "pyrund.yaml"});
  EXPECT_NE(out.exit_code, 0) << out.err;
  EXPECT_NE(out.err.find("refusing " + (dir_ / "p.yaml") + ": " + (dir_ / "p.yaml") +
                         " is writable by everyone (mode 0666)"),
            std::string::npos)
      << out.err;
  EXPECT_EQ(out.err.find("password"), std::string::npos) << out.err;
  EXPECT_TRUE(readFileOrEmpty(dir_ / "port").empty());
}

TEST_F(PyrundTest, IdentityNamingAMissingPolicyStopsTheStart) {
  writeFile(dir_ / "pyrund.yaml", configText("identities:\n  clients:\n    alice: nosuch\n"));
  auto out = run({binary("pyrund"), "--config", dir_ / "pyrund.yaml"});
  EXPECT_EQ(out.exit_code, 2) << out.err;
  EXPECT_NE(out.err.find("unknown policy \"nosuch\""), std::string::npos) << out.err;
}

// The steps after the spawner's fork stop the start as the earlier ones do: exit status 1, the
// reason on stderr, no port announced (run() returns: the spawner went with pyrund).
TEST_F(PyrundTest, AuditLogThatCannotBeOpenedStopsTheStart) {
  writeFile(dir_ / "pyrund.yaml",
            configText("audit_log: " + (dir_ / "no-such-dir/audit.log") + "\n"));
  auto out = run({binary("pyrund"), "--config", dir_ / "pyrund.yaml"});
  EXPECT_EQ(out.exit_code, 1) << out.err;
  EXPECT_NE(out.err.find("pyrund: "), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("audit.log"), std::string::npos) << out.err;
  EXPECT_TRUE(readFileOrEmpty(dir_ / "port").empty());
}

TEST_F(PyrundTest, PortFileThatCannotBeWrittenStopsTheStart) {
  std::string text = configText("");
  const std::string port_line = "port_file: " + (dir_ / "port");
  text.replace(text.find(port_line), port_line.size(), "port_file: " + (dir_ / "no-such-dir/port"));
  writeFile(dir_ / "pyrund.yaml", text);
  auto out = run({binary("pyrund"), "--config", dir_ / "pyrund.yaml"});
  EXPECT_EQ(out.exit_code, 1) << out.err;
  EXPECT_NE(out.err.find("pyrund: "), std::string::npos) << out.err;
  EXPECT_NE(out.err.find("no-such-dir"), std::string::npos) << out.err;
}

TEST_F(PyrundTest, SighupWithAnInvalidPolicyKeepsTheOldSet) {
  writeFile(dir_ / "strict.yaml", readFileOrEmpty(PYRUN_SOURCE_DIR "/policy/strict.yaml"));
  const std::string policies =
      "policies:\n  default: " + policy("default") + "\n  strict: " + (dir_ / "strict.yaml") + "\n";
  ASSERT_NO_FATAL_FAILURE(startServer(
      policies + "identities:\n  default: default\n  clients:\n    alice: strict\n", false));
  expectScenario("started_limits", kStrictLimits);

  writeFile(dir_ / "strict.yaml", "version: 1\nlimits:\n  cpu_secnds: 3\n");
  server_->signal(SIGHUP);
  std::string log = server_->readStderrUntil("previous policies stay in force", 30s);
  ASSERT_NE(log.find("previous policies stay in force"), std::string::npos) << log;
  log = server_->readStderrUntil(dir_ / "strict.yaml:3:3", 30s);
  EXPECT_NE(log.find(dir_ / "strict.yaml:3:3"), std::string::npos) << log;
  expectScenario("started_limits", kStrictLimits);  // the old strict policy still applies

  // A valid change is taken: strict.yaml repaired, alice moved to the default policy.
  writeFile(dir_ / "strict.yaml", readFileOrEmpty(PYRUN_SOURCE_DIR "/policy/strict.yaml"));
  writeFile(
      dir_ / "pyrund.yaml",
      configText(policies + "identities:\n  default: default\n  clients:\n    alice: default\n",
                 false));
  server_->signal(SIGHUP);
  log = server_->readStderrUntil("policies reloaded", 30s);
  ASSERT_NE(log.find("policies reloaded"), std::string::npos) << log;
  expectScenario("started_limits", kDefaultLimits);
}

// The spawner finds the files of a reload in the config itself (the front never names a file to
// it): a policy added to the config on SIGHUP is known to both, and its jobs start under it.
TEST_F(PyrundTest, SighupAddsAPolicyThatTheSpawnerLoadsFromTheConfig) {
  const std::string defaults = "policies:\n  default: " + policy("default") + "\n";
  ASSERT_NO_FATAL_FAILURE(startServer(defaults + "identities:\n  default: default\n", false));
  expectScenario("started_limits", kDefaultLimits);

  writeFile(dir_ / "tight.yaml", readFileOrEmpty(PYRUN_SOURCE_DIR "/policy/strict.yaml"));
  writeFile(dir_ / "pyrund.yaml",
            configText(defaults + "  tight: " + (dir_ / "tight.yaml") +
                           "\nidentities:\n  default: default\n  clients:\n    alice: tight\n",
                       false));
  server_->signal(SIGHUP);
  std::string log = server_->readStderrUntil("policies reloaded", 30s);
  ASSERT_NE(log.find("policies reloaded"), std::string::npos) << log;
  EXPECT_NE(log.find("reloaded 2 policies: default, tight"), std::string::npos) << log;
  // Were the spawner still on its start-up files, alice's job would fail: "tight" not loaded.
  expectScenario("started_limits", kStrictLimits);
}

TEST_F(PyrundTest, RevokedWhileRunningIsKilledAndRefusedAfterSighup) {
  copyFile(pki_.crl(), dir_ / "crl.pem");
  ASSERT_NO_FATAL_FAILURE(startServer("crl: " + (dir_ / "crl.pem") + "\ncrl_check_seconds: 0\n"));
  Child job(scenarioArgv("hold_then_report"));
  ASSERT_NE(job.readStdoutUntil("RUNNING", 60s).find("RUNNING"), std::string::npos);

  pki_.revoke("alice");
  copyFile(pki_.crl(), dir_ / "crl.pem");
  server_->signal(SIGHUP);
  auto out = job.wait(60s);
  EXPECT_NE(out.out.find("EXIT verdict=5 kind=1 detail=certificate revoked"), std::string::npos)
      << out.out << out.err;
  expectScenario("refused");
  // Someone else is still served.
  expectScenario("ready", {}, pki_.clientBundle("bob"));
}

TEST_F(PyrundTest, ChangedCrlFileIsReloadedWithoutASignal) {
  copyFile(pki_.crl(), dir_ / "crl.pem");
  ASSERT_NO_FATAL_FAILURE(startServer("crl: " + (dir_ / "crl.pem") + "\ncrl_check_seconds: 1\n"));
  expectScenario("ready");
  pki_.revoke("alice");
  copyFile(pki_.crl(), dir_ / "crl.pem");
  std::string log = server_->readStderrUntil("CRL reloaded", 30s);
  ASSERT_NE(log.find("CRL reloaded"), std::string::npos) << log;
  expectScenario("refused");
}

TEST_F(PyrundTest, SilentTcpClientIsClosedAtTheHandshakeDeadline) {
  ASSERT_NO_FATAL_FAILURE(startServer("handshake_timeout_seconds: 1\n"));
  expectScenario("silent_tcp");
  std::string log = server_->readStderrUntil("no TLS handshake within 1 s", 30s);
  EXPECT_NE(log.find("no TLS handshake within 1 s"), std::string::npos) << log;
}

TEST_F(PyrundTest, ClientThatSendsNoRunIsClosedAtTheIdleDeadline) {
  ASSERT_NO_FATAL_FAILURE(startServer("idle_timeout_seconds: 1\n"));
  expectScenario("idle_timeout");
  expectScenario("slow_run");
}

TEST_F(PyrundTest, HandshakesOverThePerSourceCapAreClosedBeforeTls) {
  ASSERT_NO_FATAL_FAILURE(
      startServer("max_handshakes_per_source: 2\nhandshake_timeout_seconds: 60\n"));
  expectScenario("source_cap", {"2"});
  std::string log = server_->readStderrUntil("too many TLS handshakes in progress from", 30s);
  EXPECT_NE(
      log.find("refusing connections: too many TLS handshakes in progress from 127.0.0.1 (2)"),
      std::string::npos)
      << log;
}

TEST_F(PyrundTest, JobsAbovePerIdentityCapAreRefused) {
  ASSERT_NO_FATAL_FAILURE(startServer("max_jobs_per_identity: 1\n"));
  expectScenario("job_cap");
}

TEST_F(PyrundTest, SigtermLetsTheGracePassThenSendsServerShutdownAndExitsZero) {
  ASSERT_NO_FATAL_FAILURE(startServer("shutdown_grace_seconds: 1\n"));
  Child job(scenarioArgv("hold_then_report"));
  ASSERT_NE(job.readStdoutUntil("RUNNING", 60s).find("RUNNING"), std::string::npos);
  server_->signal(SIGTERM);
  auto out = job.wait(60s);
  EXPECT_NE(out.out.find("EXIT verdict=9 kind=1 detail=the server is shutting down"),
            std::string::npos)
      << out.out << out.err;
  auto server = server_->wait(60s);
  EXPECT_EQ(server.exit_code, 0) << server.err;
  EXPECT_NE(server.err.find("grace period of 1 s over"), std::string::npos) << server.err;
}

TEST_F(PyrundTest, SigkillLeavesNoJobAndTheNextStartCleansUp) {
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  const std::string token = "pyrun-sigkill-token-" + std::to_string(::getpid());
  Child job(scenarioArgv("hold_then_report", {token}));
  ASSERT_NE(job.readStdoutUntil("RUNNING", 60s).find("RUNNING"), std::string::npos);
  ASSERT_TRUE(processWithToken(token));
  server_->signal(SIGKILL);
  server_->wait(30s);
  // The front's death reaches the spawner, and the spawner's every job (parent-death signals).
  EXPECT_TRUE(eventually([&] { return !processWithToken(token); }, 30s));
  job.wait(30s);

  // A leftover of a crashed run, with a link that cleanup must not follow.
  ::mkdir((dir_ / "jobs/77-leftover").c_str(), 0700);
  writeFile(dir_ / "jobs/77-leftover/out.txt", "x");
  writeFile(dir_ / "keep.txt", "must survive");
  ASSERT_EQ(::symlink((dir_ / "keep.txt").c_str(), (dir_ / "jobs/77-leftover/link").c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(startServer(""));
  // Whatever the spawner keeps in jobs_dir for itself is hidden (a dot name); no job is left. The
  // pool's refill at start has a working directory there for a moment while it parks each job
  // (parkJob), hence eventually.
  auto only_dot_names = [&] {
    for (const auto& name : entriesOf(dir_ / "jobs")) {
      if (name[0] != '.') return false;
    }
    return true;
  };
  EXPECT_TRUE(eventually(only_dot_names, 30s)) << [&] {
    std::string names;
    for (const auto& name : entriesOf(dir_ / "jobs")) names += name + " ";
    return names;
  }();
  EXPECT_EQ(readFileOrEmpty(dir_ / "keep.txt"), "must survive");
  expectScenario("started_limits", kDefaultLimits);
}

TEST_F(PyrundTest, AuditLogHasAJsonLinePerEvent) {
  ASSERT_NO_FATAL_FAILURE(startServer("audit_log: " + (dir_ / "audit.log") + "\n"));
  expectScenario("audit_fields", {dir_ / "audit.log"});
  // SIGHUP after a rotation the way logrotate's "create 0640 nobody" does it: the new file gets
  // the next lines.
  ASSERT_EQ(std::rename((dir_ / "audit.log").c_str(), (dir_ / "audit.log.1").c_str()), 0);
  writeFile(dir_ / "audit.log", "", 0640);
  if (::getuid() == 0) {
    passwd* nobody = ::getpwnam("nobody");
    ASSERT_NE(nobody, nullptr);
    ASSERT_EQ(::chown((dir_ / "audit.log").c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  }
  server_->signal(SIGHUP);
  EXPECT_TRUE(eventually(
      [&] {
        return readFileOrEmpty(dir_ / "audit.log").find("\"event\":\"reload\"") !=
               std::string::npos;
      },
      30s));
}

}  // namespace
}  // namespace pyrun::test
