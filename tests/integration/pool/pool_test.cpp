// The warm pool (docs/SANDBOX.md, "The warm pool"): the same programs run cold (pool_size 0) and
// warm (pool on) give the same stdout, stderr and exit status byte for byte, and a parked job
// holds nothing of another job, is replaced when killed, and never serves a job under a policy
// that was reloaded since it was parked.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

using namespace std::chrono_literals;

const std::string kDefaultPolicy = PYRUN_SOURCE_DIR "/policy/default.yaml";

// One pyrund with its own directory; pool_size as given.
struct Server {
  Server(Pki& pki, const std::string& name, unsigned pool_size) : dir(name) {
    ::chmod(dir.path().c_str(), 0711);
    writeFile(dir / "limits.yaml",
              "version: 1\ninclude: [" + kDefaultPolicy + "]\nlimits:\n  open_files: 100\n");
    writeFile(dir / "pyrund.yaml",
              "listen: 127.0.0.1\nport: 0\nport_file: " + (dir / "port") +
                  "\ncert: " + pki.serverBundle() + "\njobs_dir: " + (dir / "jobs") +
                  "\ncgroup_subtree: " + name + "-" + std::to_string(::getpid()) +
                  "\nmax_jobs: 2\npool_size: " + std::to_string(pool_size) +
                  "\npolicies:\n  default: " + (dir / "limits.yaml") + "\n",
              0644);  // the front reads it again on SIGHUP as its unprivileged user
    child = std::make_unique<Child>(
        std::vector<std::string>{binary("pyrund"), "--config", dir / "pyrund.yaml"});
    if (eventually([&] { return !readFileOrEmpty(dir / "port").empty(); }, 30s)) {
      port = std::stoi(readFileOrEmpty(dir / "port"));
    }
  }
  ~Server() {
    if (child) {
      child->signal(SIGTERM);
      child->wait(30s);
    }
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  TempDir dir;
  std::unique_ptr<Child> child;
  int port = 0;
};

// Host pids of the processes below `root` whose command line contains `needle`.
std::set<pid_t> descendantsRunning(pid_t root, const std::string& needle) {
  std::map<pid_t, pid_t> parent;
  std::map<pid_t, std::string> cmdline;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return {};
  while (dirent* e = ::readdir(d)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::string stat = readFileOrEmpty("/proc/" + std::string(e->d_name) + "/stat");
    auto paren = stat.rfind(')');
    if (paren == std::string::npos || stat.size() < paren + 4) continue;
    parent[pid] = static_cast<pid_t>(std::atoi(stat.c_str() + paren + 4));
    std::string cmd = readFileOrEmpty("/proc/" + std::string(e->d_name) + "/cmdline");
    for (char& c : cmd) c = c == '\0' ? ' ' : c;
    cmdline[pid] = cmd;
  }
  ::closedir(d);
  std::set<pid_t> out;
  for (const auto& [pid, cmd] : cmdline) {
    if (cmd.find(needle) == std::string::npos) continue;
    for (pid_t p = parent[pid]; p > 1; p = parent.count(p) ? parent[p] : 0) {
      if (p == root) {
        out.insert(pid);
        break;
      }
    }
  }
  return out;
}

std::set<pid_t> parkedInterpreters(const Server& s) {
  return descendantsRunning(s.child->pid(), "/.pyrun/boot.py");
}

class PoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("pool-test");
    ::chmod(dir_->path().c_str(), 0711);
    pki_ = new Pki(dir_->path());
    alice_ = pki_->clientBundle("alice");
    cold_ = new Server(*pki_, "pool-cold", 0);
    warm_ = new Server(*pki_, "pool-warm", 2);
  }
  static void TearDownTestSuite() {
    delete warm_;
    delete cold_;
    delete pki_;
    delete dir_;
  }
  void SetUp() override {
    ASSERT_NE(cold_->port, 0) << "the cold pyrund did not start";
    ASSERT_NE(warm_->port, 0) << "the warm pyrund did not start";
  }

  // A script of this test, written into a directory of its own (the client sends its neighbours).
  std::string script(const std::string& name, const std::string& text) {
    std::string sub = *dir_ / ("s-" + name);
    ::mkdir(sub.c_str(), 0755);
    writeFile(sub + "/" + name + ".py", text);
    return sub + "/" + name + ".py";
  }

  Outcome runOn(const Server& s, const std::string& path, const std::vector<std::string>& args = {},
                const std::string& stdin_data = "") {
    std::vector<std::string> argv = {binary("pyrun"), "--cert", alice_, s.address(), path};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    options.timeout = 60s;
    options.stdin_data = stdin_data;
    return run(argv, options);
  }

  // Waits until the warm server has its pool_size parked interpreters ready to take a job.
  void waitForPool(size_t n = 2) {
    ASSERT_TRUE(eventually([&] { return parkedInterpreters(*warm_).size() >= n; }, 30s))
        << "the pool did not fill";
  }

  static inline TempDir* dir_ = nullptr;
  static inline Pki* pki_ = nullptr;
  static inline Server* cold_ = nullptr;
  static inline Server* warm_ = nullptr;
  static inline std::string alice_;
};

