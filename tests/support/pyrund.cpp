// A real pyrund for integration tests (pyrund.h).
#include "support/pyrund.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "support/temp_dir.h"

namespace pyrun::test {

std::string pyrundConfigText(const std::string& dir, const PyrundOptions& options) {
  std::string text = "listen: 127.0.0.1\nport: " + std::to_string(options.port) +
                     "\nport_file: " + dir + "/port\ncert: " + options.cert + "\n";
  if (!options.crl.empty()) text += "crl: " + options.crl + "\n";
  text += "jobs_dir: " + dir + "/jobs\n";
  if (options.metrics) {
    text += "metrics_listen: 127.0.0.1:" + std::to_string(options.metrics_port) + "\n";
  }
  return text + options.config_yaml;
}

Pyrund::Pyrund(std::string dir, PyrundOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  // Jobs run under their own uids and the front as "nobody" when the test runs as root: they
  // must reach their files below this directory.
  ::chmod(dir_.c_str(), 0711);
  start();
}

Pyrund::~Pyrund() { stop(); }

bool Pyrund::start() {
  if (child_ && !child_->reaped() && !hasExited(child_->pid())) return true;
  child_.reset();  // one the test stopped and waited for itself
  PyrundOptions options = options_;
  // A restart keeps the ports it got.
  if (port_ != 0) options.port = port_;
  if (metrics_port_ != 0) options.metrics_port = metrics_port_;
  const std::string port_file = dir_ + "/port";
  // 0644: the front, as its own user, reads it again on SIGHUP.
  writeFile(dir_ + "/pyrund.yaml", pyrundConfigText(dir_, options), 0644);
  ::unlink(port_file.c_str());
  child_ = std::make_unique<Child>(
      std::vector<std::string>{binary("pyrund"), "--config", dir_ + "/pyrund.yaml"}, options.run);
  start_error_.clear();
  std::string announced;
  if (options.metrics) {
    // "metrics and health on http://127.0.0.1:PORT/metrics, /healthz"
    announced = child_->readStderrUntil("/metrics, /healthz", options.start_timeout);
    metrics_port_ = announcedMetricsPort(announced);
  }
  bool up = (!options.metrics || metrics_port_ != 0) &&
            eventually([&] { return !readFileOrEmpty(port_file).empty() || hasExited(pid()); },
                       options.start_timeout) &&
            !readFileOrEmpty(port_file).empty();
  if (!up) {
    child_->signal(SIGKILL);
    start_error_ = "pyrund did not start; its stderr:\n" + announced +
                   child_->wait(std::chrono::seconds(10)).err;
    child_.reset();  // reaped: nothing to stop
    return false;
  }
  port_ = std::stoi(readFileOrEmpty(port_file));
  return true;
}

Outcome Pyrund::stop() {
  if (!child_) return {};
  Outcome o;
  if (child_->reaped() || hasExited(child_->pid())) {
    // The test stopped it (and may have waited for it already): the Child reaps what is left.
  } else {
    child_->signal(options_.stop_signal);
    o = child_->wait(options_.stop_timeout);
    if (options_.stop_signal == SIGTERM && o.exit_code != 0) {
      std::fprintf(stderr, "pyrund exit %d:\n%s\n", o.exit_code, o.err.c_str());
    }
  }
  child_.reset();
  return o;
}

}  // namespace pyrun::test
