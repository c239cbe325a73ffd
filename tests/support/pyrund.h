// A real pyrund for integration tests: on 127.0.0.1 with kernel-chosen ports, its config, port
// file and jobs directory in a directory the test owns, stopped (SIGTERM) when it goes.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "support/process.h"

namespace pyrun::test {

struct PyrundOptions {
  std::string cert;  // the server's bundle (Pki::serverBundle())
  std::string crl;   // empty: none
  // Further config lines (policies:, identities:, max_jobs: ...), after the ones Pyrund writes.
  std::string config_yaml;
  int port = 0;  // 0: kernel-chosen; a restart keeps the port it got
  // metrics_listen on 127.0.0.1:metrics_port (0: kernel-chosen, kept by a restart); start() also
  // waits for its announcement (metricsPort()).
  bool metrics = false;
  int metrics_port = 0;
  RunOptions run;  // pyrund's environment
  std::chrono::seconds start_timeout{30};
  std::chrono::seconds stop_timeout{30};
  // How stop() ends it: SIGTERM (a graceful stop, its exit status checked), or SIGKILL for tests
  // that only need it gone (its jobs die with it through their parent-death signals).
  int stop_signal = SIGTERM;
};

// The config file's text Pyrund writes: listen 127.0.0.1, the port, <dir>/port as port file, the
// cert (and CRL), <dir>/jobs as jobs directory, metrics_listen (options.metrics), then
// options.config_yaml. For tests that run
// pyrund themselves (a start that must fail).
std::string pyrundConfigText(const std::string& dir, const PyrundOptions& options);

class Pyrund {
 public:
  // Makes dir traversable by jobs and the front's user (0711), writes <dir>/pyrund.yaml and
  // starts pyrund. Check started(): when it did not start, startError() says why (its stderr).
  Pyrund(std::string dir, PyrundOptions options);
  ~Pyrund();  // stop()
  Pyrund(const Pyrund&) = delete;
  Pyrund& operator=(const Pyrund&) = delete;

  bool started() const { return child_ != nullptr; }
  const std::string& startError() const { return start_error_; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int metricsPort() const { return metrics_port_; }
  pid_t pid() const { return child_ ? child_->pid() : -1; }
  Child& process() { return *child_; }  // only while started()
  std::string dir() const { return dir_; }
  std::string jobsDir() const { return dir_ + "/jobs"; }

  // Sends pyrund options.stop_signal and waits for it; returns how it ended ({} when it was not
  // running or had already exited: a test that stops it itself waits for it through process()).
  // After SIGTERM, a non-zero status is printed on stderr.
  Outcome stop();
  // Starts it again with the same config and ports once it has stopped (stop(), or the test's own
  // signal and wait); false with startError().
  bool start();

 private:
  std::string dir_;
  PyrundOptions options_;
  std::unique_ptr<Child> child_;
  std::string start_error_;
  int port_ = 0;
  int metrics_port_ = 0;
};

}  // namespace pyrun::test