struct Program {
  const char* name;
  const char* text;
  std::vector<std::string> args;
  std::string stdin_data;
};

const std::vector<Program>& programs() {
  static const std::vector<Program> kPrograms = {
      {"state",
       "import sys, os\n"
       "print(sys.argv, sys.path[0], sys.flags, sys.orig_argv[1:])\n"
       "print(sorted(globals()), __name__, __file__, __loader__.name, __spec__, __package__)\n"
       "print(os.getcwd(), sorted(os.environ.items()), sys.executable)\n"
       "print(sys.stdin.read().upper(), end='')\n",
       {"one", "two words", "", "--flag"},
       "fed through stdin\n"},
      {"traceback",
       "def inner():\n    raise ValueError('boom')\n\ndef outer():\n    inner()\n\nouter()\n",
       {},
       ""},
      {"chained",
       "try:\n    {}['k']\nexcept KeyError as e:\n    raise RuntimeError('wrapped') from e\n",
       {},
       ""},
      {"exit_code", "import sys\nprint('before')\nsys.exit(7)\n", {}, ""},
      {"exit_message", "import sys\nsys.exit('a message')\n", {}, ""},
      {"interrupt", "raise KeyboardInterrupt\n", {}, ""},
      {"signal", "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", {}, ""},
      {"syntax", "print('never'\n", {}, ""},
      {"atexit",
       "import atexit, sys\natexit.register(lambda: print('atexit ran'))\n"
       "sys.excepthook = lambda t, v, tb: print('hook', t.__name__, v)\n"
       "raise OSError('custom hook')\n",
       {},
       ""},
      {"unicode", "import sys\nprint(sys.argv[1:], '\\u00e9\\u4e2d')\n", {"\xc3\xa9t\xc3\xa9"}, ""},
      {"limits",
       "import resource\n"
       "for r in ('RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_NOFILE', 'RLIMIT_AS', 'RLIMIT_NPROC',\n"
       "          'RLIMIT_CORE'):\n"
       "    print(r, resource.getrlimit(getattr(resource, r)))\n",
       {},
       ""},
      {"modules_shadowing",
       "import sys\nprint(sorted(k for k in sys.modules if not k.startswith('_')) == "
       "sorted(k for k in sys.modules if not k.startswith('_')))\n"
       "print(sys.path == [sys.path[0]] + sys.path[1:], sys.path[0])\n",
       {},
       ""},
  };
  return kPrograms;
}

TEST_F(PoolTest, ColdAndWarmRunsAreTheSameByteForByte) {
  for (const auto& p : programs()) {
    SCOPED_TRACE(p.name);
    const std::string path = script(p.name, p.text);
    waitForPool();
    Outcome warm = runOn(*warm_, path, p.args, p.stdin_data);
    Outcome cold = runOn(*cold_, path, p.args, p.stdin_data);
    EXPECT_EQ(warm.out, cold.out);
    EXPECT_EQ(warm.err, cold.err);
    EXPECT_EQ(warm.exit_code, cold.exit_code);
    EXPECT_EQ(warm.signaled, cold.signaled);
  }
  // The warm server did hand them to parked interpreters.
  EXPECT_NE(warm_->child->readStderrUntil("handed to a parked interpreter", 10s)
                .find("handed to a parked interpreter"),
            std::string::npos);
}

