// Landlock rulesets enforced on real forked children: what they may read, write, run, connect to
// and signal. Enforcement is irreversible, so every check runs in a child of its own.
#include "sandbox/landlock.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::sandbox {
namespace {

using test::TempDir;

// What a child found: 0, or the number of the first check that went wrong, with its errno.
struct ChildResult {
  int failed_check = -1;
  int error = 0;
};

// Runs `body` in a forked child after no_new_privs and applyLandlock. The body returns 0 or the
// number of the check that failed; errno at that moment travels back too.
ChildResult runConfined(const LandlockRuleset& ruleset, const std::function<int()>& body) {
  int pipe_fds[2];
  EXPECT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ChildResult r{};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
      r = {100, errno};
    } else if (int err = applyLandlock(ruleset.fd()); err != 0) {
      r = {101, err};
    } else {
      errno = 0;
      r.failed_check = body();
      r.error = errno;
    }
    (void)!::write(pipe_fds[1], &r, sizeof r);
    _exit(0);
  }
  ::close(pipe_fds[1]);
  ChildResult r{};
  EXPECT_EQ(::read(pipe_fds[0], &r, sizeof r), static_cast<ssize_t>(sizeof r));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return r;
}

LandlockRuleset jobRuleset(const std::string& workdir, bool allow_tcp = false) {
  auto r =
      prepareLandlock({"/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc"}, {workdir}, allow_tcp);
  EXPECT_TRUE(r) << r.error().detail();
  return r ? std::move(*r) : LandlockRuleset();
}

#define REQUIRE_LANDLOCK(min_abi)                                                         \
  do {                                                                                    \
    if (landlockAbi() < (min_abi)) {                                                      \
      GTEST_SKIP() << "the kernel's Landlock ABI is " << landlockAbi() << ", this needs " \
                   << (min_abi);                                                          \
    }                                                                                     \
  } while (0)

TEST(Landlock, ReportsTheKernelsAbi) {
  REQUIRE_LANDLOCK(1);
  TempDir work("landlock");
  auto ruleset = jobRuleset(work.path());
  EXPECT_TRUE(ruleset.enforced());
  EXPECT_EQ(ruleset.abi(), landlockAbi());
  EXPECT_EQ(ruleset.restrictsTcp(), landlockAbi() >= 4);
  EXPECT_EQ(ruleset.scopesSignalsAndAbstractSockets(), landlockAbi() >= 6);
  // The ruleset descriptor must not leak into the job's program.
  EXPECT_EQ(::fcntl(ruleset.fd(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST(Landlock, ReadsSystemFilesAndWritesOnlyInTheWorkingDirectory) {
  REQUIRE_LANDLOCK(1);
  TempDir work("landlock");
  TempDir outside("landlock-outside");
  auto ruleset = jobRuleset(work.path());
  std::string inside_file = work / "written";
  std::string outside_file = outside / "escaped";
  auto r = runConfined(ruleset, [&] {
    char buf[64];
    int fd = ::open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::read(fd, buf, sizeof buf) < 0) return 1;
    ::close(fd);
    fd = ::open(inside_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ::write(fd, "ok", 2) != 2) return 2;
    ::close(fd);
    if (::mkdir((work / "sub").c_str(), 0700) != 0) return 3;
    // Root passes every permission check; only Landlock stands in the way of these.
    if (::open(outside_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600) >= 0) return 4;
    if (errno != EACCES) return 5;
    if (::open("/etc/hostname", O_WRONLY | O_CLOEXEC) >= 0) return 6;
    if (errno != EACCES) return 7;
    if (::mkdir("/tmp/pyrun-landlock-escape", 0700) == 0 || errno != EACCES) return 8;
    if (::unlink("/etc/hostname") == 0 || errno != EACCES) return 9;
    // Not in any rule at all: not even readable.
    if (::open("/root", O_RDONLY | O_DIRECTORY | O_CLOEXEC) >= 0 || errno != EACCES) return 10;
    return 0;
  });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
  EXPECT_EQ(test::readFileOrEmpty(inside_file), "ok");
  struct stat st {};
  EXPECT_NE(::stat(outside_file.c_str(), &st), 0);
  EXPECT_NE(::stat("/tmp/pyrun-landlock-escape", &st), 0);
}

TEST(Landlock, ProgramsWrittenToTheWorkingDirectoryCannotBeExecuted) {
  REQUIRE_LANDLOCK(1);
  TempDir work("landlock");
  std::string copy = work / "true";
  ASSERT_EQ(test::run({"cp", "/bin/true", copy}).exit_code, 0);
  auto ruleset = jobRuleset(work.path());
  auto r = runConfined(ruleset, [&] {
    if (::access("/bin/true", X_OK) != 0) return 1;  // system programs still run
    char* argv[] = {copy.data(), nullptr};
    ::execv(copy.c_str(), argv);  // returns only on failure
    return errno == EACCES ? 0 : 2;
  });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
}

TEST(Landlock, PythonRunsUnderTheRuleset) {
  REQUIRE_LANDLOCK(1);
  TempDir work("landlock");
  auto ruleset = jobRuleset(work.path());
  std::string out = work / "out.txt";
  std::string python = "/usr/bin/python3", isolated = "-I", flag = "-c";
  std::string code = "import json, sys; open(sys.argv[1], 'w').write(json.dumps([1, 2]))";
  char* argv[] = {python.data(), isolated.data(), flag.data(), code.data(), out.data(), nullptr};
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || applyLandlock(ruleset.fd()) != 0) {
      _exit(120);
    }
    ::execv(argv[0], argv);
    _exit(121);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(test::readFileOrEmpty(out), "[1, 2]");
}

// A listening TCP socket of the test on 127.0.0.1, port chosen by the kernel.
struct Listener {
  int fd = -1;
  sockaddr_in addr{};
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd, 4), 0);
    EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  }
  ~Listener() { ::close(fd); }
};

