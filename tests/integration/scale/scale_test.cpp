// Several pyrund behind one real HAProxy (TCP mode, leastconn, send-proxy-v2, httpchk /healthz),
// all on loopback: jobs from three client addresses come back byte-exact with the real addresses
// in the audit lines; a per-source cap trips for one address only; a SIGTERM drain loses no job;
// a SIGKILLed backend fails its clients quickly; PROXY headers from untrusted peers are refused.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
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

// A TCP connection from `source` to 127.0.0.1:port; -1 on failure.
int connectFrom(const char* source, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in local{};
  local.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &local.sin_addr);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(static_cast<uint16_t>(port));
  remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `bytes` and reads until the server closes; what it answered (empty for a plain close).
// `closed` says whether the server did close within the receive timeout.
std::string sendAndDrain(int fd, const std::string& bytes, bool& closed) {
  (void)::write(fd, bytes.data(), bytes.size());
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) answer.append(buf, static_cast<size_t>(n));
  closed = n == 0 || (n < 0 && errno == ECONNRESET);
  ::close(fd);
  return answer;
}

// A PROXY v2 header: PROXY (or LOCAL) over TCP4 from `source` to 127.0.0.1:7443.
std::string proxyHeader(bool local, const char* source, uint16_t block_length = 12) {
  std::string h("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);
  h += local ? '\x20' : '\x21';
  h += '\x11';
  h += static_cast<char>(block_length >> 8);
  h += static_cast<char>(block_length & 0xFF);
  in_addr a{};
  ::inet_pton(AF_INET, source, &a);
  h.append(reinterpret_cast<const char*>(&a), 4);
  h += std::string("\x7F\x00\x00\x01\xC8\x22\x1D\x13", 8);
  return h;
}

int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// One pyrund on 127.0.0.1 that trusts PROXY headers from 127.0.0.1 only, with its own jobs_dir,
// cgroup subtree, audit log and metrics_listen. Restartable on the same ports.
class Backend {
 public:
  Backend(Pki& pki, const std::string& name, const std::string& extra_yaml)
      : dir_("scale-" + name), pyrund_(dir_.path(), options(dir_, pki, extra_yaml)) {
    if (!pyrund_.started()) ADD_FAILURE() << pyrund_.startError();
  }

  void start() {
    if (!pyrund_.start()) ADD_FAILURE() << pyrund_.startError();
  }
  void stop() { pyrund_.stop(); }
  Child& process() { return pyrund_.process(); }
  int port() const { return pyrund_.port(); }
  int metricsPort() const { return pyrund_.metricsPort(); }
  std::string audit() const { return readFileOrEmpty(dir_ / "audit.log"); }

 private:
  static PyrundOptions options(const TempDir& dir, Pki& pki, const std::string& extra_yaml) {
    writeFile(dir / "policy.yaml", "version: 1\ninclude: [" + std::string(PYRUN_SOURCE_DIR) +
                                       "/policy/default.yaml]\nlimits:\n  wall_seconds: 60\n");
    PyrundOptions p;
    p.cert = pki.serverBundle();
    p.metrics = true;
    p.stop_timeout = std::chrono::seconds(90);
    p.config_yaml = "cgroup_subtree: " + dir.path().substr(dir.path().rfind('/') + 1) +
                    "\npolicies:\n  default: " + (dir / "policy.yaml") +
                    "\naudit_log: " + (dir / "audit.log") +
                    "\ntrusted_proxies: [127.0.0.1/32]\nshutdown_grace_seconds: 60\n" + extra_yaml;
    return p;
  }

  TempDir dir_;
  Pyrund pyrund_;
};

// pyrund's answers to PROXY headers without HAProxy: the raw bytes from trusted and untrusted
// loopback addresses.
class ProxyProtocolTest : public ::testing::Test {
 protected:
  ProxyProtocolTest() : dir_("scale-pki"), pki_(dir_.path()) { ::chmod(dir_.path().c_str(), 0711); }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "pyrund's jobs need root here (per-job uids)";
    backend_ = std::make_unique<Backend>(pki_, "pp", "handshake_timeout_seconds: 3\n");
    script_ = dir_ / "hello.py";
    writeFile(script_, "import sys\nprint('hello', sys.argv[1])\n");
  }
  Outcome pyrun(const std::string& source, int port, const std::string& arg) {
    RunOptions o;
    o.timeout = 60s;
    return run({binary("pyrun"), "-b", source, "--cert", alice_,
                "127.0.0.1:" + std::to_string(port), script_, arg},
               o);
  }
  TempDir dir_;
  Pki pki_;
  std::string alice_ = pki_.clientBundle("alice");
  std::unique_ptr<Backend> backend_;
  std::string script_;
};

