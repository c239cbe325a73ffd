// pyrun with real projects against a real pyrund on 127.0.0.1: the modules beside the script go
// with it, -f sends files and directories of any size (streamed, flat memory on both sides), and
// the policy's working-directory quota is enforced while the upload arrives.
#include <dirent.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/pki.h"
#include "support/process.h"
#include "support/pyrund.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

using namespace std::chrono_literals;

bool exited(pid_t pid) {
  std::string stat = readFileOrEmpty("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren == std::string::npos || stat.size() < paren + 3 || stat[paren + 2] == 'Z';
}

// VmHWM of a process in bytes (0 once it is gone).
uint64_t peakRss(pid_t pid) {
  std::string status = readFileOrEmpty("/proc/" + std::to_string(pid) + "/status");
  auto at = status.find("VmHWM:");
  if (at == std::string::npos) return 0;
  return std::stoull(status.substr(at + 6)) * 1024;
}

size_t entriesIn(const std::string& dir) {
  size_t n = 0;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") ++n;
  }
  ::closedir(d);
  return n;
}

// Entries of the jobs directory other than the spawner's own (.root, .uploads, and .templates as
// root): working directories and uploads left behind.
size_t jobEntriesIn(const std::string& jobs_dir) {
  size_t n = entriesIn(jobs_dir);
  for (const char* own : {"/.root", "/.uploads", "/.templates"}) {
    struct stat st {};
    if (n > 0 && ::lstat((jobs_dir + own).c_str(), &st) == 0) --n;
  }
  return n;
}

// A pyrund whose one policy extends policy/default.yaml with `limits_yaml`.
class Server {
 public:
  Server(const std::string& bundle, const std::string& crl, const std::string& limits_yaml)
      : pyrund_(dir_.path(), options(dir_, bundle, crl, limits_yaml)) {}

  bool started() const { return pyrund_.started(); }
  const std::string& startError() const { return pyrund_.startError(); }
  int port() const { return pyrund_.port(); }
  pid_t pid() const { return pyrund_.pid(); }
  std::string jobsDir() const { return pyrund_.jobsDir(); }
  std::string uploadsDir() const { return jobsDir() + "/.uploads"; }
  std::string address() const { return pyrund_.address(); }

 private:
  static PyrundOptions options(const TempDir& dir, const std::string& bundle,
                               const std::string& crl, const std::string& limits_yaml) {
    writeFile(dir / "policy.yaml",
              "version: 1\ninclude: [" + std::string(PYRUN_SOURCE_DIR) + "/policy/default.yaml]\n" +
                  (limits_yaml.empty() ? "" : "limits:\n" + limits_yaml),
              0644);
    PyrundOptions p;
    p.cert = bundle;
    p.crl = crl;
    p.config_yaml = "policies:\n  default: " + (dir / "policy.yaml") +
                    "\nmax_jobs_per_identity: 1000\njob_starts_per_minute: 1000\n";
    // The upload test measures pyrund's memory.
    p.run.env["ASAN_OPTIONS"] = asanOptionsForMemoryMeasures();
    return p;
  }

  TempDir dir_{"project-srv"};
  Pyrund pyrund_;
};

class ProjectTest : public ::testing::Test {
 protected:
  // The PKI of the whole suite.
  struct SuitePki {
    TempDir dir{"project-pki"};
    Pki pki{dir.path()};
    std::string server_bundle = pki.serverBundle();
    std::string alice = pki.clientBundle("alice");
  };
  static void SetUpTestSuite() {
    suite_ = std::make_unique<SuitePki>();
    server_bundle_ = suite_->server_bundle;
    alice_ = suite_->alice;
  }
  static void TearDownTestSuite() { suite_.reset(); }

  // A started server, or nullptr (the failure already reported with pyrund's stderr).
  std::unique_ptr<Server> startServer(const std::string& limits_yaml = "") {
    auto s = std::make_unique<Server>(server_bundle_, suite_->pki.crl(), limits_yaml);
    if (!s->started()) {
      ADD_FAILURE() << s->startError();
      return nullptr;
    }
    return s;
  }

