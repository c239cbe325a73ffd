// pyrun against a real pyrund on 127.0.0.1: streaming, stdin, signals, exit statuses, queueing,
// limits, large output with flat client memory, and cleanup of the job's processes and directory.
// Everything synchronises on output, never on sleeps.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/pki.h"
#include "support/process.h"
#include "support/pyrund.h"
#include "support/temp_dir.h"

extern char** environ;

namespace pyrun::test {
namespace {

using namespace std::chrono_literals;

struct ServerOptions {
  int max_jobs = 4;
  int queue = 64;
  std::string limits_yaml;  // lines under the policy's "limits:", e.g. "  wall_seconds: 1\n"
};

// A pyrund on 127.0.0.1 with a kernel-chosen port, stopped (SIGTERM) at the end of the test. Its
// only policy extends the project's policy/default.yaml with the test's limits.
class Server {
 public:
  Server(const std::string& bundle, const std::string& crl, const ServerOptions& o)
      : pyrund_(dir_.path(), options(dir_, bundle, crl, o)) {}

  bool started() const { return pyrund_.started(); }
  const std::string& startError() const { return pyrund_.startError(); }
  int port() const { return pyrund_.port(); }
  std::string jobsDir() const { return pyrund_.jobsDir(); }
  std::string address() const { return pyrund_.address(); }

 private:
  static PyrundOptions options(const TempDir& dir, const std::string& bundle,
                               const std::string& crl, const ServerOptions& o) {
    writeFile(dir / "policy.yaml",
              "version: 1\ninclude: [" + std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml]\n" +
                  (o.limits_yaml.empty() ? "" : "limits:\n") + o.limits_yaml,
              0644);
    PyrundOptions p;
    p.cert = bundle;
    p.crl = crl;
    // Quotas per identity are not under test here: every client of these tests is alice.
    p.config_yaml = poolSizeYaml() + "policies:\n  default: " + (dir / "policy.yaml") +
                    "\nmax_jobs_per_identity: 1000\njob_starts_per_minute: 1000\nmax_jobs: " +
                    std::to_string(o.max_jobs) + "\nqueue: " + std::to_string(o.queue) + "\n";
    return p;
  }

  TempDir dir_{"run-srv"};
  Pyrund pyrund_;
};

// Job directories in a jobs_dir (names starting with '.' belong to the server, e.g. ".root").
size_t jobDirectoriesIn(const std::string& dir) {
  size_t n = 0;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (!name.starts_with(".")) ++n;
  }
  ::closedir(d);
  return n;
}

// Processes (other than `except`) whose command line contains token.
int processesWith(const std::string& token, pid_t except) {
  int n = 0;
  DIR* d = ::opendir("/proc");
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoi(name) == except) continue;
    std::string cmdline = readFileOrEmpty("/proc/" + name + "/cmdline");
    if (cmdline.find(token) != std::string::npos) ++n;
  }
  ::closedir(d);
  return n;
}

std::string hexOf(const unsigned char* digest, unsigned len) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

std::string sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return hexOf(digest, len);
}

class RunTest : public ::testing::Test {
 protected:
  // The PKI of the whole suite: alice, and mallory revoked.
  struct SuitePki {
    TempDir dir{"run-pki"};
    Pki pki{dir.path()};
    std::string server_bundle = pki.serverBundle();
    std::string alice = pki.clientBundle("alice");
    std::string mallory = pki.clientBundle("mallory");
    SuitePki() { pki.revoke("mallory"); }
  };
  static void SetUpTestSuite() {
    suite_ = std::make_unique<SuitePki>();
    server_bundle_ = suite_->server_bundle;
    alice_ = suite_->alice;
    mallory_ = suite_->mallory;
  }
  static void TearDownTestSuite() { suite_.reset(); }

  // A started server, or nullptr (the failure already reported with pyrund's stderr).
  std::unique_ptr<Server> startServer(const ServerOptions& o = {}) {
    auto s = std::make_unique<Server>(server_bundle_, suite_->pki.crl(), o);
    if (!s->started()) {
      ADD_FAILURE() << s->startError();
      return nullptr;
    }
    return s;
  }

  // Writes a script into the test's directory and returns its path.
  std::string script(const std::string& name, const std::string& body) {
    std::string path = dir_ / name;
    writeFile(path, body);
    return path;
  }

  std::vector<std::string> pyrun(const Server& s, const std::string& script_path,
                                 const std::vector<std::string>& args = {},
                                 const std::string& bundle = "") {
    std::vector<std::string> argv = {binary("pyrun"), "--cert", bundle.empty() ? alice_ : bundle,
                                     s.address(), script_path};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  TempDir dir_{"run"};
  static inline std::unique_ptr<SuitePki> suite_;
  static inline std::string server_bundle_, alice_, mallory_;
};

// argv with -v (after the program name): pyrun then says more, the queue position included.
std::vector<std::string> verbose(std::vector<std::string> argv) {
  argv.insert(argv.begin() + 1, "-v");
  return argv;
}

#define START_SERVER(var, ...)         \
  auto var = startServer(__VA_ARGS__); \
  ASSERT_TRUE(var) << "pyrund did not start"

TEST_F(RunTest, StreamsOutputWhileTheProgramRuns) {
  START_SERVER(server);
  auto s = script("echo.py", "print('first')\nline = input()\nprint('got ' + line)\n");
  Child c(pyrun(*server, s));
  // The program only goes on after the test answers, and the test answers only after it saw the
  // first line: output cannot have been buffered until the end.
  ASSERT_NE(c.readStdoutUntil("first\n", 60s).find("first\n"), std::string::npos);
  c.writeStdin("hello\n");
  auto o = c.wait(60s);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "first\ngot hello\n");
}