TEST_F(ProxyProtocolTest, UntrustedPeerIsServedWithoutHeaderUnderItsOwnAddress) {
  auto out = pyrun("127.0.0.2", backend_->port(), "direct");
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "hello direct\n");
  std::string audit = backend_->audit();
  EXPECT_NE(audit.find("\"event\":\"job_end\",\"peer\":\"127.0.0.2:"), std::string::npos) << audit;
  EXPECT_EQ(audit.find("\"proxy\""), std::string::npos) << audit;
}

TEST_F(ProxyProtocolTest, PyrunBindsTheSourceAddressItIsGiven) {
  for (const char* source : {"127.0.0.3", "127.0.0.4"}) {
    auto out = pyrun(source, backend_->port(), source);
    EXPECT_EQ(out.exit_code, 0) << out.err;
  }
  std::string audit = backend_->audit();
  EXPECT_NE(audit.find("\"peer\":\"127.0.0.3:"), std::string::npos) << audit;
  EXPECT_NE(audit.find("\"peer\":\"127.0.0.4:"), std::string::npos) << audit;
  // An address this host does not have: pyrun says so and fails.
  auto out = pyrun("192.0.2.1", backend_->port(), "x");
  EXPECT_EQ(out.exit_code, 255);
  EXPECT_NE(out.err.find("cannot bind to 192.0.2.1"), std::string::npos) << out.err;
}

TEST_F(ProxyProtocolTest, HeaderFromUntrustedPeerIsRefusedAndNamesNobody) {
  // 127.0.0.2 is not in trusted_proxies: its header is just bad TLS bytes, whatever follows.
  bool closed = false;
  int fd = connectFrom("127.0.0.2", backend_->port());
  ASSERT_GE(fd, 0);
  std::string answer = sendAndDrain(fd, proxyHeader(false, "198.51.100.7"), closed);
  EXPECT_TRUE(closed);
  ASSERT_TRUE(
      eventually([&] { return backend_->audit().find("auth_fail") != std::string::npos; }, 20s));
  std::string audit = backend_->audit();
  EXPECT_NE(audit.find("\"event\":\"auth_fail\",\"peer\":\"127.0.0.2:"), std::string::npos)
      << audit;
  EXPECT_EQ(audit.find("198.51.100.7"), std::string::npos) << audit;
  EXPECT_EQ(audit.find("\"proxy\""), std::string::npos) << audit;
}

TEST_F(ProxyProtocolTest, TrustedPeerWithoutHeaderIsRefused) {
  // A real client from 127.0.0.1 (the trusted proxy's address) that speaks TLS at once.
  auto out = pyrun("127.0.0.1", backend_->port(), "x");
  EXPECT_EQ(out.exit_code, 255) << out.out;
  std::string audit = backend_->audit();
  EXPECT_NE(audit.find("\"reason\":\"PROXY protocol header: no PROXY v2 signature\""),
            std::string::npos)
      << audit;
  EXPECT_EQ(audit.find("job_start"), std::string::npos) << audit;
}

TEST_F(ProxyProtocolTest, TrustedPeerWithBrokenHeaderIsRefused) {
  struct Case {
    std::string bytes;
    const char* reason;
  };
  std::string header = proxyHeader(false, "198.51.100.7");
  std::vector<Case> cases = {
      {header.substr(0, 10), "connection closed in its PROXY protocol header"},
      {header.substr(0, 20), "connection closed in its PROXY protocol header"},
      {proxyHeader(false, "198.51.100.7", 2000), "address block of 2000 bytes, over 1024"},
      {"PROXY TCP4 198.51.100.7 127.0.0.1 1 2\r\n", "no PROXY v2 signature"},
  };
  for (const auto& c : cases) {
    int fd = connectFrom("127.0.0.1", backend_->port());
    ASSERT_GE(fd, 0);
    ::write(fd, c.bytes.data(), c.bytes.size());
    ::shutdown(fd, SHUT_WR);
    bool closed = false;
    sendAndDrain(fd, "", closed);
    EXPECT_TRUE(closed) << c.reason;
    EXPECT_TRUE(
        eventually([&] { return backend_->audit().find(c.reason) != std::string::npos; }, 20s))
        << c.reason << "\n"
        << backend_->audit();
  }
  // A header and then silence: refused at the handshake deadline (3 s here), never held longer.
  int fd = connectFrom("127.0.0.1", backend_->port());
  ASSERT_GE(fd, 0);
  ::write(fd, header.data(), 16);
  bool closed = false;
  sendAndDrain(fd, "", closed);
  EXPECT_TRUE(closed);
  EXPECT_NE(backend_->audit().find("no PROXY protocol header within 3 s"), std::string::npos);
  EXPECT_EQ(backend_->audit().find("198.51.100.7"), std::string::npos) << backend_->audit();
}