  // Writes `body` at dir_/rel, creating the directories on the way.
  std::string put(const std::string& rel, const std::string& body, mode_t mode = 0644) {
    for (size_t slash = rel.find('/'); slash != std::string::npos;
         slash = rel.find('/', slash + 1)) {
      ::mkdir((dir_ / rel.substr(0, slash)).c_str(), 0755);
    }
    writeFile(dir_ / rel, body, mode);
    return dir_ / rel;
  }

  std::vector<std::string> pyrun(const Server& s, std::vector<std::string> options,
                                 const std::string& script, std::vector<std::string> args = {}) {
    std::vector<std::string> argv = {binary("pyrun"), "--cert", alice_};
    argv.insert(argv.end(), options.begin(), options.end());
    argv.push_back(s.address());
    argv.push_back(script);
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  TempDir dir_{"project"};
  static inline std::unique_ptr<SuitePki> suite_;
  static inline std::string server_bundle_, alice_;
};

#define START_SERVER(var, ...)         \
  auto var = startServer(__VA_ARGS__); \
  ASSERT_TRUE(var) << "pyrund did not start"

// A Python program that lists the job's working directory, sorted, one path a line.
constexpr const char* kListing =
    "import os\n"
    "for root, dirs, files in sorted(os.walk('.')):\n"
    "    for f in sorted(files):\n"
    "        print(os.path.relpath(os.path.join(root, f), '.'))\n";

TEST_F(ProjectTest, RunsAProjectWithAPackageAndRelativeImports) {
  START_SERVER(server);
  put("app/util.py", "def twice(x):\n    return 2 * x\n");
  put("app/pkg/__init__.py", "");
  put("app/pkg/sub/__init__.py", "from .helper import NAME\n");
  put("app/pkg/sub/helper.py", "from ..base import BASE\nNAME = BASE + '-helper'\n");
  put("app/pkg/base.py", "BASE = 'base'\n");
  auto main = put("app/main.py",
                  "import sys, util, pkg.sub\n"
                  "print(util.twice(21), pkg.sub.NAME, sys.argv[0])\n");
  auto o = run(pyrun(*server, {}, main));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "42 base-helper /job/main.py\n");
}

TEST_F(ProjectTest, SendsOnlyWhatIsImportableFromTheScriptsDirectory) {
  START_SERVER(server);
  put("lib/elsewhere.py", "X = 1\n");               // not beside the script
  put("app/notpkg/mod.py", "X = 1\n");              // a directory without __init__.py
  put("app/.hidden.py", "X = 1\n");                 // hidden
  put("app/__pycache__/util.cpython-311.pyc", "");  // caches
  put("app/data.txt", "not a module\n");            // not a .py file
  put("app/pkg/__init__.py", "");
  put("app/pkg/notes.txt", "not a module\n");
  put("app/pkg/__pycache__/x.py", "");
  put("app/util.py", "X = 1\n");
  ASSERT_EQ(::symlink((dir_ / "lib/elsewhere.py").c_str(), (dir_ / "app/linked.py").c_str()), 0);
  auto main = put("app/main.py", kListing);
  auto o = run(pyrun(*server, {}, main));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "main.py\nutil.py\npkg/__init__.py\n");
}

TEST_F(ProjectTest, NoModulesSendsTheScriptAlone) {
  START_SERVER(server);
  put("app/util.py", "X = 1\n");
  auto main = put("app/main.py", kListing);
  auto o = run(pyrun(*server, {"--no-modules"}, main));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "main.py\n");
}

TEST_F(ProjectTest, VerboseListsWhatIsSent) {
  START_SERVER(server);
  put("app/util.py", "X = 1\n");
  auto main = put("app/main.py", "pass\n");
  auto o = run(pyrun(*server, {"-v"}, main));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.err.find("pyrun: sending util.py (6 bytes)"), std::string::npos) << o.err;
}

