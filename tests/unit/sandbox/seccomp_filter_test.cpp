// Tests for the seccomp compiler: each filter is compiled from a policy, installed in a child
// process (seccomp_exec), and /usr/bin/python3 runs under it.
#include "sandbox/seccomp_filter.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "policy/policy.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::sandbox {
namespace {

using test::Outcome;
using test::TempDir;

const std::string kPolicyDir = std::string(PYRUN_SOURCE_DIR) + "/policy";
const std::string kPython = "/usr/bin/python3";

// Runs `code` with python3 -I -B -u under the policy's filter, in `cwd`.
Outcome runPython(const std::string& policy_path, const std::string& code,
                  const std::string& cwd = "/tmp") {
  test::RunOptions options;
  options.cwd = cwd;
  return test::run({SECCOMP_EXEC, policy_path, kPython, "-I", "-B", "-u", "-c", code}, options);
}

// Calls a raw syscall through ctypes and prints "result errno".
const std::string kRawSyscall =
    "import ctypes\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "def sc(nr, *args):\n"
    "    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])\n"
    "    return r, ctypes.get_errno()\n";

class SeccompFilter : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kPython.c_str(), X_OK) != 0) GTEST_SKIP() << kPython << " is not installed";
  }
  std::string policy(const std::string& name, const std::string& text) {
    std::string path = dir_ / name;
    test::writeFile(path, text);
    return path;
  }
  TempDir dir_{"seccomp"};
};

TEST(SeccompCompile, ShippedPoliciesCompileForTheNativeArchitecture) {
  for (const char* name : {"default.yaml", "strict.yaml"}) {
    auto p = policy::loadPolicy(kPolicyDir + "/" + name);
    ASSERT_TRUE(p) << p.error().detail();
    auto program = compileSeccompFilter(p->seccomp);
    ASSERT_TRUE(program) << program.error().detail();
    EXPECT_GT(program->size(), 20u) << name;
    EXPECT_LE(program->size(), size_t{BPF_MAXINSNS}) << name;
  }
}

TEST(SeccompCompile, NamesOfOtherArchitecturesAreSkipped) {
  policy::Seccomp s;
  s.default_action = {policy::ActionKind::kKillProcess, 0};
  s.allowed.push_back({"socketcall", "", {}});  // x86 only
  s.allowed.push_back({"read", "", {}});
  auto program = compileSeccompFilter(s);
  ASSERT_TRUE(program) << program.error().detail();
  EXPECT_FALSE(program->empty());
}

TEST_F(SeccompFilter, DefaultPolicyRunsOrdinaryPython) {
  TempDir work("seccomp-work");
  test::writeFile(
      work / "job.py",
      "import threading, tempfile, json, sqlite3, subprocess, sys, os, decimal\n"
      "import asyncio, multiprocessing\n"
      "def sq(x): return x * x\n"
      "if __name__ == '__main__':\n"
      "    out = []\n"
      "    t = threading.Thread(target=lambda: out.append(sum(range(100))))\n"
      "    t.start(); t.join()\n"
      "    print('thread', out[0])\n"
      "    with tempfile.TemporaryDirectory() as d:\n"
      "        db = sqlite3.connect(os.path.join(d, 'a.db'))\n"
      "        db.execute('create table t(x)'); db.execute('insert into t values (7)')\n"
      "        db.commit(); print('sqlite', db.execute('select x from t').fetchone()[0])\n"
      "        db.close()\n"
      "    print('json', json.dumps({'d': str(decimal.Decimal('1.10') * 3)}))\n"
      "    r = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, "
      "text=True)\n"
      "    print('subprocess', r.stdout.strip())\n"
      "    async def f(): await asyncio.sleep(0); return 'ok'\n"
      "    print('asyncio', asyncio.run(f()))\n"
      "    with multiprocessing.Pool(2) as pool: print('pool', pool.map(sq, range(4)))\n");
  test::RunOptions options;
  options.cwd = work.path();
  Outcome o = test::run(
      {SECCOMP_EXEC, kPolicyDir + "/default.yaml", kPython, "-I", "-B", "-u", work / "job.py"},
      options);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out,
            "thread 4950\nsqlite 7\njson {\"d\": \"3.30\"}\nsubprocess 42\nasyncio ok\n"
            "pool [0, 1, 4, 9]\n");
}

