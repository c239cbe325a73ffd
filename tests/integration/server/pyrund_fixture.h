// A real pyrund for integration tests: port 0, temporary jobs directory, policies that include
// the shipped policy/default.yaml, a PKI made by pyrun-ca, and wire_client.py scenarios.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/pki.h"
#include "support/process.h"
#include "support/pyrund.h"
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
    return pyrundConfigText(dir_.path(), options(extra, default_policies));
  }

  PyrundOptions options(const std::string& extra, bool default_policies) {
    PyrundOptions o;
    o.cert = pki_.serverBundle();
    // Each pyrund needs its own cgroup subtree (its spawner empties it at start), also when
    // tests run in parallel or one test's server still winds down as the next one starts.
    o.config_yaml = "cgroup_subtree: " + dir_.path().substr(dir_.path().rfind('/') + 1) + "\n";
    if (default_policies) o.config_yaml += "policies:\n  default: " + policy("default") + "\n";
    o.config_yaml += extra;
    o.stop_signal = SIGKILL;  // the tests that stop it gracefully do it themselves
    return o;
  }

  // Starts pyrund with the config (configText's result); waits for its port file.
  // Call it as ASSERT_NO_FATAL_FAILURE(startServer(...)): a server that did not start ends the
  // test.
  void startServer(const std::string& extra_yaml, bool default_policies = true) {
    pyrund_.reset();  // a restart: the old one is gone first
    pyrund_ = std::make_unique<Pyrund>(dir_.path(), options(extra_yaml, default_policies));
    ASSERT_TRUE(pyrund_->started()) << pyrund_->startError();
    server_ = &pyrund_->process();
    port_ = pyrund_->port();
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
  std::unique_ptr<Pyrund> pyrund_;
  Child* server_ = nullptr;  // pyrund_'s process
  int port_ = 0;
};

}  // namespace pyrun::test
