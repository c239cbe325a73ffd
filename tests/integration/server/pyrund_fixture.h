// A real pyrund for integration tests: port 0, temporary jobs directory, policies that include
// the shipped policy/default.yaml, a PKI made by pyrun-ca, and wire_client.py scenarios.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::test {

using namespace std::chrono_literals;

class PyrundTest : public ::testing::Test {
 protected:
  PyrundTest() {
    // Jobs run under their own uids and the front as "nobody" when the test runs as root: they
    // must reach their files below this directory.
    ::chmod(dir_.path().c_str(), 0711);
  }

  // Writes <dir>/<name>.yaml: the shipped default policy with `limits_yaml` (lines under
  // "limits:") overriding its limits. Returns the path.
  std::string policy(const std::string& name, const std::string& limits_yaml = "") {
    std::string text = "version: 1\ninclude: [" PYRUN_SOURCE_DIR "/policy/default.yaml]\n";
    if (!limits_yaml.empty()) text += "limits:\n" + limits_yaml;
    writeFile(dir_ / (name + ".yaml"), text);
    return dir_ / (name + ".yaml");
  }

  // The config file's text: listening on loopback port 0, the default policy, `extra` appended
  // (it may replace policies: when default_policies is false).
  std::string configText(const std::string& extra, bool default_policies = true) {
    std::string text = "listen: 127.0.0.1\nport: 0\nport_file: " + (dir_ / "port") +
                       "\ncert: " + pki_.serverBundle() + "\njobs_dir: " + (dir_ / "jobs") + "\n";
    // Each pyrund needs its own cgroup subtree (its spawner empties it at start), also when
    // tests run in parallel or one test's server still winds down as the next one starts.
    text += "cgroup_subtree: " + dir_.path().substr(dir_.path().rfind('/') + 1) + "\n";
    if (default_policies) text += "policies:\n  default: " + policy("default") + "\n";
    return text + extra;
  }

  // Starts pyrund with the config (configText's result); waits for its port file.
  void startServer(const std::string& extra_yaml, bool default_policies = true) {
    writeFile(dir_ / "pyrund.yaml", configText(extra_yaml, default_policies));
    ::unlink((dir_ / "port").c_str());
    server_ = std::make_unique<Child>(
        std::vector<std::string>{binary("pyrund"), "--config", dir_ / "pyrund.yaml"});
    ASSERT_TRUE(eventually([&] { return !readFileOrEmpty(dir_ / "port").empty(); }, 30s))
        << server_->wait(1s).err;
    port_ = std::stoi(readFileOrEmpty(dir_ / "port"));
  }

  std::vector<std::string> scenarioArgv(const std::string& scenario,
                                        const std::vector<std::string>& args = {},
                                        const std::string& bundle = "") {
    std::vector<std::string> argv{
        "python3",     WIRE_CLIENT, std::to_string(port_), bundle.empty() ? client_ : bundle,
        pki_.caCert(), scenario};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  void expectScenario(const std::string& scenario, const std::vector<std::string>& args = {},
                      const std::string& bundle = "") {
    RunOptions options;
    options.timeout = 120s;
    auto out = run(scenarioArgv(scenario, args, bundle), options);
    EXPECT_EQ(out.exit_code, 0) << out.out << out.err;
    EXPECT_NE(out.out.find("OK\n"), std::string::npos) << out.out << out.err;
  }

  TempDir dir_{"pyrund"};
  Pki pki_{dir_.path()};
  std::string client_ = pki_.clientBundle("alice");
  std::unique_ptr<Child> server_;
  int port_ = 0;
};

}  // namespace pyrun::test