TEST_F(SeccompFilter, DefaultPolicyDeniesInetSocketsWithEperm) {
  Outcome o = runPython(kPolicyDir + "/default.yaml",
                        "import socket\n"
                        "for fam in (socket.AF_INET, socket.AF_INET6):\n"
                        "    try:\n"
                        "        socket.socket(fam, socket.SOCK_STREAM); print('opened')\n"
                        "    except PermissionError as e: print('denied', e.errno)\n");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "denied 1\ndenied 1\n");
}

TEST_F(SeccompFilter, DefaultPolicyAllowsSocketpairOfUnixSocketsOnly) {
  // socketpair of another family (AF_TIPC = 30 implements it) would reach kernel protocol code
  // that the socket rule keeps out: it must end the job, while AF_UNIX pairs keep working.
  Outcome o = runPython(kPolicyDir + "/default.yaml",
                        "import socket\n"
                        "a, b = socket.socketpair(socket.AF_UNIX)\n"
                        "a.send(b'x'); print('unix', b.recv(1), flush=True)\n"
                        "socket.socketpair(30, socket.SOCK_SEQPACKET)\n"
                        "print('tipc pair made')\n");
  EXPECT_TRUE(o.signaled) << o.out << o.err;
  EXPECT_EQ(o.exit_code, 128 + SIGSYS);
  EXPECT_EQ(o.out, "unix b'x'\n");
}

TEST_F(SeccompFilter, UnlistedSyscallKillsTheJobWithSigsys) {
  // ptrace is in no group of the default policy: its default action kills the whole process.
  Outcome o = runPython(kPolicyDir + "/default.yaml",
                        kRawSyscall + "print('before', flush=True)\nprint(sc(101, 0, 0, 0, 0))\n");
  EXPECT_TRUE(o.signaled);
  EXPECT_EQ(o.exit_code, 128 + SIGSYS);
  EXPECT_EQ(o.out, "before\n");
}

TEST_F(SeccompFilter, ProbedSyscallsAndIoUringAnswerEnosys) {
  // 425 io_uring_setup, 435 clone3, 439 faccessat2 (x86_64 and aarch64 share these numbers).
  Outcome o =
      runPython(kPolicyDir + "/default.yaml",
                kRawSyscall + "print(sc(425, 1, 0), sc(435, 0, 0), sc(439, -100, 0, 0, 0))\n");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "(-1, 38) (-1, 38) (-1, 38)\n");
}

TEST_F(SeccompFilter, IoUringIsDeniedEvenWhenTheDefaultActionOnlyLogs) {
  std::string p = policy("log.yaml", "version: 1\nseccomp:\n  default_action: log\n");
  Outcome o = runPython(p, kRawSyscall + "print(sc(425, 1, 0))\n");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "(-1, 38)\n");
}

TEST_F(SeccompFilter, ThirtyTwoBitArgumentsAreComparedOnTheirLowHalf) {
  // socket's domain is an int: the kernel ignores the upper half of the register. Garbage there
  // must neither turn the allowed AF_UNIX into a kill nor let AF_INET slip past its EPERM rule.
  Outcome o =
      runPython(kPolicyDir + "/default.yaml", kRawSyscall +
                                                  "fd, err = sc(41, (1 << 32) | 1, 1, 0)\n"
                                                  "print('unix', fd >= 0)\n"
                                                  "print('inet', sc(41, (1 << 32) | 2, 1, 0))\n");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "unix True\ninet (-1, 1)\n");
}

TEST_F(SeccompFilter, DefaultPolicyRefusesNamespaceFlagsOnClone) {
  // clone(CLONE_NEWUSER | SIGCHLD) matches no rule: the job is killed rather than unsharing.
  Outcome o = runPython(
      kPolicyDir + "/default.yaml",
      kRawSyscall + "print('before', flush=True)\nprint(sc(56, 0x10000000 | 17, 0, 0, 0, 0))\n");
  EXPECT_EQ(o.exit_code, 128 + SIGSYS) << o.out << o.err;
  EXPECT_EQ(o.out, "before\n");
}

TEST_F(SeccompFilter, StrictPolicyAllowsThreadsButNoChildProcesses) {
  Outcome o = runPython(kPolicyDir + "/strict.yaml",
                        "import threading, subprocess, sys, socket\n"
                        "r = []\n"
                        "t = threading.Thread(target=lambda: r.append(1)); t.start(); t.join()\n"
                        "print('thread', r)\n"
                        "try:\n"
                        "    subprocess.run([sys.executable, '-c', 'pass'])\n"
                        "    print('spawned')\n"
                        "except PermissionError as e: print('subprocess denied', e.errno)\n"
                        "try:\n"
                        "    socket.socket(socket.AF_UNIX); print('socket')\n"
                        "except PermissionError as e: print('socket denied', e.errno)\n");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "thread [1]\nsubprocess denied 1\nsocket denied 1\n");
}