TEST_F(ProxyProtocolTest, LocalCommandIsAnsweredByClosing) {
  int fd = connectFrom("127.0.0.1", backend_->port());
  ASSERT_GE(fd, 0);
  bool closed = false;
  EXPECT_EQ(sendAndDrain(fd, proxyHeader(true, "0.0.0.0", 0).substr(0, 16), closed), "");
  EXPECT_TRUE(closed);
  // Not a refusal: no auth_fail line.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(backend_->audit().find("auth_fail"), std::string::npos) << backend_->audit();
}

TEST_F(ProxyProtocolTest, StopClosesConnectionsStillInTheirHeader) {
  int fd = connectFrom("127.0.0.1", backend_->port());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "\x0D\x0A\x0D\x0A", 4), 4);
  std::this_thread::sleep_for(200ms);  // accepted and reading; if not, nothing to close
  backend_->process().signal(SIGTERM);
  auto ended = backend_->process().wait(60s);
  EXPECT_EQ(ended.exit_code, 0) << ended.err;
  bool closed = false;
  sendAndDrain(fd, "", closed);
  EXPECT_TRUE(closed);
  // Cut by the stop, not refused as the proxy's fault.
  EXPECT_EQ(backend_->audit().find("auth_fail"), std::string::npos) << backend_->audit();
}

// Three backends and one HAProxy.
class HaproxyTest : public ::testing::Test {
 protected:
  HaproxyTest() : dir_("scale-ha"), pki_(dir_.path()) { ::chmod(dir_.path().c_str(), 0711); }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "pyrund's jobs need root here (per-job uids)";
    if (run({"sh", "-c", "command -v haproxy"}).exit_code != 0) {
      GTEST_SKIP() << "haproxy is not installed (tools/install-deps installs it)";
    }
    for (int i = 0; i < 3; ++i) {
      backends_.push_back(std::make_unique<Backend>(
          pki_, "b" + std::to_string(i),
          "max_jobs: 4\nqueue: 64\nmax_handshakes_per_source: " + std::to_string(per_source_cap_) +
              "\nmax_jobs_per_identity: 64\njob_starts_per_minute: 100000\n"));
    }
    port_ = freePort();
    std::string config =
        "global\n  maxconn 500\n"
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n"
        "  retries 3\n  option redispatch\n"
        "frontend pyrun\n  bind 127.0.0.1:" +
        std::to_string(port_) +
        "\n  default_backend pyrund\n"
        "backend pyrund\n  balance leastconn\n  option httpchk\n"
        "  http-check send meth GET uri /healthz\n  http-check expect status 200\n";
    for (size_t i = 0; i < backends_.size(); ++i) {
      config += "  server b" + std::to_string(i) +
                " 127.0.0.1:" + std::to_string(backends_[i]->port()) +
                " send-proxy-v2 check port " + std::to_string(backends_[i]->metricsPort()) +
                " inter 300ms fall 1 rise 1\n";
    }
    writeFile(dir_ / "haproxy.cfg", config);
    auto check = run({"haproxy", "-c", "-f", dir_ / "haproxy.cfg"});
    ASSERT_EQ(check.exit_code, 0) << check.out << check.err;
    haproxy_ = std::make_unique<Child>(
        std::vector<std::string>{"haproxy", "-db", "-f", dir_ / "haproxy.cfg"});
    ASSERT_TRUE(eventually(
        [&] {
          int fd = connectFrom("127.0.0.2", port_);
          if (fd < 0) return false;
          ::close(fd);
          return true;
        },
        20s));
    // Output that depends on the argument: a job's answer cannot be mistaken for another's. Two
    // names for the same program tell jobs apart in the audit lines (`script`).
    for (const char* name : {"echo.py", "later.py"}) {
      writeFile(dir_ / name,
                "import sys, time\narg = sys.argv[1]\ntime.sleep(float(sys.argv[2]))\n"
                "sys.stdout.write((arg + ':') * 500 + '\\n')\n");
    }
  }
  void TearDown() override {
    if (haproxy_) haproxy_->signal(SIGTERM);
  }
  static std::string expected(const std::string& arg) {
    std::string s;
    for (int i = 0; i < 500; ++i) s += arg + ":";
    return s + "\n";
  }
  std::unique_ptr<Child> pyrunChild(const std::string& source, const std::string& arg,
                                    const std::string& seconds = "0",
                                    const std::string& script = "echo.py") {
    return std::make_unique<Child>(std::vector<std::string>{
        binary("pyrun"), "-b", source, "--cert", alice_, "127.0.0.1:" + std::to_string(port_),
        dir_ / script, arg, seconds});
  }
  // Runs `jobs` jobs, `parallel` at a time, from the three sources in turn; every one must come
  // back byte-exact.
  void runBatch(const std::string& tag, int jobs, int parallel,
                const std::string& script = "echo.py") {
    const char* sources[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4"};
    for (int first = 0; first < jobs; first += parallel) {
      std::vector<std::pair<std::string, std::unique_ptr<Child>>> running;
      for (int j = first; j < std::min(jobs, first + parallel); ++j) {
        std::string arg = tag + std::to_string(j);
        running.emplace_back(arg, pyrunChild(sources[j % 3], arg, "0", script));
      }
      for (auto& [arg, child] : running) {
        auto out = child->wait(120s);
        EXPECT_EQ(out.exit_code, 0) << arg << ": " << out.err;
        EXPECT_EQ(out.out, expected(arg)) << arg;
      }
    }
  }
  size_t startedOnAll() {
    size_t n = 0;
    for (auto& b : backends_) n += count(b->audit(), "\"event\":\"job_start\"");
    return n;
  }
  size_t jobsOn(size_t backend) {
    return count(backends_[backend]->audit(), "\"event\":\"job_end\"");
  }

  TempDir dir_;
  Pki pki_;
  std::string alice_ = pki_.clientBundle("alice");
  std::vector<std::unique_ptr<Backend>> backends_;
  std::unique_ptr<Child> haproxy_;
  int port_ = 0;
  // max_handshakes_per_source of every backend.
  int per_source_cap_ = 8;
};