TEST_F(ProjectTest, RefusesTooManyModulesBeforeConnecting) {
  put("app/main.py", "pass\n");
  for (int i = 0; i < 1001; ++i) put("app/m" + std::to_string(i) + ".py", "");
  // Port 1 on 127.0.0.1: nothing listens, so success would need pyrun to refuse first.
  auto o = run({binary("pyrun"), "--cert", alice_, "127.0.0.1:1", dir_ / "app/main.py"});
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_NE(o.err.find("holds more than 1000 importable files"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("--no-modules"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("connect"), std::string::npos) << o.err;
}

TEST_F(ProjectTest, SendsFilesAndDirectoriesWithDestinations) {
  START_SERVER(server);
  put("in/data.csv", "a,b\n1,2\n");
  put("in/sub/deep.txt", "deep\n", 0600);
  put("single.txt", "one\n", 0755);
  auto main = put("app/main.py", "import os, stat\n" + std::string(kListing) +
                                     "print(open('input/sub/deep.txt').read(), end='')\n"
                                     "print(oct(stat.S_IMODE(os.stat('conf/x.txt').st_mode)))\n");
  auto o =
      run(pyrun(*server,
                {"--no-modules", "-f", dir_ / "in:input",
                 "--file=" + (dir_ / "single.txt") + ":conf/x.txt", "-f", dir_ / "in/data.csv"},
                main));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out,
            "data.csv\nmain.py\nconf/x.txt\ninput/data.csv\ninput/sub/deep.txt\ndeep\n0o755\n");
}

TEST_F(ProjectTest, RefusesBadDestinationsBeforeConnecting) {
  put("x.txt", "x\n");
  auto main = put("main.py", "pass\n");
  for (std::string dest : {"../x", "/etc/x", "a/../../x", "main.py"}) {
    auto o =
        run({binary("pyrun"), "--cert", alice_, "-f", dir_ / "x.txt:" + dest, "127.0.0.1:1", main});
    EXPECT_EQ(o.exit_code, 255) << dest;
    EXPECT_EQ(o.err.find("connect"), std::string::npos) << dest << ": " << o.err;
  }
}

TEST_F(ProjectTest, RefusesAnUploadAboveThePolicysWorkdirBeforeTheProgramStarts) {
  START_SERVER(server, "  workdir: 1M\n");
  put("big.bin", std::string(2u << 20, 'x'));
  auto main = put("main.py", "print('must not run')\n");
  auto o = run(pyrun(*server, {"-f", dir_ / "big.bin"}, main));
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.out, "");
  EXPECT_NE(o.err.find("working directory limit (workdir) of 1 MiB of policy \"default\""),
            std::string::npos)
      << o.err;
  EXPECT_TRUE(eventually([&] { return entriesIn(server->uploadsDir()) == 0; }));
}

TEST_F(ProjectTest, RemovesThePartialUploadWhenTheQuotaRunsOutMidway) {
  START_SERVER(server, "  workdir: 1M\n");
  put("in/a.bin", std::string(700u << 10, 'a'));
  put("in/b.bin", std::string(700u << 10, 'b'));
  auto main = put("main.py", "print('must not run')\n");
  auto o = run(pyrun(*server, {"-f", dir_ / "in"}, main));
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.out, "");
  EXPECT_NE(o.err.find("file \"in/b.bin\""), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("policy \"default\""), std::string::npos) << o.err;
  EXPECT_TRUE(eventually([&] { return entriesIn(server->uploadsDir()) == 0; }));
  // Eventually: the pool's refill has a working directory there for a moment while it parks a job.
  EXPECT_TRUE(eventually([&] { return jobEntriesIn(server->jobsDir()) == 0; }));
}

TEST_F(ProjectTest, RefusesMoreFilesThanThePolicyAllows) {
  START_SERVER(server, "  workdir_files: 3\n");
  for (int i = 0; i < 4; ++i) put("in/f" + std::to_string(i), "x");
  auto main = put("main.py", "print('must not run')\n");
  auto o = run(pyrun(*server, {"--no-modules", "-f", dir_ / "in"}, main));
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_NE(o.err.find("workdir_files"), std::string::npos) << o.err;
  EXPECT_TRUE(eventually([&] { return entriesIn(server->uploadsDir()) == 0; }));
}

std::string sha256OfFile(const std::string& path) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  std::string out;
  char hex[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", digest[i]);
    out += hex;
  }
  return out;
}

