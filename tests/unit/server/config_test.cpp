// pyrund configuration: flags, YAML file, precedence, and every error path.
#include "server/config.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "support/temp_dir.h"

namespace pyrun::server {
namespace {

CommandLine parse(const std::vector<std::string>& args) {
  auto c = parseCommandLine(args);
  EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().detail());
  return c ? *c : CommandLine{};
}

TEST(Config, DefaultsMatchTheDocumentation) {
  ServerConfig c;
  EXPECT_EQ(c.listen, "0.0.0.0");
  EXPECT_EQ(c.port, 9091);
  EXPECT_EQ(c.queue, 64u);
  EXPECT_EQ(c.user, "nobody");
  EXPECT_EQ(c.jobs_dir, "/var/lib/pyrun/jobs");
  ASSERT_EQ(c.policies.size(), 1u);
  EXPECT_EQ(c.policies.at("default"), "/etc/pyrun/policy/default.yaml");
  EXPECT_EQ(c.identities.default_policy, "default");
  EXPECT_TRUE(c.identities.by_common_name.empty());
  EXPECT_EQ(c.handshake_timeout_seconds, 10u);
  EXPECT_EQ(c.idle_timeout_seconds, 30u);
  EXPECT_EQ(c.write_stall_timeout_seconds, 600u);
  EXPECT_EQ(c.shutdown_grace_seconds, 10u);
  EXPECT_EQ(c.max_connections, 1024u);
  EXPECT_EQ(c.max_handshakes, 64u);
  EXPECT_EQ(c.max_handshakes_per_source, 8u);
  EXPECT_EQ(c.max_jobs_per_identity, 4u);
  EXPECT_EQ(c.job_starts_per_minute, 60u);
  EXPECT_TRUE(c.kill_revoked_jobs);
  EXPECT_EQ(c.crl_check_seconds, 5u);
  EXPECT_EQ(c.audit_log, "");
  EXPECT_EQ(c.cgroup_subtree, "");  // derived from jobs_dir: cgroupSubtreeFor()
  EXPECT_EQ(c.cgroups, "v2");
  EXPECT_FALSE(c.require_cgroups);
}

TEST(Config, ParsesEveryFlagWithSpaceOrEquals) {
  auto c =
      parse({"--listen",    "::1",         "--port=0", "--port-file", "/tmp/p",     "--cert",
             "s.pem",       "--ca=ca.pem", "--crl",    "c.crl",       "--max-jobs", "3",
             "--queue",     "5",           "--user",   "daemon",      "--jobs-dir", "/srv/jobs",
             "--log-level", "debug",       "--config", "f.yaml"});
  ASSERT_TRUE(c.config_file.has_value());
  EXPECT_EQ(*c.config_file, "f.yaml");
  ServerConfig config;
  for (auto& [k, v] : c.overrides) ASSERT_TRUE(applyOverride(config, k, v).has_value()) << k;
  EXPECT_EQ(config.listen, "::1");
  EXPECT_EQ(config.port, 0);
  EXPECT_EQ(config.port_file, "/tmp/p");
  EXPECT_EQ(config.cert, "s.pem");
  EXPECT_EQ(config.ca, "ca.pem");
  EXPECT_EQ(config.crl, "c.crl");
  EXPECT_EQ(config.max_jobs, 3u);
  EXPECT_EQ(config.queue, 5u);
  EXPECT_EQ(config.user, "daemon");
  EXPECT_EQ(config.jobs_dir, "/srv/jobs");
  EXPECT_EQ(config.log_level, log::Level::kDebug);
}

TEST(Config, HelpFlag) { EXPECT_TRUE(parse({"--help"}).help); }

TEST(Config, RejectsUnknownFlagMissingValueAndStrayArgument) {
  auto unknown = parseCommandLine({"--prot", "1"});
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().detail().find("unknown option --prot"), std::string::npos);
  auto missing = parseCommandLine({"--port"});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().detail(), "--port needs a value");
  auto stray = parseCommandLine({"extra"});
  ASSERT_FALSE(stray.has_value());
  EXPECT_NE(stray.error().detail().find("unexpected argument \"extra\""), std::string::npos);
}

