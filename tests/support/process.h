// Running the project's programs (and openssl, python3) from tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace pyrun::test {

// Absolute path of a built program: PYRUN_BIN_DIR "/" name.
std::string binary(const std::string& name);

struct Outcome {
  int exit_code = -1;  // exit status, or 128 + signal when killed by a signal
  bool signaled = false;
  std::string out;
  std::string err;
};

struct RunOptions {
  std::string stdin_data;                  // written to the program's stdin, then closed
  std::map<std::string, std::string> env;  // added to (or replacing in) the inherited environment
  std::string cwd;                         // empty = inherit
  std::chrono::seconds timeout{120};       // the program is killed (SIGKILL) after this
};

// Runs argv[0] (a path, or a name looked up in PATH) to completion, capturing stdout and stderr.
Outcome run(const std::vector<std::string>& argv, const RunOptions& options = {});

// ASAN_OPTIONS for a program whose memory a test measures: the inherited options plus a 1 MiB
// quarantine. Under ASan, freed memory otherwise sits in a quarantine of up to 256 MiB that would
// count as the program's RSS although the program reuses it. Harmless without ASan.
std::string asanOptionsForMemoryMeasures();

// The port of pyrund's metrics listener on 127.0.0.1, from its start-up line "metrics and health on
// http://127.0.0.1:PORT/metrics, /healthz" in `stderr_text`; 0 when the line is not there.
int announcedMetricsPort(const std::string& stderr_text);

// The pyrund.yaml line that sets the warm pool's size from PYRUN_TEST_POOL_SIZE ("pool_size: N\n"),
// or "" when it is not set (pyrund's default: the pool on, one per core). CI runs the workloads,
// hostile-script and confinement suites once more with PYRUN_TEST_POOL_SIZE=0 (pool off).
std::string poolSizeYaml();

// True once the process has exited (a zombie not yet reaped counts).
bool hasExited(pid_t pid);

// A program running in the background with pipes to its stdin, stdout and stderr.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const RunOptions& options = {});
  ~Child();  // SIGKILLs and reaps the program if it still runs
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  bool reaped() const { return reaped_; }  // wait() returned: pid() may name another process now
  // Writes to the program's stdin; closeStdin() sends end of input.
  void writeStdin(const std::string& data);
  void closeStdin();
  // Reads stdout until `needle` has appeared (returns everything read so far) or the timeout passes
  // (returns what was read; the caller's assertion then fails with it).
  std::string readStdoutUntil(const std::string& needle, std::chrono::seconds timeout);
  std::string readStderrUntil(const std::string& needle, std::chrono::seconds timeout);
  void signal(int sig);
  // Waits for the program to end, draining stdout and stderr; SIGKILLs it after timeout.
  Outcome wait(std::chrono::seconds timeout = std::chrono::seconds(120));

 private:
  std::string readUntil(int& fd, std::string& buffer, const std::string& needle,
                        std::chrono::seconds timeout);
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1;
  std::string out_buf_, err_buf_;
  bool reaped_ = false;
};

// Polls predicate every 20 ms until it returns true or timeout passes; returns its last value.
template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace pyrun::test

#include <thread>
template <class Predicate>
bool pyrun::test::eventually(Predicate predicate, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return predicate();
}