TEST_F(RunTest, KeepsStdoutAndStderrApart) {
  START_SERVER(server);
  auto s =
      script("both.py",
             "import sys\nprint('to out')\nprint('to err', file=sys.stderr)\nprint('out again')\n");
  auto o = run(pyrun(*server, s));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "to out\nout again\n");
  EXPECT_EQ(o.err, "to err\n");
}

TEST_F(RunTest, ForwardsStdinUntilEndOfInput) {
  START_SERVER(server);
  auto s = script("count.py",
                  "import hashlib, sys\ndata = sys.stdin.buffer.read()\n"
                  "print(len(data), hashlib.sha256(data).hexdigest())\n");
  std::string input;
  for (int i = 0; input.size() < 300000; ++i) input += std::to_string(i) + "\n";
  input.resize(300000);
  RunOptions ro;
  ro.stdin_data = input;
  auto o = run(pyrun(*server, s), ro);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "300000 " + sha256Hex(input) + "\n");
}

TEST_F(RunTest, PassesArgumentsThatLookLikeOptions) {
  START_SERVER(server);
  auto s = script("args.py", "import sys\nprint(sys.argv[1:])\n");
  auto o = run(pyrun(*server, s, {"-v", "--stats", "x y"}));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "['-v', '--stats', 'x y']\n");
}

TEST_F(RunTest, ExitStatusIsTheProgramsOwn) {
  START_SERVER(server);
  auto ok = run(pyrun(*server, script("ok.py", "print('fine')\n")));
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  auto three = run(pyrun(*server, script("three.py", "import sys\nsys.exit(3)\n")));
  EXPECT_EQ(three.exit_code, 3) << three.err;
  EXPECT_FALSE(three.signaled);
  EXPECT_EQ(three.err, "");  // the program's own status needs no words from pyrun
}

TEST_F(RunTest, DeathBySignalIs128PlusN) {
  START_SERVER(server);
  auto s = script("term.py", "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n");
  auto o = run(pyrun(*server, s));
  EXPECT_EQ(o.exit_code, 128 + SIGTERM) << o.err;
  EXPECT_FALSE(o.signaled);  // pyrun itself exits normally with that status
}

TEST_F(RunTest, CtrlCRaisesKeyboardInterruptAndExits130) {
  START_SERVER(server);
  // Short sleeps: CPython notices a signal that arrived just before a sleep began only when the
  // sleep ends.
  auto s = script("sleepy.py", "import time\nprint('ready')\nwhile True: time.sleep(0.05)\n");
  Child c(pyrun(*server, s));
  ASSERT_NE(c.readStdoutUntil("ready\n", 60s).find("ready\n"), std::string::npos);
  c.signal(SIGINT);
  auto o = c.wait(60s);
  EXPECT_EQ(o.exit_code, 130) << o.err;
  EXPECT_NE(o.err.find("KeyboardInterrupt"), std::string::npos) << o.err;
}

TEST_F(RunTest, SecondCtrlCCancelsTheJob) {
  START_SERVER(server);
  auto s = script("stubborn.py",
                  "import signal, time\n"
                  "signal.signal(signal.SIGINT, lambda *a: print('ignored', flush=True))\n"
                  "print('ready')\n"
                  "while True:\n    time.sleep(1)\n");
  Child c(pyrun(*server, s));
  ASSERT_NE(c.readStdoutUntil("ready\n", 60s).find("ready\n"), std::string::npos);
  c.signal(SIGINT);
  ASSERT_NE(c.readStdoutUntil("ignored\n", 60s).find("ignored\n"), std::string::npos);
  c.signal(SIGINT);
  auto o = c.wait(60s);
  EXPECT_EQ(o.exit_code, 128 + SIGKILL) << o.err;
  EXPECT_NE(o.err.find("pyrun: "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("cancel"), std::string::npos) << o.err;
}

TEST_F(RunTest, KilledClientTakesItsWholeJobDown) {
  START_SERVER(server);
  std::string token = "pyrun-marker-" + std::to_string(::getpid()) + "-kill";
  auto s = script("spawner.py",
                  "import subprocess, sys, time\n"
                  "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', "
                  "sys.argv[1]])\n"
                  "print('ready')\n"
                  "time.sleep(600)\n");
  Child c(pyrun(*server, s, {token}));
  ASSERT_NE(c.readStdoutUntil("ready\n", 60s).find("ready\n"), std::string::npos);
  // The program and its child: the check below would see them if they survived.
  // The program and its child (a job of the warm pool shows the boot module's command line: then
  // only its child carries the token).
  EXPECT_GE(processesWith(token, c.pid()), 1);
  c.signal(SIGKILL);
  c.wait(30s);
  EXPECT_TRUE(eventually([&] { return processesWith(token, -1) == 0; }, 30s))
      << processesWith(token, -1) << " processes of the job are left";
  EXPECT_TRUE(eventually([&] { return jobDirectoriesIn(server->jobsDir()) == 0; }, 30s));
}

// True when a thread of pid sleeps writing into a full pipe (kernels name the wait pipe_write,
// anon_pipe_write or pipe_wait_writable).
bool blockedOnAFullPipe(pid_t pid) {
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(tasks.c_str());
  if (d == nullptr) return false;
  bool blocked = false;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (readFileOrEmpty(tasks + "/" + e->d_name + "/wchan").find("pipe") != std::string::npos) {
      blocked = true;
    }
  }
  ::closedir(d);
  return blocked;
}