TEST_F(PoolTest, ModulesBesideTheScriptShadowTheStandardLibraryWarmAsCold) {
  // The boot module imported resource (and os, sys) before the hand-off; a module the client
  // sends under such a name is what the script imports, as in a cold start.
  const std::string path = script("shadowed",
                                  "import resource, random\n"
                                  "print(resource.__file__, random.__file__, resource.WHO)\n");
  writeFile(path.substr(0, path.rfind('/')) + "/resource.py", "WHO = 'client'\n");
  writeFile(path.substr(0, path.rfind('/')) + "/random.py", "WHO = 'client'\n");
  waitForPool();
  Outcome warm = runOn(*warm_, path);
  Outcome cold = runOn(*cold_, path);
  EXPECT_EQ(warm.out, cold.out) << warm.err << cold.err;
  EXPECT_EQ(warm.err, cold.err);
  EXPECT_NE(warm.out.find("/job/resource.py"), std::string::npos) << warm.out << warm.err;
}

TEST_F(PoolTest, TheJobsInitHasANameOfItsOwn) {
  const std::string path =
      script("init_name",
             "print(repr(open('/proc/1/cmdline', 'rb').read()), open('/proc/1/comm').read())\n");
  waitForPool();
  for (const Server* s : {warm_, cold_}) {
    Outcome o = runOn(*s, path);
    EXPECT_EQ(o.out, "b'pyrun-init\\x00' pyrun-init\n\n") << o.err;
  }
}

TEST_F(PoolTest, PooledJobsGetTheirOwnRandomnessHashSeedAndLayout) {
  const std::string path = script(
      "fresh", "import random\nprint(random.random(), hash('pyrun'), id(object()), id(print))\n");
  waitForPool();
  Outcome first = runOn(*warm_, path);
  waitForPool();
  Outcome second = runOn(*warm_, path);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ASSERT_EQ(second.exit_code, 0) << second.err;
  auto fields = [](const std::string& line) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : line) {
      if (c == ' ' || c == '\n') {
        if (!cur.empty()) out.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    return out;
  };
  auto a = fields(first.out), b = fields(second.out);
  ASSERT_EQ(a.size(), 4u) << first.out;
  ASSERT_EQ(b.size(), 4u) << second.out;
  EXPECT_NE(a[0], b[0]) << "random sequence";
  EXPECT_NE(a[1], b[1]) << "hash seed";
  EXPECT_NE(a[2], b[2]) << "heap layout";
  EXPECT_NE(a[3], b[3]) << "address space layout";
}

TEST_F(PoolTest, ASecondJobFindsNothingTheFirstLeft) {
  const std::string writer = script("writer",
                                    "import os\n"
                                    "for d in ('/tmp', '/job', '/dev/shm'):\n"
                                    "    open(d + '/left-behind', 'w').write('secret')\n"
                                    "os.environ['LEFT_BEHIND'] = 'secret'\n"
                                    "os.putenv('LEFT_BEHIND', 'secret')\n"
                                    "print('written')\n");
  const std::string reader =
      script("reader",
             "import os\n"
             "print([d for d in ('/tmp', '/job', '/dev/shm') "
             "if os.path.exists(d + '/left-behind')], os.environ.get('LEFT_BEHIND'), "
             "sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')))\n");
  for (int round = 0; round < 3; ++round) {
    waitForPool();
    Outcome w = runOn(*warm_, writer);
    ASSERT_EQ(w.out, "written\n") << w.err;
    Outcome r = runOn(*warm_, reader);
    EXPECT_EQ(r.out, "[] None [] []\n") << r.err;
  }
}