int connectTo(const sockaddr_in& addr) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  int rc = ::connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  int saved = errno;
  ::close(s);
  errno = saved;
  return rc;
}

TEST(Landlock, DeniesTcpConnectAndBind) {
  REQUIRE_LANDLOCK(4);
  TempDir work("landlock");
  Listener listener;
  auto ruleset = jobRuleset(work.path());
  auto r = runConfined(ruleset, [&] {
    if (connectTo(listener.addr) == 0) return 1;
    if (errno != EACCES) return 2;
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    any.sin_port = htons(1);  // a fixed port: bind to port 0 is not checked by Landlock
    if (::bind(s, reinterpret_cast<sockaddr*>(&any), sizeof any) == 0) return 3;
    if (errno != EACCES) return 4;
    return 0;
  });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
}

TEST(Landlock, AllowTcpLeavesTcpAlone) {
  REQUIRE_LANDLOCK(4);
  TempDir work("landlock");
  Listener listener;
  auto ruleset = jobRuleset(work.path(), /*allow_tcp=*/true);
  EXPECT_FALSE(ruleset.restrictsTcp());
  auto r = runConfined(ruleset, [&] { return connectTo(listener.addr) == 0 ? 0 : 1; });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
}

TEST(Landlock, SignalsCannotLeaveTheJob) {
  REQUIRE_LANDLOCK(6);
  TempDir work("landlock");
  auto ruleset = jobRuleset(work.path());
  auto r = runConfined(ruleset, [&] {
    // SIGURG is ignored by default: were the scope missing, the test process would not die.
    if (::kill(::getppid(), SIGURG) == 0) return 1;
    if (errno != EPERM) return 2;
    if (::kill(::getpid(), SIGURG) != 0) return 3;  // inside the domain: allowed
    return 0;
  });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
}

TEST(Landlock, AbstractUnixSocketsOutsideTheJobAreUnreachable) {
  REQUIRE_LANDLOCK(6);
  TempDir work("landlock");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name = "pyrun-landlock-test-" + std::to_string(::getpid());
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  int server = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::bind(server, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(server, 4), 0);
  auto ruleset = jobRuleset(work.path());
  auto r = runConfined(ruleset, [&] {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), len) == 0) return 1;
    if (errno != EPERM) return 2;
    return 0;
  });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
  ::close(server);
}

TEST(Landlock, SkipsPathsMissingOnThisHost) {
  REQUIRE_LANDLOCK(1);
  TempDir work("landlock");
  auto r = prepareLandlock({"/usr", work / "no-such-dir"}, {work.path()}, false);
  ASSERT_TRUE(r) << r.error().detail();
  EXPECT_EQ(r->missingPaths(), std::vector<std::string>{work / "no-such-dir"});
}