// pyrun with an endless stdin (/dev/zero) running a program that never reads it: once the
// program prints "ready\n", waits until every buffer on the way is full — the server holds all
// the stdin it takes and reads no more of the connection, pyrun's writes stall, and its stdin
// thread sleeps on its full pipe. A few samples in a row, so that a pause between two reads does
// not pass for it.
bool stdinBacksUp(pid_t pyrun) {
  int in_a_row = 0;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (in_a_row < 5 && std::chrono::steady_clock::now() < deadline) {
    in_a_row = blockedOnAFullPipe(pyrun) ? in_a_row + 1 : 0;
    std::this_thread::sleep_for(100ms);
  }
  return in_a_row >= 5;
}

std::unique_ptr<Child> pyrunWithStdinBackedUp(const std::vector<std::string>& argv) {
  std::vector<std::string> shell = {"bash", "-c", "exec \"$@\" < /dev/zero", "bash"};
  shell.insert(shell.end(), argv.begin(), argv.end());
  auto c = std::make_unique<Child>(shell);
  if (c->readStdoutUntil("ready\n", 60s).find("ready\n") == std::string::npos) return nullptr;
  if (!stdinBacksUp(c->pid())) return nullptr;
  return c;
}

constexpr const char* kSleepsWithoutReadingStdin =
    "import sys, time\nprint('ready', flush=True)\ntime.sleep(600)\n";

TEST_F(RunTest, KilledClientWhoseStdinWaitsTakesItsJobDown) {
  // The wall-clock limit is far away: it is not what ends the job.
  START_SERVER(server,
               ServerOptions{.max_jobs = 2, .queue = 8, .limits_yaml = "  wall_seconds: 600\n"});
  std::string token = "pyrun-marker-" + std::to_string(::getpid()) + "-stdin-kill";
  // A child carries the token too: a job of the warm pool shows the boot module's command line.
  auto c = pyrunWithStdinBackedUp(pyrun(*server,
                                        script("sleeps_with_child.py",
                                               "import subprocess, sys, time\n"
                                               "subprocess.Popen([sys.executable, '-c', "
                                               "'import time; time.sleep(600)', sys.argv[1]])\n"
                                               "print('ready', flush=True)\ntime.sleep(600)\n"),
                                        {token}));
  ASSERT_TRUE(c) << "the stdin of pyrun never backed up";
  EXPECT_GE(processesWith(token, c->pid()), 1);
  c->signal(SIGKILL);
  c->wait(30s);
  EXPECT_TRUE(eventually([&] { return processesWith(token, -1) == 0; }, 30s))
      << "the job of a killed client still runs";
  EXPECT_TRUE(eventually([&] { return jobDirectoriesIn(server->jobsDir()) == 0; }, 30s));
}

TEST_F(RunTest, SecondCtrlCCancelsEvenWhenTheServerTakesNoMoreStdin) {
  START_SERVER(server,
               ServerOptions{.max_jobs = 2, .queue = 8, .limits_yaml = "  wall_seconds: 600\n"});
  std::string token = "pyrun-marker-" + std::to_string(::getpid()) + "-stdin-ctrl-c";
  auto argv = pyrun(*server, script("sleeps.py", kSleepsWithoutReadingStdin), {token});
  argv.insert(argv.begin() + 1, "-v");  // says when it handled the first Ctrl-C
  auto c = pyrunWithStdinBackedUp(argv);
  ASSERT_TRUE(c) << "the stdin of pyrun never backed up";
  // The first Ctrl-C waits behind the stdin like any frame; the second must not. (One at a
  // time: two signals sent before the first is delivered count as one.)
  c->signal(SIGINT);
  ASSERT_NE(c->readStderrUntil("sending SIGINT", 60s).find("sending SIGINT"), std::string::npos);
  c->signal(SIGINT);
  auto o = c->wait(60s);
  EXPECT_EQ(o.exit_code, 128 + SIGKILL) << o.err;
  EXPECT_FALSE(o.signaled);
  EXPECT_NE(o.err.find("pyrun: cancelled"), std::string::npos) << o.err;
  EXPECT_TRUE(eventually([&] { return processesWith(token, -1) == 0; }, 30s))
      << "the cancelled job still runs";
}

TEST_F(RunTest, ClosedStdoutCancelsTheJobEvenWhenTheServerTakesNoMoreStdin) {
  START_SERVER(server,
               ServerOptions{.max_jobs = 2, .queue = 8, .limits_yaml = "  wall_seconds: 600\n"});
  std::string token = "pyrun-marker-" + std::to_string(::getpid()) + "-stdin-pipe";
  auto s = script("ticks.py",
                  "import sys, time\nprint('ready', flush=True)\n"
                  "while True:\n    time.sleep(0.1)\n    print('tick', flush=True)\n");
  // pyrun's stdout is a FIFO whose reader (this test) goes away once pyrun's stdin backed up.
  const std::string fifo = dir_ / "out.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::vector<std::string> argv = {"bash", "-c", "exec \"$@\" < /dev/zero > " + fifo, "bash"};
  for (const auto& a : pyrun(*server, s, {token})) argv.push_back(a);
  Child c(argv);
  int out = ::open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(out, 0);
  std::string seen;
  char buf[256];
  while (seen.find("ready\n") == std::string::npos) {
    pollfd p{out, POLLIN, 0};
    ASSERT_GT(::poll(&p, 1, 60000), 0) << "no output";
    ssize_t n = ::read(out, buf, sizeof buf);
    ASSERT_GT(n, 0);
    seen.append(buf, static_cast<size_t>(n));
  }
  ASSERT_TRUE(stdinBacksUp(c.pid())) << "the stdin of pyrun never backed up";
  ::close(out);  // like `| head -1`
  auto o = c.wait(60s);
  EXPECT_EQ(o.exit_code, 128 + SIGPIPE) << o.err;
  EXPECT_FALSE(o.signaled) << "pyrun did not end by itself";
  EXPECT_EQ(o.err, "");
  EXPECT_TRUE(eventually([&] { return processesWith(token, -1) == 0; }, 30s))
      << "the job still runs";
}