TEST(Config, RejectsBadFlagValuesNamingTheFlag) {
  ServerConfig c;
  auto port = applyOverride(c, "port", "70000");
  ASSERT_FALSE(port.has_value());
  EXPECT_EQ(port.error().detail(), "--port: 70000 is larger than the maximum 65535");
  auto jobs = applyOverride(c, "max_jobs", "-1");
  ASSERT_FALSE(jobs.has_value());
  EXPECT_NE(jobs.error().detail().find("--max-jobs: \"-1\" is not a non-negative integer"),
            std::string::npos);
  auto level = applyOverride(c, "log_level", "loud");
  ASSERT_FALSE(level.has_value());
  EXPECT_NE(level.error().detail().find("--log-level"), std::string::npos);
}

TEST(Config, AppliesEveryYamlKey) {
  ServerConfig c;
  auto r = applyConfigYaml(c, R"(listen: 127.0.0.1
port: 9200
port_file: /run/pyrund.port
cert: /etc/pyrun/server.pem
ca: /etc/pyrun/ca.pem
crl: /etc/pyrun/crl.pem
max_jobs: 4
queue: 10
user: pyrun
jobs_dir: /srv/pyrun
log_level: warning
handshake_timeout_seconds: 3
idle_timeout_seconds: 4
write_stall_timeout_seconds: 44
shutdown_grace_seconds: 5
max_connections: 6
max_handshakes: 7
max_handshakes_per_source: 2
max_jobs_per_identity: 1
job_starts_per_minute: 9
kill_revoked_jobs: false
crl_check_seconds: 0
audit_log: /var/log/pyrun/audit.jsonl
cgroup_subtree: pyrun-a
cgroups: v1
require_cgroups: true
policies:
  default: /etc/pyrun/policy/default.yaml
  strict: policy/strict.yaml
identities:
  default: strict
  clients:
    alice: default
)",
                           "/etc/pyrun/pyrund.yaml");
  ASSERT_TRUE(r.has_value()) << r.error().detail();
  EXPECT_EQ(c.listen, "127.0.0.1");
  EXPECT_EQ(c.port, 9200);
  EXPECT_EQ(c.port_file, "/run/pyrund.port");
  EXPECT_EQ(c.cert, "/etc/pyrun/server.pem");
  EXPECT_EQ(c.ca, "/etc/pyrun/ca.pem");
  EXPECT_EQ(c.crl, "/etc/pyrun/crl.pem");
  EXPECT_EQ(c.max_jobs, 4u);
  EXPECT_EQ(c.queue, 10u);
  EXPECT_EQ(c.user, "pyrun");
  EXPECT_EQ(c.jobs_dir, "/srv/pyrun");
  EXPECT_EQ(c.log_level, log::Level::kWarning);
  EXPECT_EQ(c.handshake_timeout_seconds, 3u);
  EXPECT_EQ(c.idle_timeout_seconds, 4u);
  EXPECT_EQ(c.write_stall_timeout_seconds, 44u);
  EXPECT_EQ(c.shutdown_grace_seconds, 5u);
  EXPECT_EQ(c.max_connections, 6u);
  EXPECT_EQ(c.max_handshakes, 7u);
  EXPECT_EQ(c.max_handshakes_per_source, 2u);
  EXPECT_EQ(c.max_jobs_per_identity, 1u);
  EXPECT_EQ(c.job_starts_per_minute, 9u);
  EXPECT_FALSE(c.kill_revoked_jobs);
  EXPECT_EQ(c.crl_check_seconds, 0u);
  EXPECT_EQ(c.audit_log, "/var/log/pyrun/audit.jsonl");
  EXPECT_EQ(c.cgroup_subtree, "pyrun-a");
  EXPECT_EQ(c.cgroups, "v1");
  EXPECT_TRUE(c.require_cgroups);
  ASSERT_EQ(c.policies.size(), 2u);
  EXPECT_EQ(c.policies.at("default"), "/etc/pyrun/policy/default.yaml");
  // Relative to the config file's directory.
  EXPECT_EQ(c.policies.at("strict"), "/etc/pyrun/policy/strict.yaml");
  EXPECT_EQ(c.identities.default_policy, "strict");
  EXPECT_EQ(c.identities.policyFor("alice"), "default");
  EXPECT_EQ(c.identities.policyFor("bob"), "strict");
}

TEST(Config, IdentityNamingAnUndefinedPolicyIsAnErrorAtItsPosition) {
  ServerConfig c;
  auto r = applyConfigYaml(
      c, "policies:\n  default: d.yaml\nidentities:\n  clients:\n    alice: strict\n", "p.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().detail(), "p.yaml:5:12: unknown policy \"strict\"");
}