// Runs argv while sampling VmHWM of it and of `server_pid`; returns the outcome and both peaks.
struct Measured {
  Outcome outcome;
  uint64_t client_peak = 0;
  uint64_t server_peak = 0;
};
Measured runMeasured(const std::vector<std::string>& argv, pid_t server_pid) {
  Measured m;
  RunOptions options;
  options.env["ASAN_OPTIONS"] = asanOptionsForMemoryMeasures();
  Child c(argv, options);
  while (!exited(c.pid())) {
    m.client_peak = std::max(m.client_peak, peakRss(c.pid()));
    m.server_peak = std::max(m.server_peak, peakRss(server_pid));
    std::this_thread::sleep_for(20ms);
  }
  m.server_peak = std::max(m.server_peak, peakRss(server_pid));
  m.outcome = c.wait(600s);
  return m;
}

TEST_F(ProjectTest, UploadsOneGibibyteWithFlatMemoryOnBothSides) {
  START_SERVER(server, "  workdir: 1100M\n  memory: 2G\n  wall_seconds: 600\n");
  const std::string big = dir_ / "big.bin";
  {
    // Not all one byte value: a bug that drops or repeats a chunk changes the hash.
    std::ofstream out(big, std::ios::binary);
    std::vector<char> chunk(1 << 20);
    for (int i = 0; i < 1024; ++i) {
      for (size_t j = 0; j < chunk.size(); j += 4096)
        chunk[j] = static_cast<char>(static_cast<size_t>(i) + j / 4096);
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
  }
  const std::string expected = sha256OfFile(big);
  auto main = put("main.py",
                  "import hashlib\nh = hashlib.sha256()\n"
                  "with open('big.bin', 'rb') as f:\n"
                  "    while chunk := f.read(1 << 20):\n        h.update(chunk)\n"
                  "print(h.hexdigest())\n");
  // The idle sizes: the same programs running a job with nothing to upload.
  auto idle_script = put("idle.py", "pass\n");
  auto idle = runMeasured(pyrun(*server, {"--no-modules"}, idle_script), server->pid());
  ASSERT_EQ(idle.outcome.exit_code, 0) << idle.outcome.err;
  auto m = runMeasured(pyrun(*server, {"--no-modules", "--stats", "-f", big}, main), server->pid());
  ASSERT_EQ(m.outcome.exit_code, 0) << m.outcome.err;
  EXPECT_EQ(m.outcome.out, expected + "\n");
  EXPECT_NE(m.outcome.err.find("uploaded 1073741824 bytes in 1 files"), std::string::npos)
      << m.outcome.err;
  std::fprintf(stderr, "peak RSS: pyrun %.1f MiB (idle %.1f), pyrund %.1f MiB (idle %.1f)\n",
               static_cast<double>(m.client_peak) / 1048576,
               static_cast<double>(idle.client_peak) / 1048576,
               static_cast<double>(m.server_peak) / 1048576,
               static_cast<double>(idle.server_peak) / 1048576);
  EXPECT_LT(m.client_peak, idle.client_peak + (16u << 20));
  EXPECT_LT(m.server_peak, idle.server_peak + (16u << 20));
}

TEST_F(ProjectTest, GetsResultFilesByteExactWithTheirModes) {
  START_SERVER(server);
  auto main = put("main.py",
                  "import os\n"
                  "os.makedirs('out', exist_ok=True)\n"
                  "os.makedirs('results/deep/er', exist_ok=True)\n"
                  "open('out/a.png', 'wb').write(bytes(range(256)) * 10)\n"
                  "open('out/skip.txt', 'w').write('not asked for')\n"
                  "open('report.csv', 'w').write('x,y\\n1,2\\n')\n"
                  "os.chmod('report.csv', 0o640)\n"
                  "open('results/deep/er/r.txt', 'w').write('deep')\n"
                  "for i in range(300):\n"
                  "    open('results/s%03d' % i, 'w').write(str(i))\n");
  const std::string out = dir_ / "got";
  auto o = run(pyrun(
      *server,
      {"--stats", "--get", "out/*.png", "--get", "report.csv", "--get", "results/**", "-o", out},
      main));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  std::string png;
  for (int i = 0; i < 10; ++i) {
    for (int b = 0; b < 256; ++b) png += static_cast<char>(b);
  }
  EXPECT_EQ(readFileOrEmpty(out + "/out/a.png"), png);
  EXPECT_EQ(readFileOrEmpty(out + "/report.csv"), "x,y\n1,2\n");
  struct stat st {};
  ASSERT_EQ(::stat((out + "/report.csv").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  EXPECT_EQ(readFileOrEmpty(out + "/results/deep/er/r.txt"), "deep");
  for (int i = 0; i < 300; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/results/s%03d", i);
    ASSERT_EQ(readFileOrEmpty(out + name), std::to_string(i)) << name;
  }
  EXPECT_NE(::access((out + "/out/skip.txt").c_str(), F_OK), 0);
  EXPECT_NE(o.err.find("downloaded"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("in 303 files"), std::string::npos) << o.err;
  // Neither the staged copies nor anything else of the job is left on the server.
  EXPECT_TRUE(eventually([&] { return entriesIn(server->uploadsDir()) == 0; }));
}

TEST_F(ProjectTest, GetsAResultAfterAFailedRun) {
  START_SERVER(server);
  auto main = put("main.py", "open('crash.log', 'w').write('it broke')\nraise SystemExit(3)\n");
  auto o = run(pyrun(*server, {"--get", "crash.log", "-o", dir_ / "got"}, main));
  EXPECT_EQ(o.exit_code, 3) << o.err;
  EXPECT_EQ(readFileOrEmpty(dir_ / "got/crash.log"), "it broke") << o.err;
}

// Nothing is lost silently: a result the server leaves out is named in pyrun's last line.
TEST_F(ProjectTest, SaysWhichResultsWereLeftOut) {
  START_SERVER(server);
  auto main = put("main.py",
                  "import os\n"
                  "open('top.txt', 'w').write('top')\n"
                  "deep = '/'.join(['d'] * 70)\n"
                  "os.makedirs(deep)\n"
                  "open(deep + '/bottom.txt', 'w').write('bottom')\n");
  const std::string out = dir_ / "got";
  auto o = run(pyrun(*server, {"--no-modules", "--get", "**", "-o", out}, main));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(readFileOrEmpty(out + "/top.txt"), "top");
  EXPECT_NE(o.err.find("pyrun: results incomplete: "), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("deeper than 64 levels, left out"), std::string::npos) << o.err;
}

TEST_F(ProjectTest, GetBringsNoContentOfLinksTheJobPlanted) {
  START_SERVER(server);
  auto main = put("main.py",
                  "import os\n"
                  "os.symlink('/etc/passwd', 'out.txt')\n"
                  "os.symlink('/etc', 'etcdir')\n"
                  "os.symlink('/proc/self/environ', 'env.txt')\n"
                  "for src, dst in (('/etc/passwd', 'hard'), ('/usr/bin/python3', 'py')):\n"
                  "    try:\n"
                  "        os.link(src, dst)\n"
                  "    except OSError as e:\n"
                  "        print('link', dst, 'refused:', e.errno)\n"
                  "open('plain.txt', 'w').write('plain')\n");
  const std::string out = dir_ / "got";
  auto o = run(pyrun(*server, {"--get", "*", "--get", "etcdir/**", "-o", out}, main));
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(readFileOrEmpty(out + "/plain.txt"), "plain") << o.err;
  // The script itself matches "*" too; no link, nor anything behind one, came back.
  EXPECT_EQ(readFileOrEmpty(out + "/main.py"), readFileOrEmpty(main)) << o.err;
  EXPECT_EQ(entriesIn(out), 2u) << o.out;
}

TEST_F(ProjectTest, GetsA200MiBResultByteExact) {
  START_SERVER(server, "  workdir: 300M\n  memory: 1G\n  file_size: 300M\n");
  auto main = put("main.py",
                  "import hashlib\nh = hashlib.sha256()\n"
                  "with open('big.bin', 'wb') as f:\n"
                  "    for i in range(200):\n"
                  "        chunk = bytes([i]) * (1 << 20)\n"
                  "        h.update(chunk)\n        f.write(chunk)\n"
                  "print(h.hexdigest())\n");
  auto o = run(pyrun(*server, {"--get", "big.bin", "-o", dir_ / "got"}, main));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(sha256OfFile(dir_ / "got/big.bin") + "\n", o.out);
}

TEST_F(ProjectTest, ResultsOfAClientThatWentAwayAreRemoved) {
  START_SERVER(server);
  auto main = put("main.py",
                  "import time\nopen('r.txt', 'w').write('x')\nprint('ready', flush=True)\n"
                  "time.sleep(600)\n");
  Child c(pyrun(*server, {"--get", "r.txt", "-o", dir_ / "got"}, main));
  ASSERT_NE(c.readStdoutUntil("ready\n", 60s).find("ready"), std::string::npos);
  c.signal(SIGKILL);
  c.wait(30s);
  // The job is killed with its client; the spawner still copies its results, which nobody
  // fetches: the front removes them.
  EXPECT_TRUE(eventually([&] { return entriesIn(server->uploadsDir()) == 0; }, 30s));
  EXPECT_TRUE(eventually([&] { return jobEntriesIn(server->jobsDir()) == 0; }, 30s));
}

// pyrun against hostile_server.py SCENARIO: what it did to `out` and the files next to it.
class HostileServerTest : public ProjectTest {
 protected:
  Outcome against(const std::string& scenario) {
    const std::string port_file = dir_ / ("port-" + scenario);
    Child server({"/usr/bin/python3",
                  std::string(PYRUN_SOURCE_DIR) + "/tests/integration/project/hostile_server.py",
                  scenario, server_bundle_, port_file, dir_.path()});
    EXPECT_TRUE(eventually([&] { return !readFileOrEmpty(port_file).empty(); }, 30s));
    auto main = put("main.py", "pass\n");
    std::vector<std::string> argv = {binary("pyrun"), "--cert", alice_, "--no-modules"};
    if (scenario != "unasked") argv.insert(argv.end(), {"--get", "*", "-o", out()});
    argv.insert(argv.end(), {"127.0.0.1:" + readFileOrEmpty(port_file), main});
    RunOptions options;
    options.timeout = 60s;
    auto o = run(argv, options);
    server.wait(30s);
    return o;
  }
  std::string out() { return dir_ / "out"; }
  void SetUp() override { ::mkdir(out().c_str(), 0755); }
};

TEST_F(HostileServerTest, RefusesNamesThatLeaveTheDirectory) {
  for (std::string scenario : {"dotdot", "absolute", "inner-dotdot", "control"}) {
    auto o = against(scenario);
    EXPECT_EQ(o.exit_code, 255) << scenario;
    EXPECT_NE(o.err.find("protocol error"), std::string::npos) << scenario << ": " << o.err;
    EXPECT_NE(::access((dir_ / "escape.txt").c_str(), F_OK), 0) << scenario;
    EXPECT_NE(::access((dir_ / "absolute.txt").c_str(), F_OK), 0) << scenario;
    EXPECT_EQ(entriesIn(out()), 0u) << scenario;
  }
}

TEST_F(HostileServerTest, NeverWritesThroughASymlinkInTheDirectory) {
  ::mkdir((dir_ / "elsewhere").c_str(), 0755);
  ASSERT_EQ(::symlink((dir_ / "elsewhere").c_str(), (out() + "/link").c_str()), 0);
  auto o = against("through-symlink");
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_NE(o.err.find("link is not a plain directory"), std::string::npos) << o.err;
  EXPECT_EQ(entriesIn(dir_ / "elsewhere"), 0u);
}

TEST_F(HostileServerTest, ReplacesASymlinkAtTheTargetInsteadOfFollowingIt) {
  writeFile(dir_ / "victim.txt", "untouched");
  ASSERT_EQ(::symlink((dir_ / "victim.txt").c_str(), (out() + "/leaf").c_str()), 0);
  auto o = against("leaf-symlink");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(readFileOrEmpty(dir_ / "victim.txt"), "untouched");
  struct stat st {};
  ASSERT_EQ(::lstat((out() + "/leaf").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(readFileOrEmpty(out() + "/leaf"), "replaced\n");
}

TEST_F(HostileServerTest, RefusesMoreBytesThanAnnounced) {
  for (std::string scenario : {"more-than-announced", "oversize"}) {
    auto o = against(scenario);
    EXPECT_EQ(o.exit_code, 255) << scenario;
    EXPECT_NE(o.err.find("protocol error"), std::string::npos) << scenario << ": " << o.err;
    // No temporary file is left either.
    EXPECT_EQ(entriesIn(out()), 0u) << scenario;
  }
}

TEST_F(HostileServerTest, RefusesResultsThatWereNotAskedFor) {
  auto o = against("unasked");
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_NE(o.err.find("not asked for"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace pyrun::test