TEST_F(RunTest, ProgramThatEndsWithoutReadingEndlessStdinEndsPyrunToo) {
  START_SERVER(server);
  // pyrun's stdin pump is still waiting for room to send more when EXIT comes.
  std::vector<std::string> argv = {"bash", "-c", "exec \"$@\" < /dev/zero", "bash"};
  for (const auto& a : pyrun(*server, script("done.py", "print('done')\n"))) argv.push_back(a);
  RunOptions ro;
  ro.timeout = 60s;
  auto o = run(argv, ro);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_FALSE(o.signaled) << "pyrun did not end by itself";
  EXPECT_EQ(o.out, "done\n");
}

// EXIT is the end of the job: pyrun does not wait for the server's close_notify, which a server
// whose receive queue holds stdin it never read may not send (its close then resets the
// connection). This server never sends it and never closes; pyrun used to wait 2 s for it.
TEST_F(RunTest, EndsAtExitWithoutWaitingForTheServersCloseNotify) {
  const std::string port_file = dir_ / "silent.port";
  Child server({"python3", SILENT_AFTER_EXIT_PY, server_bundle_, suite_->pki.caCert(), port_file});
  ASSERT_TRUE(eventually([&] { return !readFileOrEmpty(port_file).empty(); }, 30s))
      << server.wait(1s).err;
  std::vector<std::string> argv = {binary("pyrun"), "--cert", alice_,
                                   "127.0.0.1:" + readFileOrEmpty(port_file),
                                   script("done.py", "print('done')\n")};
  RunOptions ro;
  ro.timeout = 60s;
  auto o = run(argv, ro);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_FALSE(o.signaled);
  std::string line = server.readStdoutUntil("\n", 60s);
  ASSERT_EQ(line.rfind("closed-after-ms ", 0), 0u) << line << server.wait(1s).err;
  // pyrun closes as soon as it has handled EXIT; the old wait for close_notify was 2000 ms. The
  // bound only separates the two: nothing here waits for a timer.
  EXPECT_LT(std::stoi(line.substr(16)), 1500) << line;
}

TEST_F(RunTest, RemovesTheWorkingDirectoryAfterwards) {
  START_SERVER(server);
  auto s = script("cwd.py",
                  "import os\nopen('left-behind.txt', 'w').write('x')\n"
                  "os.mkdir('sub')\nprint('ready')\ninput()\n");
  Child c(pyrun(*server, s));
  ASSERT_NE(c.readStdoutUntil("ready\n", 60s).find("ready\n"), std::string::npos);
  EXPECT_EQ(jobDirectoriesIn(server->jobsDir()), 1u);  // the job's directory exists while it runs
  c.writeStdin("\n");
  auto o = c.wait(60s);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(eventually([&] { return jobDirectoriesIn(server->jobsDir()) == 0; }, 30s));
}

TEST_F(RunTest, TwentyClientsAtOnceGetTheirOwnOutput) {
  START_SERVER(server, ServerOptions{.max_jobs = 4, .queue = 64, .limits_yaml = ""});
  auto s = script("lines.py",
                  "import sys\nn = sys.argv[1]\nfor i in range(2000):\n    print(f'{n}:{i}')\n");
  auto expected = [](int n) {
    std::string out;
    for (int i = 0; i < 2000; ++i) out += std::to_string(n) + ":" + std::to_string(i) + "\n";
    return out;
  };
  std::vector<std::unique_ptr<Child>> clients;
  for (int n = 0; n < 20; ++n) {
    clients.push_back(std::make_unique<Child>(pyrun(*server, s, {std::to_string(n)})));
  }
  for (int n = 0; n < 20; ++n) {
    auto o = clients[static_cast<size_t>(n)]->wait(120s);
    EXPECT_EQ(o.exit_code, 0) << "client " << n << ": " << o.err;
    EXPECT_TRUE(o.out == expected(n)) << "client " << n << " got " << o.out.size() << " bytes";
  }
}

TEST_F(RunTest, QueuedClientsLearnTheirPositionAndAFullQueueIsBusy) {
  START_SERVER(server, ServerOptions{.max_jobs = 1, .queue = 2, .limits_yaml = ""});
  auto s = script("gate.py", "print('ready')\ninput()\nprint('done')\n");
  Child first(pyrun(*server, s));
  ASSERT_NE(first.readStdoutUntil("ready\n", 60s).find("ready\n"), std::string::npos);
  // Queue positions go to stderr only on a terminal or with -v.
  Child second(verbose(pyrun(*server, s)));
  EXPECT_NE(second.readStderrUntil("queued, position 1\n", 60s).find("pyrun: queued, position 1\n"),
            std::string::npos);
  Child third(verbose(pyrun(*server, s)));
  EXPECT_NE(third.readStderrUntil("queued, position 2\n", 60s).find("pyrun: queued, position 2\n"),
            std::string::npos);

  auto busy = run(pyrun(*server, s));
  EXPECT_EQ(busy.exit_code, 255);
  EXPECT_NE(busy.err.find("pyrun: server busy"), std::string::npos) << busy.err;
  EXPECT_EQ(busy.out, "");

  // Releasing the first lets the others run in turn; the third moves up the queue.
  first.writeStdin("\n");
  EXPECT_EQ(first.wait(60s).exit_code, 0);
  ASSERT_NE(second.readStdoutUntil("ready\n", 60s).find("ready\n"), std::string::npos);
  EXPECT_NE(third.readStderrUntil("queued, position 1\n", 60s).find("pyrun: queued, position 1\n"),
            std::string::npos);
  second.writeStdin("\n");
  third.writeStdin("\n");
  auto o2 = second.wait(60s);
  auto o3 = third.wait(60s);
  EXPECT_EQ(o2.exit_code, 0) << o2.err;
  EXPECT_EQ(o3.exit_code, 0) << o3.err;
  EXPECT_EQ(o3.out, "ready\ndone\n");
}