TEST(Config, DefaultPolicyMustBeDefined) {
  ServerConfig c;
  c.cert = "s.pem";
  c.max_jobs = 1;
  ASSERT_TRUE(applyConfigYaml(c, "policies:\n  strict: s.yaml\n", "p.yaml").has_value());
  auto r = validateConfig(c);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().detail(),
            "identities: the default policy \"default\" is not defined under policies:");
}

TEST(Config, PoolSizeIsANumberOrOnePerPolicyAndDefaultsToTheCores) {
  ServerConfig c;
  c.policies = {{"default", "/d.yaml"}, {"strict", "/s.yaml"}};
  unsigned cores = std::thread::hardware_concurrency();
  EXPECT_EQ(poolSizesOf(c).at("default"), cores == 0 ? 1u : cores);
  ASSERT_TRUE(applyConfigYaml(c, "pool_size: 0\n", "p.yaml").has_value());
  EXPECT_EQ(poolSizesOf(c), (std::map<std::string, uint32_t>{{"default", 0}, {"strict", 0}}));
  ASSERT_TRUE(applyConfigYaml(c, "pool_size: {strict: 3}\n", "p.yaml").has_value());
  EXPECT_EQ(poolSizesOf(c), (std::map<std::string, uint32_t>{{"default", 0}, {"strict", 3}}));
}