TEST_F(PoolTest, AJobCannotSeeOrSignalAParkedJob) {
  waitForPool();
  const std::set<pid_t> before = parkedInterpreters(*warm_);
  const std::string path = script("killer",
                                  "import os, signal\n"
                                  "pids = sorted(int(p) for p in os.listdir('/proc') "
                                  "if p.isdigit())\n"
                                  "print(pids[:2])\n"
                                  "for pid in range(3, 70000):\n"
                                  "    try:\n"
                                  "        os.kill(pid, signal.SIGKILL)\n"
                                  "    except (ProcessLookupError, PermissionError):\n"
                                  "        pass\n"
                                  "os.kill(-1, signal.SIGKILL)\n");
  Outcome out = runOn(*warm_, path);
  // Its own init and itself (pid 1 and 2, and any other it made itself): no parked process.
  EXPECT_EQ(out.out.substr(0, 7), "[1, 2]\n") << out.out << out.err;
  // The parked jobs it could not reach are still there (but the one it was handed to).
  const std::set<pid_t> after = parkedInterpreters(*warm_);
  size_t survivors = 0;
  for (pid_t p : before) survivors += after.count(p);
  EXPECT_GE(survivors, before.size() - 1);
}

TEST_F(PoolTest, AParkedJobKilledFromOutsideIsReplaced) {
  waitForPool();
  const std::set<pid_t> before = parkedInterpreters(*warm_);
  ASSERT_FALSE(before.empty());
  pid_t victim = *before.begin();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  EXPECT_TRUE(eventually(
      [&] {
        auto now = parkedInterpreters(*warm_);
        return now.size() >= 2 && now.count(victim) == 0;
      },
      30s))
      << "the killed parked job was not replaced";
  const std::string path = script("after_kill", "print('fine')\n");
  Outcome out = runOn(*warm_, path);
  EXPECT_EQ(out.out, "fine\n") << out.err;
  EXPECT_EQ(out.exit_code, 0);
}

TEST_F(PoolTest, AReloadDrainsThePoolAndNoJobRunsUnderTheOldPolicy) {
  const std::string path =
      script("nofile", "import resource\nprint(resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n");
  waitForPool();
  Outcome old_policy = runOn(*warm_, path);
  EXPECT_EQ(old_policy.out, "100\n") << old_policy.err;
  waitForPool();
  const std::set<pid_t> before = parkedInterpreters(*warm_);
  writeFile(warm_->dir / "limits.yaml",
            "version: 1\ninclude: [" + kDefaultPolicy + "]\nlimits:\n  open_files: 50\n");
  warm_->child->signal(SIGHUP);
  const std::string log = warm_->child->readStderrUntil("reloaded", 30s);
  ASSERT_NE(log.find("reloaded"), std::string::npos)
      << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
  // At once, whether or not the pool is rebuilt yet: never the old policy's limit.
  Outcome new_policy = runOn(*warm_, path);
  EXPECT_EQ(new_policy.out, "50\n") << new_policy.err;
  // Every parked job of the old set is gone, and the pool is full again.
  EXPECT_TRUE(eventually(
      [&] {
        auto now = parkedInterpreters(*warm_);
        for (pid_t p : before) {
          if (now.count(p) != 0) return false;
        }
        return now.size() >= 2;
      },
      30s))
      << "the pool was not drained and rebuilt";
  writeFile(warm_->dir / "limits.yaml",
            "version: 1\ninclude: [" + kDefaultPolicy + "]\nlimits:\n  open_files: 100\n");
  warm_->child->signal(SIGHUP);
  warm_->child->readStderrUntil("reloaded", 30s);
}

TEST_F(PoolTest, LimitsCanOnlyBeLoweredAtTheHandOff) {
  // A RUN asking for less CPU than the policy gives gets it, warm as cold.
  const std::string text = "import resource\nprint(resource.getrlimit(resource.RLIMIT_CPU))\n";
  waitForPool();
  auto argv = [&](const Server& s) {
    return std::vector<std::string>{
        "python3", LIMITS_CLIENT, std::to_string(s.port), alice_, pki_->caCert(), "3", text};
  };
  Outcome warm = run(argv(*warm_));
  Outcome cold = run(argv(*cold_));
  EXPECT_EQ(warm.out, cold.out) << warm.err << cold.err;
  EXPECT_EQ(warm.out, "(3, 4)\n") << warm.err;
}

}  // namespace
}  // namespace pyrun::test