TEST_F(RunTest, QueuePositionIsNotPrintedWithoutATerminalOrVerbose) {
  START_SERVER(server, ServerOptions{.max_jobs = 1, .queue = 4, .limits_yaml = ""});
  auto s = script("gate.py", "print('ready')\ninput()\n");
  Child first(pyrun(*server, s));
  ASSERT_NE(first.readStdoutUntil("ready\n", 60s).find("ready\n"), std::string::npos);
  Child quiet(pyrun(*server, s));
  // A verbose probe told position 2 proves the quiet client waits at position 1; a probe that
  // came first (position 1) is dropped, which withdraws it, and another one asks again.
  bool quiet_queued = false;
  for (int attempt = 0; attempt < 100 && !quiet_queued; ++attempt) {
    Child probe(verbose(pyrun(*server, s)));
    std::string err = probe.readStderrUntil("queued, position ", 60s);
    err += probe.readStderrUntil("\n", 60s);
    quiet_queued = err.find("pyrun: queued, position 2\n") != std::string::npos;
  }  // ~Child kills the probe: its request leaves the queue
  ASSERT_TRUE(quiet_queued);
  first.writeStdin("\n");
  quiet.writeStdin("\n");
  EXPECT_EQ(first.wait(60s).exit_code, 0);
  auto q = quiet.wait(60s);
  EXPECT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(q.out, "ready\n");
  EXPECT_EQ(q.err, "");
}

TEST_F(RunTest, CtrlCWhileQueuedWithdrawsTheRequest) {
  START_SERVER(server, ServerOptions{.max_jobs = 1, .queue = 4, .limits_yaml = ""});
  auto s = script("gate.py", "print('ready')\ninput()\n");
  Child first(pyrun(*server, s));
  ASSERT_NE(first.readStdoutUntil("ready\n", 60s).find("ready\n"), std::string::npos);
  Child second(verbose(pyrun(*server, s)));
  ASSERT_NE(second.readStderrUntil("position 1\n", 60s).find("position 1\n"), std::string::npos);
  second.signal(SIGINT);
  auto o = second.wait(60s);
  EXPECT_EQ(o.exit_code, 130) << o.err;
  EXPECT_TRUE(o.err.ends_with("\npyrun: queued, position 1\n")) << o.err;
  EXPECT_EQ(o.err.find("started"), std::string::npos) << o.err;
  // The withdrawn request no longer holds a place: the next client is first in line.
  Child third(verbose(pyrun(*server, s)));
  EXPECT_NE(third.readStderrUntil("position 1\n", 60s).find("pyrun: queued, position 1\n"),
            std::string::npos);
  first.writeStdin("\n");
  third.writeStdin("\n");
  EXPECT_EQ(first.wait(60s).exit_code, 0);
  EXPECT_EQ(third.wait(60s).exit_code, 0);
}

TEST_F(RunTest, SigtermCancelsTheJob) {
  START_SERVER(server);
  // Short sleeps: CPython notices a signal that arrived just before a sleep began only when the
  // sleep ends.
  auto s = script("sleepy.py", "import time\nprint('ready')\nwhile True: time.sleep(0.05)\n");
  Child c(pyrun(*server, s));
  ASSERT_NE(c.readStdoutUntil("ready\n", 60s).find("ready\n"), std::string::npos);
  c.signal(SIGTERM);
  auto o = c.wait(60s);
  EXPECT_EQ(o.exit_code, 128 + SIGKILL) << o.err;
  EXPECT_NE(o.err.find("pyrun: cancelled"), std::string::npos) << o.err;
}

TEST_F(RunTest, ClosedStdoutCancelsTheJobQuietly) {
  START_SERVER(server);
  std::string token = "pyrun-marker-" + std::to_string(::getpid()) + "-pipe";
  auto s = script("endless.py", "import sys\nwhile True:\n    print('y' * 100)\n");
  std::string cmd;
  for (const auto& a : pyrun(*server, s, {token})) cmd += "'" + a + "' ";
  // Like `pyrun ... | head -1`: the reader goes away while the program keeps writing.
  auto o = run({"bash", "-c",
                "set -o pipefail; " + cmd + "| head -n 1; echo \"status ${PIPESTATUS[0]}\" >&2"});
  EXPECT_EQ(o.out, std::string(100, 'y') + "\n");
  EXPECT_EQ(o.err, "status 141\n");
  EXPECT_TRUE(eventually([&] { return processesWith(token, -1) == 0; }, 30s));
}

TEST_F(RunTest, WrongPinIsRefused) {
  START_SERVER(server);
  auto o = run({binary("pyrun"), "--cert", alice_, "--pin",
                "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", server->address(),
                script("ok.py", "print('never')\n")});
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.out, "");
  EXPECT_NE(o.err.find("pin"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.rfind("pyrun: ", 0), 0u) << o.err;
}