TEST_F(SeccompFilter, ErrnoDefaultActionAnswersUnlistedCalls) {
  std::string p =
      policy("errno.yaml",
             "version: 1\nseccomp:\n  default_action: errno EACCES\n"
             "  allow: [\"@python-startup\", \"@python-files\", \"@python-threads\"]\n");
  Outcome o = runPython(p, kRawSyscall + "print(sc(101, 0, 0, 0, 0))\n");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "(-1, 13)\n");
}

// ---- other ABIs ----
// The filter is built for the native ABI only: a system call through the i386 entry (int $0x80)
// or with the x32 bit set is checked against numbers of another table, so it must kill the
// process whatever the policy allows. These tests make both calls themselves (inline assembly),
// in a forked child that loads the compiled default policy, which allows getpid.

#if defined(__x86_64__)
constexpr long kI386Getpid = 20;
constexpr long kX32SyscallBit = 0x40000000;
constexpr long kX86_64Getpid = 39;

long i386Getpid() {
  long ret = kI386Getpid;
  // The 32-bit entry may clobber r8-r11 (kernels zero them on return).
  asm volatile("int $0x80" : "+a"(ret) : : "r8", "r9", "r10", "r11", "memory");
  return ret;
}

long x32Getpid() {
  long ret = kX32SyscallBit | kX86_64Getpid;
  asm volatile("syscall" : "+a"(ret) : : "rcx", "r11", "memory");
  return ret;
}

// Forks a child that, after loading `program` when it is non-null, makes call(). The child exits
// 0 when call() returned its pid, 1 when it returned something else. Returns the wait status.
int statusOfCallInChild(const SeccompProgram* program, long (*call)()) {
  pid_t child = ::fork();
  if (child == 0) {
    // The kernel's answer must show in the wait status: ASan's own SIGSEGV and SIGSYS handlers
    // would turn a fault into a report and an exit.
    ::signal(SIGSEGV, SIG_DFL);
    ::signal(SIGSYS, SIG_DFL);
    if (program != nullptr &&
        (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || loadSeccompProgram(*program) != 0)) {
      _exit(2);
    }
    _exit(call() == ::getpid() ? 0 : 1);
  }
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  return status;
}

class OtherAbis : public ::testing::Test {
 protected:
  void SetUp() override {
    auto p = policy::loadPolicy(kPolicyDir + "/default.yaml");
    ASSERT_TRUE(p) << p.error().detail();
    auto program = compileSeccompFilter(p->seccomp);
    ASSERT_TRUE(program) << program.error().detail();
    program_ = std::move(*program);
  }
  SeccompProgram program_;
};

TEST_F(OtherAbis, I386SystemCallKillsTheProcess) {
  // Without a filter the call must work, or the SIGSYS below would prove nothing. A kernel
  // without IA32 emulation (or booted with ia32_emulation=0) answers int $0x80 with SIGSEGV.
  int bare = statusOfCallInChild(nullptr, i386Getpid);
  if (WIFSIGNALED(bare) && WTERMSIG(bare) == SIGSEGV) {
    GTEST_SKIP() << "this kernel has no i386 system call entry (int $0x80 raises SIGSEGV)";
  }
  ASSERT_TRUE(WIFEXITED(bare) && WEXITSTATUS(bare) == 0) << "int $0x80 getpid failed: " << bare;
  int status = statusOfCallInChild(&program_, i386Getpid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGSYS);
}

TEST_F(OtherAbis, X32SystemCallKillsTheProcess) {
  // The native getpid is allowed by the policy: the process lives through it.
  int native = statusOfCallInChild(&program_, [] { return static_cast<long>(::getpid()); });
  ASSERT_TRUE(WIFEXITED(native) && WEXITSTATUS(native) == 0) << native;
  // Without a filter an x32 call either works (CONFIG_X86_X32_ABI) or answers ENOSYS; under the
  // filter it never reaches the kernel's tables.
  int status = statusOfCallInChild(&program_, x32Getpid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGSYS);
}
#else
TEST(OtherAbis, I386AndX32SystemCallsKillTheProcess) {
  GTEST_SKIP() << "the other-ABI tests make x86_64 system calls (int $0x80, x32)";
}
#endif

}  // namespace
}  // namespace pyrun::sandbox