TEST(Landlock, RejectsRelativePaths) {
  REQUIRE_LANDLOCK(1);
  auto r = prepareLandlock({"usr"}, {}, false);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(Errc::kInvalidArgument));
  EXPECT_NE(r.error().detail().find("'usr'"), std::string::npos) << r.error().detail();
}

TEST(Landlock, AcceptsAFileAsARule) {
  REQUIRE_LANDLOCK(1);
  TempDir work("landlock");
  test::writeFile(work / "data", "secret-free");
  // Directory rights on a file are an EINVAL from the kernel: they must be masked off.
  auto ruleset = prepareLandlock({work / "data"}, {}, false);
  ASSERT_TRUE(ruleset) << ruleset.error().detail();
  std::string data = work / "data";
  auto r = runConfined(*ruleset, [&] {
    int fd = ::open(data.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 1;
    ::close(fd);
    if (::open(data.c_str(), O_WRONLY | O_CLOEXEC) >= 0 || errno != EACCES) return 2;
    return 0;
  });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
}

TEST(Landlock, RulesAddedInTheChildGrantExactlyTheirAccess) {
  REQUIRE_LANDLOCK(1);
  TempDir work("landlock");
  TempDir extra("landlock-extra");
  TempDir readable("landlock-readable");
  test::writeFile(readable / "file", "x");
  auto ruleset = jobRuleset(work.path());
  std::string extra_file = extra / "made-in-child";
  std::string readable_file = readable / "file";
  int abi = ruleset.abi();
  int fd = ruleset.fd();
  auto before = runConfined(ruleset, [&] {
    if (::open(extra_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600) >= 0) return 1;
    if (::open(readable_file.c_str(), O_RDONLY | O_CLOEXEC) >= 0) return 2;
    return 0;
  });
  EXPECT_EQ(before.failed_check, 0) << "the job ruleset alone already allowed it";
  // Added before enforcement, as contain.cpp does after mounting the job's private directories.
  ASSERT_EQ(addLandlockRuleInChild(fd, abi, extra.path().c_str(), LandlockAccess::kReadWrite), 0);
  ASSERT_EQ(
      addLandlockRuleInChild(fd, abi, readable.path().c_str(), LandlockAccess::kReadOnlyNoExecute),
      0);
  auto r = runConfined(ruleset, [&] {
    int out = ::open(extra_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (out < 0) return 1;
    ::close(out);
    int in = ::open(readable_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) return 2;
    ::close(in);
    if (::open(readable_file.c_str(), O_WRONLY | O_CLOEXEC) >= 0 || errno != EACCES) return 3;
    return 0;
  });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
  EXPECT_EQ(addLandlockRuleInChild(fd, abi, (work / "missing").c_str(), LandlockAccess::kReadOnly),
            ENOENT);
}

TEST(Landlock, ListOnlyRuleListsTheDirectoryButOpensNothingInIt) {
  REQUIRE_LANDLOCK(1);
  TempDir work("landlock");
  TempDir listed("landlock-listed");
  test::writeFile(listed / "file", "x");
  auto ruleset = jobRuleset(work.path());
  ASSERT_EQ(addLandlockRuleInChild(ruleset.fd(), ruleset.abi(), listed.path().c_str(),
                                   LandlockAccess::kListOnly),
            0);
  std::string dir = listed.path();
  std::string file = listed / "file";
  auto r = runConfined(ruleset, [&] {
    int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) return 1;
    ::close(d);
    if (::open(file.c_str(), O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES) return 2;
    return 0;
  });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
}

TEST(Landlock, ApplyWithoutARulesetDoesNothing) {
  // No descriptor (a kernel without Landlock): applying succeeds and restricts nothing, so a path
  // no rule names can still be written.
  TempDir elsewhere("landlock-none");
  std::string file = elsewhere / "written";
  auto r = runConfined(LandlockRuleset(), [&] {
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return 1;
    ::close(fd);
    return 0;
  });
  EXPECT_EQ(r.failed_check, 0) << "errno " << r.error << ": " << std::strerror(r.error);
  struct stat st {};
  EXPECT_EQ(::stat(file.c_str(), &st), 0);
}

}  // namespace
}  // namespace pyrun::sandbox