TEST_F(RunTest, SilentServerTimesOut) {
  // A listener that never accepts: the kernel completes TCP, but no TLS ever answers.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::string port = std::to_string(ntohs(a.sin_port));
  auto o = run({binary("pyrun"), "--timeout", "1", "--cert", alice_, "127.0.0.1:" + port,
                script("ok.py", "print(1)\n")});
  ::close(fd);
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.err, "pyrun: timed out after 1 s in the TLS handshake with 127.0.0.1:" + port + "\n");
}

struct Streamed {
  int status = -1;
  uint64_t bytes = 0;
  std::string sha256;
  long max_rss_kb = 0;
};

// Runs argv with stdout hashed as it arrives (never stored) and stderr into err_file.
Streamed runHashingStdout(const std::vector<std::string>& argv, const std::string& err_file) {
  Streamed r;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return r;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  // The test measures pyrun's RSS.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).starts_with("ASAN_OPTIONS=")) continue;
    env_strings.emplace_back(*e);
  }
  env_strings.push_back("ASAN_OPTIONS=" + asanOptionsForMemoryMeasures());
  std::vector<char*> env;
  for (auto& e : env_strings) env.push_back(e.data());
  env.push_back(nullptr);
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    return r;
  }
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::read(out[0], buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    EVP_DigestUpdate(md, buf.data(), static_cast<size_t>(n));
    r.bytes += static_cast<uint64_t>(n);
  }
  ::close(out[0]);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(md, digest, &len);
  EVP_MD_CTX_free(md);
  r.sha256 = hexOf(digest, len);
  int status = 0;
  rusage ru{};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.max_rss_kb = ru.ru_maxrss;
  return r;
}

TEST_F(RunTest, DeliversTwoHundredMegabytesByteExactWithFlatMemory) {
  constexpr uint64_t kBytes = 200ull << 20;
  START_SERVER(server, ServerOptions{.max_jobs = 2,
                                     .queue = 8,
                                     .limits_yaml = "  output: 1G\n"
                                                    "  wall_seconds: 600\n"
                                                    "  cpu_seconds: 600\n"});
  // Every 64 KiB block differs, so a lost, repeated or reordered block changes the hash.
  auto s = script("flood.py",
                  "import hashlib, sys\n"
                  "h = hashlib.sha256()\n"
                  "out = sys.stdout.buffer\n"
                  "for i in range(3200):\n"
                  "    block = i.to_bytes(4, 'big') * 16384\n"
                  "    h.update(block)\n"
                  "    out.write(block)\n"
                  "out.flush()\n"
                  "print(h.hexdigest(), file=sys.stderr)\n");
  auto r = runHashingStdout(pyrun(*server, s), dir_ / "flood.err");
  std::string err = readFileOrEmpty(dir_ / "flood.err");
  EXPECT_EQ(r.status, 0) << err;
  EXPECT_EQ(r.bytes, kBytes);
  EXPECT_EQ(err, r.sha256 + "\n");
  // One frame at a time in memory: far below the output's size whatever the build (about 10 MiB
  // in a plain build; ASan's shadow memory and allocator add about 40 MiB).
#if defined(__SANITIZE_ADDRESS__)
  constexpr long kMaxRssKb = 96 * 1024;
#else
  constexpr long kMaxRssKb = 64 * 1024;
#endif
  EXPECT_GT(r.max_rss_kb, 0);
  EXPECT_LT(r.max_rss_kb, kMaxRssKb) << "pyrun's peak RSS was " << r.max_rss_kb << " KiB";
  std::printf("pyrun's peak RSS for %llu bytes of output: %ld KiB\n",
              static_cast<unsigned long long>(r.bytes), r.max_rss_kb);
}

// The output pumps start with a one-page frame and take four 64 KiB ones once a read fills it
// (session_pumps.cpp): writes of every size around those boundaries, on both pipes, arrive whole
// and in order.
TEST_F(RunTest, OutputOfEverySizeAroundTheFrameSizesArrivesWhole) {
  START_SERVER(server);
  auto s = script("sizes.py",
                  "import os, sys\n"
                  "sizes = [1, 4090, 4091, 4092, 4096, 8182, 8183, 65531, 65532, 262124, 262125,\n"
                  "         1000000]\n"
                  "for fd in (1, 2):\n"
                  "    for n, size in enumerate(sizes):\n"
                  "        block = bytes((n * 7 + i + fd) % 251 for i in range(size))\n"
                  "        view = memoryview(block)\n"
                  "        while view:\n"
                  "            view = view[os.write(fd, view):]\n");
  Child c(pyrun(*server, s));
  auto o = c.wait(120s);
  ASSERT_EQ(o.exit_code, 0) << o.err.substr(0, 200);
  const size_t sizes[] = {1,    4090,  4091,  4092,   4096,   8182,
                          8183, 65531, 65532, 262124, 262125, 1000000};
  for (int fd : {1, 2}) {
    std::string expected;
    for (size_t n = 0; n < std::size(sizes); ++n) {
      for (size_t i = 0; i < sizes[n]; ++i) {
        expected.push_back(static_cast<char>((n * 7 + i + static_cast<size_t>(fd)) % 251));
      }
    }
    const std::string& got = fd == 1 ? o.out : o.err;
    ASSERT_EQ(got.size(), expected.size()) << "fd " << fd;
    EXPECT_TRUE(got == expected) << "fd " << fd << " differs";
  }
}