TEST(Config, PoolSizeRejectsBadValuesAndUnknownPolicies) {
  ServerConfig c;
  auto r = applyConfigYaml(c, "pool_size: many\n", "p.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().detail().find("p.yaml:1:12: pool_size"), std::string::npos)
      << r.error().detail();
  r = applyConfigYaml(c, "pool_size: [1, 2]\n", "p.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().detail().find("expected a number, or a mapping"), std::string::npos)
      << r.error().detail();
  ServerConfig d;
  d.cert = "s.pem";
  d.max_jobs = 1;
  ASSERT_TRUE(applyConfigYaml(d, "pool_size: {nosuch: 1}\n", "p.yaml").has_value());
  auto v = validateConfig(d);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().detail(), "pool_size: policy \"nosuch\" is not defined under policies:");
}

TEST(Config, LimitsSectionPointsToThePolicies) {
  ServerConfig c;
  auto r = applyConfigYaml(c, "limits:\n  cpu_seconds: 3\n", "p.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(
      r.error().detail().find("p.yaml:1:1: limits: job limits now come from the policy files"),
      std::string::npos)
      << r.error().detail();
}

TEST(Config, BadPolicyNamesAndPathsAreErrors) {
  ServerConfig c;
  auto name = applyConfigYaml(c, "policies:\n  \"a b\": x.yaml\n", "p.yaml");
  ASSERT_FALSE(name.has_value());
  EXPECT_NE(name.error().detail().find("p.yaml:2:3: policies.a b: a policy name must be"),
            std::string::npos)
      << name.error().detail();
  auto path = applyConfigYaml(c, "policies:\n  x: [1]\n", "p.yaml");
  ASSERT_FALSE(path.has_value());
  EXPECT_NE(path.error().detail().find("expected the path of a policy file"), std::string::npos);
  auto empty = applyConfigYaml(c, "policies: {}\n", "p.yaml");
  ASSERT_FALSE(empty.has_value());
  auto subtree = applyConfigYaml(c, "cgroup_subtree: ../escape\n", "p.yaml");
  ASSERT_FALSE(subtree.has_value());
  EXPECT_NE(subtree.error().detail().find("single directory name"), std::string::npos);
  auto version = applyConfigYaml(c, "cgroups: v3\n", "p.yaml");
  ASSERT_FALSE(version.has_value());
  EXPECT_NE(version.error().detail().find("not one of v2, v1, none"), std::string::npos);
  auto flag = applyConfigYaml(c, "kill_revoked_jobs: maybe\n", "p.yaml");
  ASSERT_FALSE(flag.has_value());
  EXPECT_NE(flag.error().detail().find("is not true or false"), std::string::npos);
}

TEST(Config, EmptyFileConfiguresNothing) {
  ServerConfig c;
  ASSERT_TRUE(applyConfigYaml(c, "", "empty.yaml").has_value());
  EXPECT_EQ(c.port, 9091);
}

TEST(Config, UnknownKeyIsAnErrorWithFileLineColumn) {
  ServerConfig c;
  auto r = applyConfigYaml(c, "port: 1\n  \nmax_job: 3\n", "pyrund.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().detail(), "pyrund.yaml:3:1: max_job: unknown key");
  EXPECT_TRUE(r.error().is(Errc::kNotFound));
}

TEST(Config, UnknownKeyWithMappingValueIsStillUnknown) {
  ServerConfig c;
  auto r = applyConfigYaml(c, "limit:\n  cpu_seconds: 3\n", "p.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().detail(), "p.yaml:1:1: limit: unknown key");
  EXPECT_TRUE(r.error().is(Errc::kNotFound));
}

TEST(Config, WrongTypesAreErrors) {
  ServerConfig c;
  auto list = applyConfigYaml(c, "port: [1, 2]\n", "p.yaml");
  ASSERT_FALSE(list.has_value());
  EXPECT_EQ(list.error().detail(), "p.yaml:1:1: port: expected a single value");
  auto text = applyConfigYaml(c, "queue: many\n", "p.yaml");
  ASSERT_FALSE(text.has_value());
  EXPECT_EQ(text.error().detail(), "p.yaml:1:1: queue: \"many\" is not a non-negative integer");
  auto policies = applyConfigYaml(c, "policies: 5\n", "p.yaml");
  ASSERT_FALSE(policies.has_value());
  EXPECT_NE(policies.error().detail().find("policies: expected a mapping"), std::string::npos);
  auto top = applyConfigYaml(c, "- a\n- b\n", "p.yaml");
  ASSERT_FALSE(top.has_value());
  EXPECT_NE(top.error().detail().find("must be a mapping"), std::string::npos);
}

TEST(Config, SyntaxErrorCarriesPosition) {
  ServerConfig c;
  auto r = applyConfigYaml(c, "port: 1\nqueue: [\n", "p.yaml");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().detail().rfind("p.yaml:", 0), 0u) << r.error().detail();
}

TEST(Config, FlagsOverrideTheFile) {
  test::TempDir dir("srvcfg");
  test::writeFile(dir / "pyrund.yaml", "port: 9200\nqueue: 3\ncert: file.pem\nmax_jobs: 2\n");
  auto r =
      resolveConfig(parse({"--config", dir / "pyrund.yaml", "--port", "0", "--cert", "flag.pem"}));
  ASSERT_TRUE(r.has_value()) << r.error().detail();
  EXPECT_EQ(r->port, 0);           // flag wins
  EXPECT_EQ(r->cert, "flag.pem");  // flag wins
  EXPECT_EQ(r->queue, 3u);         // file value kept
  EXPECT_EQ(r->max_jobs, 2u);
}

TEST(Config, MaxJobsDefaultsToTheNumberOfCores) {
  test::TempDir dir("srvcfg");
  test::writeFile(dir / "empty.yaml", "");
  auto r = resolveConfig(parse({"--config", dir / "empty.yaml", "--cert", "s.pem"}));
  ASSERT_TRUE(r.has_value()) << r.error().detail();
  EXPECT_GE(r->max_jobs, 1u);
}

TEST(Config, MissingConfigFileIsAnError) {
  auto r = resolveConfig(parse({"--config", "/nonexistent/pyrund.yaml", "--cert", "s.pem"}));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().detail().find("/nonexistent/pyrund.yaml"), std::string::npos);
}

TEST(Config, ValidationRefusesMissingCertZeroJobsAndZeroCaps) {
  ServerConfig c;
  c.max_jobs = 1;
  auto no_cert = validateConfig(c);
  ASSERT_FALSE(no_cert.has_value());
  EXPECT_NE(no_cert.error().detail().find("--cert"), std::string::npos);
  c.cert = "s.pem";
  EXPECT_TRUE(validateConfig(c).has_value());
  c.max_jobs = 0;
  EXPECT_FALSE(validateConfig(c).has_value());
  c.max_jobs = 1;
  c.jobs_dir = "relative";
  EXPECT_FALSE(validateConfig(c).has_value());
  c.jobs_dir = "/abs";
  for (uint32_t ServerConfig::*field :
       {&ServerConfig::handshake_timeout_seconds, &ServerConfig::idle_timeout_seconds,
        &ServerConfig::write_stall_timeout_seconds, &ServerConfig::max_connections,
        &ServerConfig::max_handshakes, &ServerConfig::max_handshakes_per_source,
        &ServerConfig::max_jobs_per_identity, &ServerConfig::job_starts_per_minute}) {
    ServerConfig bad = c;
    bad.*field = 0;
    EXPECT_FALSE(validateConfig(bad).has_value());
  }
  EXPECT_TRUE(validateConfig(c).has_value());
}

TEST(Config, UsageNamesEveryFlag) {
  std::string u = usage();
  for (const char* flag :
       {"--config", "--listen", "--port", "--port-file", "--cert", "--ca", "--crl", "--max-jobs",
        "--queue", "--user", "--jobs-dir", "--log-level"}) {
    EXPECT_NE(u.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace pyrun::server

namespace pyrun::server {
namespace {

TEST(Config, CgroupSubtreeIsDerivedFromTheJobsDirectory) {
  ServerConfig c;
  EXPECT_EQ(cgroupSubtreeFor(c), "pyrun");  // the default jobs_dir: the production name
  c.jobs_dir = "/tmp/a/jobs";
  std::string a = cgroupSubtreeFor(c);
  c.jobs_dir = "/tmp/b/jobs";
  std::string b = cgroupSubtreeFor(c);
  EXPECT_EQ(a.rfind("pyrun-", 0), 0u);
  EXPECT_NE(a, b);  // two instances with their own jobs_dir never share (and empty) a subtree
  c.jobs_dir = "/tmp/a/jobs";
  EXPECT_EQ(cgroupSubtreeFor(c), a);  // stable: a restart finds its leftovers again
  c.cgroup_subtree = "mine";
  EXPECT_EQ(cgroupSubtreeFor(c), "mine");
}

}  // namespace
}  // namespace pyrun::server

namespace pyrun::server {
namespace {

TEST(Config, TrustedProxiesDefaultToNone) { EXPECT_TRUE(ServerConfig{}.trusted_proxies.empty()); }

TEST(Config, ReadsTrustedProxiesAsNetworks) {
  ServerConfig c;
  auto r = applyConfigYaml(c, "trusted_proxies: [10.1.0.0/16, 127.0.0.1, '2001:db8::/32']\n",
                           "pyrund.yaml");
  ASSERT_TRUE(r) << r.error().detail();
  ASSERT_EQ(c.trusted_proxies.size(), 3u);
  auto in = [&](const char* a) {
    for (const auto& range : c.trusted_proxies) {
      if (rangeContains(range, boost::asio::ip::make_address(a))) return true;
    }
    return false;
  };
  EXPECT_TRUE(in("10.1.200.3"));
  EXPECT_FALSE(in("10.2.0.1"));
  EXPECT_TRUE(in("127.0.0.1"));
  EXPECT_TRUE(in("::ffff:127.0.0.1"));  // v4-mapped: the same host
  EXPECT_FALSE(in("127.0.0.2"));
  EXPECT_TRUE(in("2001:db8:5::1"));
  EXPECT_FALSE(in("2001:db9::1"));
  EXPECT_EQ(c.trusted_proxies[0].text, "10.1.0.0/16");
  r = applyConfigYaml(c, "trusted_proxies: []\n", "pyrund.yaml");
  ASSERT_TRUE(r) << r.error().detail();
  EXPECT_TRUE(c.trusted_proxies.empty());
}

TEST(Config, BadTrustedProxyIsAnErrorAtItsPosition) {
  ServerConfig c;
  auto r = applyConfigYaml(c, "port: 1\ntrusted_proxies:\n  - 10.0.0.0/8\n  - haproxy.example\n",
                           "pyrund.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail(),
            "pyrund.yaml:4:5: trusted_proxies: \"haproxy.example\" is not an IPv4 or IPv6 address "
            "or network (CIDR)");
  r = applyConfigYaml(c, "trusted_proxies: [10.0.0.0/33]\n", "f");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail(),
            "f:1:19: trusted_proxies: \"10.0.0.0/33\" has a prefix length that is not 0 to 32");
  r = applyConfigYaml(c, "trusted_proxies: [10.0.0.1/8]\n", "f");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail(),
            "f:1:19: trusted_proxies: \"10.0.0.1/8\" has host bits set (did you mean 10.0.0.0/8?)");
  for (const char* bad : {"trusted_proxies: 10.0.0.0/8\n", "trusted_proxies: [[1]]\n",
                          "trusted_proxies: [10.0.0.0/]\n", "trusted_proxies: [10.0.0.0/-1]\n",
                          "trusted_proxies: ['::1/129']\n"}) {
    EXPECT_FALSE(applyConfigYaml(c, bad, "f")) << bad;
  }
}

}  // namespace
}  // namespace pyrun::server