// Backends that let each source have 2 handshakes in progress.
class HaproxyFloodTest : public HaproxyTest {
 protected:
  HaproxyFloodTest() { per_source_cap_ = 2; }
};

// 100 jobs from each of the three sources.
constexpr int kJobs = 300;

TEST_F(HaproxyTest, JobsFromThreeSourcesComeBackWithTheirRealAddresses) {
  runBatch("j", kJobs, 12);
  size_t total = 0;
  for (size_t i = 0; i < backends_.size(); ++i) {
    EXPECT_GT(jobsOn(i), 0u) << "backend " << i << " ran no job";
    total += jobsOn(i);
    std::string audit = backends_[i]->audit();
    // Every job line names the client's address and the proxy's, never the proxy as the peer.
    EXPECT_EQ(audit.find("\"peer\":\"127.0.0.1:"), std::string::npos) << audit;
    EXPECT_EQ(count(audit, "\"proxy\":\"127.0.0.1:"), count(audit, "\"peer\":\"127.0.0.")) << audit;
  }
  RecordProperty("jobs_per_backend", std::to_string(jobsOn(0)) + "," + std::to_string(jobsOn(1)) +
                                         "," + std::to_string(jobsOn(2)));
  EXPECT_EQ(total, static_cast<size_t>(kJobs));
  std::string all;
  for (auto& b : backends_) all += b->audit();
  for (const char* source : {"127.0.0.2:", "127.0.0.3:", "127.0.0.4:"}) {
    EXPECT_EQ(count(all, "\"event\":\"job_end\",\"peer\":\"" + std::string(source)), kJobs / 3u)
        << source;
  }
}