TEST_F(RunTest, RevokedClientIsRefused) {
  START_SERVER(server);
  auto o = run(pyrun(*server, script("ok.py", "print('never')\n"), {}, mallory_));
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.out, "");
  EXPECT_NE(o.err.find("pyrun: server rejected the certificate: revoked"), std::string::npos)
      << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

TEST_F(RunTest, ClientFromAnotherCaIsRefused) {
  START_SERVER(server);
  TempDir other_dir("run-other");
  Pki other(other_dir.path());
  std::string eve = other.clientBundle("eve");
  // --ca lets eve's client trust the real server, so the refusal is the server's.
  auto argv = pyrun(*server, script("ok.py", "print('never')\n"), {}, eve);
  argv.insert(argv.begin() + 1, {"--ca", suite_->pki.caCert()});
  auto o = run(argv);
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.out, "");
  EXPECT_NE(o.err.find("pyrun: server rejected the certificate"), std::string::npos) << o.err;
}

TEST_F(RunTest, WallClockLimitStopsTheJobAndSaysSo) {
  START_SERVER(server,
               ServerOptions{.max_jobs = 2, .queue = 8, .limits_yaml = "  wall_seconds: 1\n"});
  auto s = script("forever.py", "import time\nprint('ready')\ntime.sleep(600)\n");
  auto o = run(pyrun(*server, s));
  EXPECT_EQ(o.out, "ready\n");
  EXPECT_EQ(o.exit_code, 128 + SIGKILL) << o.err;
  EXPECT_NE(o.err.find("pyrun: wall-clock limit of 1 s exceeded"), std::string::npos) << o.err;
}

