// Test support: temporary directories and child processes.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "support/process.h"
#include "support/temp_dir.h"

extern char** environ;

namespace pyrun::test {
namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "test support: %s: %s\n", what.c_str(), std::strerror(errno));
  std::abort();
}

std::vector<std::string> mergedEnvironment(const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : extra) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

int decodeStatus(int status, bool& signaled) {
  if (WIFSIGNALED(status)) {
    signaled = true;
    return 128 + WTERMSIG(status);
  }
  signaled = false;
  return WEXITSTATUS(status);
}

}  // namespace

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = "/tmp/pyrun-test-" + prefix + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) die("mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() {
  // rm -rf does not follow symlinks; the path is ours and has no shell metacharacters.
  std::string cmd = "rm -rf '" + path_ + "'";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", path_.c_str());
}

void writeFile(const std::string& path, const std::string& data, unsigned mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("open " + path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("write " + path);
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) die("chmod " + path);
  ::close(fd);
}

std::string readFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

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

std::string binary(const std::string& name) { return std::string(PYRUN_BIN_DIR) + "/" + name; }

std::string asanOptionsForMemoryMeasures() {
  const char* asan = std::getenv("ASAN_OPTIONS");
  std::string options = asan != nullptr ? asan : "";
  return options + (options.empty() ? "" : ":") + "quarantine_size_mb=1";
}

int announcedMetricsPort(const std::string& stderr_text) {
  static const std::regex kWhere("http://127\\.0\\.0\\.1:([0-9]+)/metrics");
  std::smatch m;
  if (!std::regex_search(stderr_text, m, kWhere)) return 0;
  return std::stoi(m[1]);
}

std::string poolSizeYaml() {
  const char* size = std::getenv("PYRUN_TEST_POOL_SIZE");
  if (size == nullptr || *size == '\0') return "";
  return std::string("pool_size: ") + size + "\n";
}

bool hasExited(pid_t pid) {
  std::string stat = readFileOrEmpty("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren == std::string::npos || stat.size() < paren + 3 || stat[paren + 2] == 'Z';
}

Child::Child(const std::vector<std::string>& argv, const RunOptions& options) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    die("pipe2");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&fa, options.cwd.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The child starts with default signal dispositions and an empty mask (gtest may block some).
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings = mergedEnvironment(options.env);
  std::vector<char*> env;
  for (auto& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  int rc = posix_spawnp(&pid_, args[0], &fa, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  in_ = in[1];
  out_ = out[0];
  err_ = err[0];
  if (rc != 0) {
    errno = rc;
    die("spawn " + argv[0]);
  }
  // A program that exits early must not kill the test with SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);
}

Child::~Child() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  for (int fd : {in_, out_, err_}) {
    if (fd >= 0) ::close(fd);
  }
}

void Child::writeStdin(const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(in_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the program closed its stdin; the test's assertions will say more
    done += static_cast<size_t>(n);
  }
}

void Child::closeStdin() {
  if (in_ >= 0) ::close(in_);
  in_ = -1;
}

void Child::signal(int sig) { ::kill(pid_, sig); }

std::string Child::readUntil(int& fd, std::string& buffer, const std::string& needle,
                             std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (buffer.find(needle) == std::string::npos && fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      fd = -1;
      break;
    }
    buffer.append(buf, static_cast<size_t>(n));
  }
  return buffer;
}

std::string Child::readStdoutUntil(const std::string& needle, std::chrono::seconds timeout) {
  return readUntil(out_, out_buf_, needle, timeout);
}

std::string Child::readStderrUntil(const std::string& needle, std::chrono::seconds timeout) {
  return readUntil(err_, err_buf_, needle, timeout);
}

Outcome Child::wait(std::chrono::seconds timeout) {
  closeStdin();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out_ >= 0 || err_ >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid_, SIGKILL);
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      left = std::chrono::milliseconds(5000);
    }
    pollfd p[2] = {{out_, POLLIN, 0}, {err_, POLLIN, 0}};
    int r = ::poll(p, 2, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || (p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[65536];
      ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      int& fd = i == 0 ? out_ : err_;
      if (n <= 0) {
        ::close(fd);
        fd = -1;
      } else {
        (i == 0 ? out_buf_ : err_buf_).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid");
  }
  reaped_ = true;
  Outcome o;
  o.exit_code = decodeStatus(status, o.signaled);
  o.out = std::move(out_buf_);
  o.err = std::move(err_buf_);
  return o;
}

Outcome run(const std::vector<std::string>& argv, const RunOptions& options) {
  Child child(argv, options);
  if (!options.stdin_data.empty()) child.writeStdin(options.stdin_data);
  return child.wait(options.timeout);
}

}  // namespace pyrun::test
