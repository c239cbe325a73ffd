// Tests for the pyrun-policy program: check, explain, run and learn as an admin runs them.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common/dir.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun {
namespace {

using test::binary;
using test::Outcome;
using test::run;

const std::string kPolicyDir = std::string(PYRUN_SOURCE_DIR) + "/policy";

TEST(PyrunPolicyCheck, ShippedPoliciesPass) {
  Outcome o = run(
      {binary("pyrun-policy"), "check", kPolicyDir + "/default.yaml", kPolicyDir + "/strict.yaml"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, kPolicyDir + "/default.yaml: ok\n" + kPolicyDir + "/strict.yaml: ok\n");
  EXPECT_EQ(o.err, "");
}

TEST(PyrunPolicyCheck, BadFilePrintsEachMistakeWithItsPositionAndFails) {
  test::TempDir dir("cli");
  std::string bad = dir / "bad.yaml";
  test::writeFile(bad,
                  "version: 1\n"
                  "seccomp:\n"
                  "  default_action: kill_process\n"
                  "  allow: [read, sokcet]\n"
                  "limits:\n"
                  "  memory: lots\n");
  Outcome o = run({binary("pyrun-policy"), "check", kPolicyDir + "/default.yaml", bad});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.out, kPolicyDir + "/default.yaml: ok\n");
  EXPECT_EQ(o.err,
            bad + ":4:17: unknown syscall \"sokcet\" (did you mean \"socket\"?)\n" + bad +
                ":6:11: limits.memory: \"lots\" is not a size (use bytes or a number with K, "
                "M, G or T, e.g. 512M)\n");
}

TEST(PyrunPolicyCheck, MissingFileFails) {
  Outcome o = run({binary("pyrun-policy"), "check", "/nonexistent/p.yaml"});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_NE(o.err.find("/nonexistent/p.yaml"), std::string::npos) << o.err;
}

TEST(PyrunPolicyExplain, ShowsLimitsGroupsAndFilterSize) {
  Outcome o = run({binary("pyrun-policy"), "explain", kPolicyDir + "/default.yaml"});
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("policy default ("), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("memory:       512M (" + kPolicyDir + "/default.yaml:"), std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("default_action: kill_process"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("@python-threads ("), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("socket if arg0 & 0xffffffff == 0x2 (low 32 bits) -> errno EPERM"),
            std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("answer ENOSYS"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(" BPF instructions ("), std::string::npos) << o.out;
}

TEST(PyrunPolicyExplain, InvalidPolicyFailsWithPositions) {
  test::TempDir dir("cli");
  std::string bad = dir / "bad.yaml";
  test::writeFile(bad, "version: 1\nseccomp:\n  allow: [read]\n");
  Outcome o = run({binary("pyrun-policy"), "explain", bad});
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.err.rfind(bad + ":2:1: seccomp.default_action is required", 0), 0u) << o.err;
  EXPECT_EQ(o.out, "");
}

TEST(PyrunPolicyUsage, HelpAndMistakes) {
  Outcome help = run({binary("pyrun-policy"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("pyrun-policy check FILE..."), std::string::npos);
  EXPECT_NE(help.out.find("pyrun-policy explain FILE"), std::string::npos);
  EXPECT_EQ(run({binary("pyrun-policy")}).exit_code, 2);
  EXPECT_EQ(run({binary("pyrun-policy"), "check"}).exit_code, 2);
  EXPECT_EQ(run({binary("pyrun-policy"), "explain", "a", "b"}).exit_code, 2);
  Outcome unknown = run({binary("pyrun-policy"), "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown command \"frobnicate\""), std::string::npos);
  EXPECT_EQ(run({binary("pyrun-policy"), "run", kPolicyDir + "/default.yaml"}).exit_code, 2);
  EXPECT_EQ(run({binary("pyrun-policy"), "learn"}).exit_code, 2);
  EXPECT_EQ(run({binary("pyrun-policy"), "learn", "--base"}).exit_code, 2);
  EXPECT_NE(help.out.find("pyrun-policy run FILE SCRIPT [ARGS...]"), std::string::npos);
  EXPECT_NE(help.out.find("pyrun-policy learn [--base FILE] SCRIPT [ARGS...]"), std::string::npos);
}

// ---- run: a script under a policy, through the spawner pyrund uses ----

// Entries of dir whose names start with prefix (none when dir cannot be read).
std::vector<std::string> namesStartingWith(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> found;
  if (auto entries = listDirectory(dir)) {
    for (auto& e : *entries) {
      if (e.name.starts_with(prefix)) found.push_back(std::move(e.name));
    }
  }
  return found;
}

// pyrun-policy's private jobs directories (/tmp/pyrun-policy-*) that exist now.
std::vector<std::string> runDirectories() { return namesStartingWith("/tmp", "pyrun-policy-"); }

// Scripts and policies for run and learn, in a directory every uid may read (jobs run under uids
// of their own when the test runs as root).
class PyrunPolicyRun : public ::testing::Test {
 protected:
  PyrunPolicyRun() { ::chmod(dir_.path().c_str(), 0755); }

  std::string file(const std::string& name, const std::string& text) {
    test::writeFile(dir_ / name, text, 0644);
    return dir_ / name;
  }
  // The shipped default policy with other limits (lines under "limits:").
  std::string policyWith(const std::string& limits) {
    return file("p.yaml",
                "version: 1\ninclude: [" + kPolicyDir + "/default.yaml]\nlimits:\n" + limits);
  }
  Outcome runScript(const std::string& policy, const std::string& script,
                    std::vector<std::string> args = {}, const std::string& stdin_data = "") {
    std::vector<std::string> argv = {binary("pyrun-policy"), "run", policy, script};
    argv.insert(argv.end(), args.begin(), args.end());
    test::RunOptions options;
    options.stdin_data = stdin_data;
    return run(argv, options);
  }

  test::TempDir dir_{"cli-run"};
};

TEST_F(PyrunPolicyRun, RelaysArgumentsStdinOutputAndExitStatus) {
  auto script = file("echo.py",
                     "import sys\n"
                     "print('args', sys.argv[1:])\n"
                     "print('got', input())\n"
                     "print('to stderr', file=sys.stderr)\n"
                     "sys.exit(3)\n");
  auto before = runDirectories();
  Outcome o = runScript(kPolicyDir + "/default.yaml", script, {"a", "b c"}, "hello\n");
  // Nothing of the job is left behind: the working directory and the private jobs directory.
  for (const auto& name : runDirectories()) {
    EXPECT_NE(std::find(before.begin(), before.end(), name), before.end()) << "left: /tmp/" << name;
  }
  EXPECT_EQ(o.exit_code, 3) << o.err;
  EXPECT_EQ(o.out, "args ['a', 'b c']\ngot hello\n");
  EXPECT_EQ(o.err, "to stderr\n");
}

// pyrun-policy's cgroup subtrees (pyrun-policy-<pid>) under the v1 pids hierarchy.
std::vector<std::string> policyCgroupSubtrees(const std::string& hierarchy) {
  return namesStartingWith(hierarchy, "pyrun-policy-");
}

TEST_F(PyrunPolicyRun, LeavesTheServersCgroupSubtreeAloneAndRemovesItsOwn) {
  // A spawner empties its cgroup subtree at start. pyrun-policy on a host where pyrund runs must
  // not use pyrund's default subtree "pyrun" (it would kill pyrund's jobs), and must not leave a
  // subtree of its own behind.
  const std::string pids = "/sys/fs/cgroup/pids";
  if (::access((pids + "/cgroup.procs").c_str(), W_OK) != 0) {
    GTEST_SKIP() << "no writable cgroup v1 pids hierarchy at " << pids << " on this host";
  }
  const std::string server_job = pids + "/pyrun/job-4242424242";
  ::mkdir((pids + "/pyrun").c_str(), 0755);
  ASSERT_EQ(::mkdir(server_job.c_str(), 0755), 0) << std::strerror(errno);
  auto before = policyCgroupSubtrees(pids);
  auto script = file("hello.py", "print('hello')\n");
  Outcome o = runScript(kPolicyDir + "/default.yaml", script);
  bool server_job_kept = ::access(server_job.c_str(), F_OK) == 0;
  ::rmdir(server_job.c_str());
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out, "hello\n");
  EXPECT_TRUE(server_job_kept) << "pyrun-policy run removed a job cgroup of pyrund's subtree";
  EXPECT_EQ(policyCgroupSubtrees(pids), before);
}

TEST_F(PyrunPolicyRun, FirstCtrlCReachesTheProgramAndASecondKillsIt) {
  auto script = file("intr.py",
                     "import time\n"
                     "try:\n"
                     "    print('ready', flush=True)\n"
                     "    time.sleep(1000)\n"
                     "except KeyboardInterrupt:\n"
                     "    print('interrupted', flush=True)\n"
                     "print('stubborn', flush=True)\n"
                     "time.sleep(1000)\n");
  test::Child c({binary("pyrun-policy"), "run", kPolicyDir + "/default.yaml", script});
  ASSERT_NE(c.readStdoutUntil("ready\n", std::chrono::seconds(60)).find("ready\n"),
            std::string::npos);
  c.signal(SIGINT);
  ASSERT_NE(
      c.readStdoutUntil("stubborn\n", std::chrono::seconds(60)).find("interrupted\nstubborn\n"),
      std::string::npos);
  c.signal(SIGINT);
  Outcome o = c.wait(std::chrono::seconds(60));
  EXPECT_EQ(o.exit_code, 128 + 9) << o.err;
  EXPECT_NE(o.err.find("pyrun-policy: cancelled by the client"), std::string::npos) << o.err;
}

TEST_F(PyrunPolicyRun, RunsInAPrivateWorkingDirectoryWithoutTheHostNetwork) {
  auto script = file("where.py",
                     "import os, socket\n"
                     "print(sorted(os.listdir('.')))\n"
                     "try:\n"
                     "    socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
                     "    print('network allowed')\n"
                     "except OSError as e:\n"
                     "    print('network', type(e).__name__)\n");
  Outcome o = runScript(kPolicyDir + "/default.yaml", script);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  // Only the uploaded script is there: not the test's directory, which holds other files.
  EXPECT_EQ(o.out, "['where.py']\nnetwork PermissionError\n") << o.err;
}

TEST_F(PyrunPolicyRun, CpuLimitEndsTheJobWithItsVerdict) {
  auto script = file("spin.py", "while True:\n    pass\n");
  Outcome o = runScript(policyWith("  cpu_seconds: 1\n"), script);
  EXPECT_NE(o.exit_code, 0);
  EXPECT_NE(o.err.find("pyrun-policy: CPU time limit of 1 s exceeded"), std::string::npos) << o.err;
}

TEST_F(PyrunPolicyRun, WallLimitEndsTheJobWithItsVerdict) {
  auto script = file("sleep.py", "import time\nprint('sleeping', flush=True)\ntime.sleep(1000)\n");
  Outcome o = runScript(policyWith("  wall_seconds: 1\n"), script);
  EXPECT_EQ(o.out, "sleeping\n");
  EXPECT_EQ(o.exit_code, 128 + 9) << o.err;
  EXPECT_NE(o.err.find("pyrun-policy: wall-clock limit of 1 s exceeded"), std::string::npos)
      << o.err;
}

TEST_F(PyrunPolicyRun, OutputLimitTruncatesAndSaysSo) {
  auto script = file("flood.py", "while True:\n    print('y' * 1000)\n");
  Outcome o = runScript(policyWith("  output: 64K\n"), script);
  EXPECT_EQ(o.out.size(), 64u << 10);
  EXPECT_NE(o.exit_code, 0);
  // The sentence pyrund gives (proto::verdictSentence), once.
  EXPECT_NE(o.err.find("pyrun-policy: output limit of 64 KiB reached; output truncated and the job "
                       "killed\n"),
            std::string::npos)
      << o.err;
  EXPECT_EQ(o.err.find("truncated; output truncated"), std::string::npos) << o.err;
}

TEST_F(PyrunPolicyRun, ForbiddenSystemCallEndsTheJobAndIsNamed) {
  auto script = file("ptrace.py",
                     "import ctypes\n"
                     "print('before', flush=True)\n"
                     "ctypes.CDLL(None).ptrace(0, 0, None, None)\n"
                     "print('after', flush=True)\n");
  Outcome o = runScript(kPolicyDir + "/default.yaml", script);
  EXPECT_EQ(o.out, "before\n") << o.err;
  EXPECT_EQ(o.exit_code, 128 + 31) << o.err;  // SIGSYS
  EXPECT_NE(o.err.find("pyrun-policy: forbidden system call"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("ptrace"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("call: forbidden"), std::string::npos) << o.err;  // said once
}

TEST_F(PyrunPolicyRun, InvalidPolicyIsRefusedWithPositions) {
  auto bad = file("bad.yaml", "version: 1\nseccomp:\n  allow: [read]\n");
  auto script = file("ok.py", "print('never')\n");
  Outcome o = runScript(bad, script);
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err.rfind(bad + ":2:1: seccomp.default_action is required", 0), 0u) << o.err;
}

TEST_F(PyrunPolicyRun, MissingScriptIsNamed) {
  Outcome o = runScript(kPolicyDir + "/default.yaml", dir_ / "nope.py");
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_NE(o.err.find("cannot read the script " + (dir_ / "nope.py")), std::string::npos) << o.err;
}

TEST_F(PyrunPolicyRun, WorksUnprivileged) {
  auto script = file("who.py", "import os\nprint('uid', os.getuid() != 0 or 'mapped')\n");
  std::vector<std::string> argv = {binary("pyrun-policy"), "run", kPolicyDir + "/default.yaml",
                                   script};
  if (::geteuid() == 0) {
    // The same program as an ordinary user: the spawner then confines through a user namespace.
    argv.insert(argv.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  }
  Outcome o = run(argv);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out.rfind("uid ", 0), 0u) << o.out << o.err;
}

// ---- learn: the system calls a script makes, as a policy draft ----

TEST_F(PyrunPolicyRun, LearnPrintsADraftThatCheckAcceptsAndThatRunsTheScript) {
  if (::geteuid() != 0) GTEST_SKIP() << "learn reads the kernel's audit records: root only";
  auto script = file("work.py",
                     "import json, threading\n"
                     "t = threading.Thread(target=lambda: None)\n"
                     "t.start(); t.join()\n"
                     "print(json.dumps({'ok': [1, 2]}))\n");
  Outcome learned =
      run({binary("pyrun-policy"), "learn", "--base", kPolicyDir + "/default.yaml", script});
  ASSERT_EQ(learned.exit_code, 0) << learned.err;
  // stdout is the draft alone; the program's output went to stderr.
  EXPECT_NE(learned.err.find("{\"ok\": [1, 2]}"), std::string::npos) << learned.err;
  EXPECT_NE(learned.out.find("default_action: kill_process"), std::string::npos) << learned.out;
  EXPECT_NE(learned.out.find("    - execve\n"), std::string::npos) << learned.out;
  EXPECT_NE(learned.out.find("    - clone\n"), std::string::npos) << learned.out;
  EXPECT_NE(learned.out.find("cpu_seconds: 10\n"), std::string::npos) << learned.out;
  EXPECT_EQ(learned.out.find("socket"), std::string::npos) << learned.out;
  EXPECT_EQ(learned.out.find("getppid"), std::string::npos) << learned.out;
  auto draft = file("draft.yaml", learned.out);
  Outcome checked = run({binary("pyrun-policy"), "check", draft});
  EXPECT_EQ(checked.exit_code, 0) << checked.err;

  Outcome again = runScript(draft, script);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "{\"ok\": [1, 2]}\n");
  // The draft allows only what the run made: the same program plus one system call it never
  // made (getppid) ends the job at that call.
  auto other = file("other.py",
                    "import json, os, threading\n"
                    "t = threading.Thread(target=lambda: None)\n"
                    "t.start(); t.join()\n"
                    "print(json.dumps(1), flush=True)\n"
                    "os.getppid()\n"
                    "print('after', flush=True)\n");
  Outcome denied = runScript(draft, other);
  EXPECT_EQ(denied.out, "1\n") << denied.err;
  EXPECT_NE(denied.err.find("forbidden system call"), std::string::npos) << denied.err;
}

TEST_F(PyrunPolicyRun, LearnRefusesWithoutRootAndSaysWhy) {
  auto script = file("x.py", "print(1)\n");
  std::vector<std::string> argv = {binary("pyrun-policy"), "learn", "--base",
                                   kPolicyDir + "/default.yaml", script};
  if (::geteuid() == 0) {
    argv.insert(argv.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  }
  Outcome o = run(argv);
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.out, "");
  EXPECT_NE(o.err.find("learn must run as root"), std::string::npos) << o.err;
}

}  // namespace
}  // namespace pyrun