TEST_F(RunTest, OutputCapTruncatesAndSaysSo) {
  START_SERVER(server, ServerOptions{.max_jobs = 2, .queue = 8, .limits_yaml = "  output: 1000\n"});
  auto s = script("chatty.py", "import sys\nfor i in range(100000):\n    print('x' * 99)\n");
  auto o = run(pyrun(*server, s));
  std::string expected;
  while (expected.size() < 1000) expected += std::string(99, 'x') + "\n";
  expected.resize(1000);  // exactly up to the cap, not a byte more
  EXPECT_EQ(o.out, expected);
  EXPECT_NE(o.exit_code, 0);
  EXPECT_NE(o.err.find("pyrun: "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("truncated"), std::string::npos) << o.err;
}

TEST_F(RunTest, StatsAreReportedAtTheEnd) {
  START_SERVER(server);
  auto o = run({binary("pyrun"), "--stats", "--cert", alice_, server->address(),
                script("hi.py", "print('hi')\n")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hi\n");
  EXPECT_NE(o.err.find("pyrun: cpu "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("peak memory"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("output 3 bytes (stdout 3, stderr 0)"), std::string::npos) << o.err;
}

// "pyrun:   server NAME  12.34 ms  +1.00" lines of --timings, as (side, name, ms) in order.
struct TimingLine {
  std::string side, name;
  double ms = 0;
};
std::vector<TimingLine> timingLines(const std::string& err) {
  std::vector<TimingLine> out;
  size_t at = 0;
  while (at < err.size()) {
    size_t end = err.find('\n', at);
    if (end == std::string::npos) end = err.size();
    std::string line = err.substr(at, end - at);
    at = end + 1;
    char side[16] = {}, name[64] = {};
    double ms = 0;
    if (std::sscanf(line.c_str(), "pyrun:   %15s %63s %lf ms", side, name, &ms) == 3) {
      out.push_back({side, name, ms});
    }
  }
  return out;
}

TEST_F(RunTest, TimingsShowEveryStageOfAJobInOrder) {
  START_SERVER(server);
  auto o = run({binary("pyrun"), "--timings", "--cert", alice_, server->address(),
                script("hi.py", "print('hi')\n")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hi\n");
  EXPECT_NE(o.err.find("pyrun: timings: "), std::string::npos) << o.err;
  std::map<std::string, double> server_at, client_at;
  std::vector<std::string> server_order;
  for (const auto& l : timingLines(o.err)) {
    if (l.side == "server") {
      server_at[l.name] = l.ms;
      server_order.push_back(l.name);
    } else if (l.side == "client") {
      client_at[l.name] = l.ms;
    }
  }
  // The stages whose order is fixed for a job that prints: a cold one passes clone .. exec, one of
  // the warm pool was handed over instead. cgroup is left out: a host without usable cgroups has
  // none.
  const bool warm = server_at.count("handoff") != 0;
  const std::vector<std::string> chain =
      warm ? std::vector<std::string>{"accept",  "handshake", "run",  "spawn",
                                      "workdir", "handoff",   "exit", "exit-sent"}
           : std::vector<std::string>{"accept", "handshake", "run",  "spawn", "workdir",  "clone",
                                      "root",   "confined",  "exec", "exit",  "exit-sent"};
  // With the pool off every job is cold; with it on, a job may still start cold (no parked job
  // ready yet), so only the first case is certain.
  if (poolSizeYaml() == "pool_size: 0\n") {
    EXPECT_FALSE(warm) << o.err;
  }
  if (warm) {
    for (const char* parked : {"cgroup", "clone", "root", "confined", "exec"}) {
      EXPECT_EQ(server_at.count(parked), 0u) << parked << " of a parked job\n" << o.err;
    }
  }
  for (const auto& name : chain) EXPECT_EQ(server_at.count(name), 1u) << name << "\n" << o.err;
  for (size_t i = 1; i < chain.size(); ++i) {
    EXPECT_LE(server_at[chain[i - 1]], server_at[chain[i]])
        << chain[i - 1] << " after " << chain[i] << "\n"
        << o.err;
  }
  EXPECT_EQ(server_at["accept"], 0.0);
  ASSERT_EQ(server_at.count("first-output"), 1u) << o.err;
  EXPECT_LE(server_at[warm ? "handoff" : "exec"], server_at["first-output"]) << o.err;
  EXPECT_LE(server_at["first-output"], server_at["exit-sent"]) << o.err;
  if (!warm && server_at.count("cgroup") != 0) {
    EXPECT_LE(server_at["spawn"], server_at["cgroup"]) << o.err;
    EXPECT_LE(server_at["cgroup"], server_at["clone"]) << o.err;
  }
  EXPECT_EQ(server_order.front(), "accept");
  EXPECT_EQ(server_order.back(), "exit-sent");
  const std::vector<std::string> client_chain = {"connect", "tcp",          "handshake", "ready",
                                                 "started", "first-output", "exit",      "timings"};
  for (const auto& name : client_chain) {
    EXPECT_EQ(client_at.count(name), 1u) << name << "\n" << o.err;
  }
  for (size_t i = 1; i < client_chain.size(); ++i) {
    EXPECT_LE(client_at[client_chain[i - 1]], client_at[client_chain[i]]) << o.err;
  }
}

TEST_F(RunTest, NoTimingsUnlessAskedFor) {
  START_SERVER(server);
  auto o = run({binary("pyrun"), "--stats", "--cert", alice_, server->address(),
                script("hi.py", "print('hi')\n")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.err.find("timings"), std::string::npos) << o.err;
  EXPECT_TRUE(timingLines(o.err).empty()) << o.err;
}

TEST_F(RunTest, TimingsOfAFailingJobStillCome) {
  START_SERVER(server);
  auto o = run({binary("pyrun"), "--timings", "--cert", alice_, server->address(),
                script("boom.py", "raise SystemExit(7)\n")});
  EXPECT_EQ(o.exit_code, 7) << o.err;
  bool exit_sent = false;
  for (const auto& l : timingLines(o.err)) exit_sent |= l.side == "server" && l.name == "exit-sent";
  EXPECT_TRUE(exit_sent) << o.err;
}

TEST_F(RunTest, VerboseSaysWhereAndWhat) {
  START_SERVER(server);
  auto o = run({binary("pyrun"), "-v", "--cert", alice_, server->address(),
                script("hi.py", "print('hi')\n")});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hi\n");
  EXPECT_EQ(o.err.rfind("pyrun: connected to " + server->address() + " (pyrund", 0), 0u) << o.err;
  EXPECT_NE(o.err.find("pyrun: job "), std::string::npos) << o.err;
  // Without -v a job that did not wait says nothing at all.
  auto quiet =
      run({binary("pyrun"), "--cert", alice_, server->address(), script("hi.py", "print('hi')\n")});
  EXPECT_EQ(quiet.err, "");
}

TEST_F(RunTest, RunsTheExampleFromAnyDirectory) {
  START_SERVER(server);
  RunOptions ro;
  ro.cwd = "/";
  auto o = run({binary("pyrun"), "--cert", alice_, server->address(),
                std::string(PYRUN_SOURCE_DIR) + "/examples/fib.py", "20"},
               ro);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "fib(20) = 6765\n");
}

// ---- failures before any server is involved ----

int closedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);  // nothing listens there now
  return ntohs(a.sin_port);
}

TEST_F(RunTest, ConnectionRefusedIsOneLine) {
  int port = closedPort();
  auto o = run({binary("pyrun"), "--cert", alice_, "127.0.0.1:" + std::to_string(port),
                script("ok.py", "print(1)\n")});
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.err, "pyrun: cannot connect to 127.0.0.1:" + std::to_string(port) +
                       ": Connection refused\n");
}

TEST_F(RunTest, LooseCertificateModeIsRefusedBeforeConnecting) {
  std::string loose = dir_ / "loose.pem";
  writeFile(loose, readFileOrEmpty(alice_), 0644);
  auto o = run({binary("pyrun"), "--cert", loose, "127.0.0.1:" + std::to_string(closedPort()),
                script("ok.py", "print(1)\n")});
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.err.rfind("pyrun: ", 0), 0u) << o.err;
  EXPECT_NE(o.err.find("0644"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("connect"), std::string::npos) << o.err;
}

TEST_F(RunTest, MissingCertificateSaysWhereItLooked) {
  RunOptions ro;
  ro.env["HOME"] = dir_.path();
  ro.env["PYRUN_CERT"] = "";
  auto o = run({binary("pyrun"), "127.0.0.1:1", script("ok.py", "print(1)\n")}, ro);
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.err, "pyrun: no client certificate at " + dir_.path() +
                       "/.config/pyrun/me.pem (give --cert FILE or set PYRUN_CERT; `pyrun-ca "
                       "client` makes one)\n");
}

TEST_F(RunTest, MissingScriptIsOneLine) {
  auto o = run({binary("pyrun"), "--cert", alice_, "127.0.0.1:1", dir_ / "nope.py"});
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.err.rfind("pyrun: ", 0), 0u) << o.err;
  EXPECT_NE(o.err.find("nope.py"), std::string::npos) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

TEST_F(RunTest, UsageErrorsAreOneLine) {
  auto o = run({binary("pyrun"), "--bogus", "h", "s.py"});
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.err, "pyrun: unknown option --bogus (see pyrun --help)\n");
  auto help = run({binary("pyrun"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("usage: pyrun"), std::string::npos);
}

}  // namespace
}  // namespace pyrun::test