TEST_F(HaproxyFloodTest, PerSourceCapTripsForTheFloodingAddressOnly) {
  // 127.0.0.4 opens connections through HAProxy and never finishes a handshake: each backend
  // holds 2 of them (max_handshakes_per_source) and closes the rest at once.
  std::vector<int> flood;
  for (int i = 0; i < 12; ++i) {
    int fd = connectFrom("127.0.0.4", port_);
    ASSERT_GE(fd, 0);
    ::write(fd, "\x16", 1);  // the first byte of a TLS record, and nothing after it
    flood.push_back(fd);
  }
  ASSERT_TRUE(eventually(
      [&] {
        size_t refused = 0;
        for (auto& b : backends_) refused += count(b->audit(), "\"event\":\"refused\"");
        return refused == backends_.size();
      },
      20s));
  auto flooder = pyrunChild("127.0.0.4", "flooder");
  auto a = pyrunChild("127.0.0.2", "a");
  auto b = pyrunChild("127.0.0.3", "b");
  auto fa = a->wait(60s), fb = b->wait(60s), ff = flooder->wait(60s);
  EXPECT_EQ(fa.exit_code, 0) << fa.err;
  EXPECT_EQ(fa.out, expected("a"));
  EXPECT_EQ(fb.exit_code, 0) << fb.err;
  EXPECT_EQ(fb.out, expected("b"));
  EXPECT_EQ(ff.exit_code, 255) << ff.out;
  for (auto& backend : backends_) {
    std::string audit = backend->audit();
    EXPECT_NE(audit.find("too many TLS handshakes in progress from 127.0.0.4 (2)"),
              std::string::npos)
        << audit;
    EXPECT_EQ(audit.find("in progress from 127.0.0.1"), std::string::npos) << audit;
  }
  for (int fd : flood) ::close(fd);
}

TEST_F(HaproxyTest, SigtermDrainsWithoutLosingJobsAndTheBackendRejoins) {
  std::vector<std::pair<std::string, std::unique_ptr<Child>>> running;
  const char* sources[] = {"127.0.0.2", "127.0.0.3", "127.0.0.4"};
  for (int j = 0; j < 10; ++j) {
    running.emplace_back("d" + std::to_string(j),
                         pyrunChild(sources[j % 3], "d" + std::to_string(j), "4"));
  }
  // All 10 run (none queued: 3 x max_jobs 4 slots), and the drained backend has some of them.
  ASSERT_TRUE(eventually([&] { return startedOnAll() == 10; }, 30s));
  const size_t started_before = count(backends_[0]->audit(), "job_start");
  ASSERT_GE(started_before, 1u);
  backends_[0]->process().signal(SIGTERM);
  backends_[0]->process().readStderrUntil("stopping", 30s);
  // New jobs meanwhile: /healthz says 503 and the listener is closed, so they go elsewhere.
  runBatch("n", 6, 6, "later.py");
  for (auto& [arg, child] : running) {
    auto out = child->wait(120s);
    EXPECT_EQ(out.exit_code, 0) << arg << ": " << out.err;
    EXPECT_EQ(out.out, expected(arg)) << arg;
  }
  std::string drained = backends_[0]->audit();
  EXPECT_EQ(drained.find("\"script\":\"later.py\""), std::string::npos) << drained;
  EXPECT_EQ(count(drained, "job_start"), started_before) << drained;
  EXPECT_EQ(count(drained, "job_end"), started_before) << drained;
  EXPECT_EQ(count(drained, "\"verdict\":\"ok\""), started_before) << drained;
  auto ended = backends_[0]->process().wait(60s);
  EXPECT_EQ(ended.exit_code, 0) << ended.err;
  // Restarted on the same ports, it gets jobs again once HAProxy sees /healthz answer 200.
  backends_[0]->start();
  ASSERT_TRUE(eventually(
      [&] {
        runBatch("r", 3, 3, "later.py");
        return backends_[0]->audit().find("\"script\":\"later.py\"") != std::string::npos;
      },
      60s));
}

TEST_F(HaproxyTest, SigkillFailsItsClientsQuicklyAndLaterJobsSucceedElsewhere) {
  std::vector<std::unique_ptr<Child>> running;
  for (int j = 0; j < 6; ++j)
    running.push_back(pyrunChild("127.0.0.2", "k" + std::to_string(j), "8"));
  ASSERT_TRUE(eventually([&] { return startedOnAll() == 6; }, 30s));
  const size_t on_killed = count(backends_[1]->audit(), "job_start");
  ASSERT_GE(on_killed, 1u);
  backends_[1]->process().signal(SIGKILL);
  // Its clients get an error, not a hang: before the jobs would have ended.
  size_t failed = 0;
  for (auto& child : running) {
    auto out = child->wait(120s);
    if (out.exit_code == 255)
      ++failed;
    else
      EXPECT_EQ(out.exit_code, 0) << out.err;
  }
  EXPECT_EQ(failed, on_killed);
  runBatch("after", 9, 9);
}

}  // namespace
}  // namespace pyrun::test
