// pyrun -t against a real pyrund: the interactive behaviour a person at a terminal sees (driven on
// a real pseudo-terminal by drive_terminal.py, which also checks that the local terminal's
// settings come back unchanged), the policy's say, and attacks on the job's terminal (scripts/,
// each says what it tries). Everything synchronises on output, never on sleeps.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

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

const std::string kDir = TERMINAL_DIR;
const std::string kScripts = kDir + "/scripts/";
const std::string kDriver = kDir + "/drive_terminal.py";
const std::string kDefaultPolicy = PYRUN_SOURCE_DIR "/policy/default.yaml";
constexpr uint64_t kFloodCap = 256 * 1024;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// One pyrund as root (tests/support's Pyrund): alice runs under the shipped default policy, bob
// under one that refuses terminals, flood under one with a small output cap.
class ServerFixture {
 public:
  explicit ServerFixture(const std::string& name) : dir_(name) {
    pki_ = std::make_unique<Pki>(dir_.path());
    alice_ = pki_->clientBundle("alice");
    bob_ = pki_->clientBundle("bob");
    flood_ = pki_->clientBundle("flood");
    writeFile(dir_ / "noterm.yaml",
              "version: 1\ninclude: [" + kDefaultPolicy + "]\nterminal: false\n");
    writeFile(dir_ / "flood.yaml", "version: 1\ninclude: [" + kDefaultPolicy +
                                       "]\nlimits:\n  output: " + std::to_string(kFloodCap) + "\n");
    PyrundOptions o;
    o.cert = pki_->serverBundle();
    o.config_yaml =
        poolSizeYaml() + "max_jobs: 4\nqueue: 16\npolicies:\n  default: " + kDefaultPolicy +
        "\n  noterm: " + (dir_ / "noterm.yaml") + "\n  flood: " + (dir_ / "flood.yaml") +
        "\nidentities:\n  default: default\n  clients:\n    bob: noterm\n"
        "    flood: flood\n";
    server_ = std::make_unique<Pyrund>(dir_.path(), std::move(o));
  }

  bool up() const { return server_->started(); }
  const std::string& error() const { return server_->startError(); }
  pid_t pid() const { return server_->pid(); }
  std::string address() const { return server_->address(); }

  std::vector<std::string> pyrun(const std::string& bundle, const std::vector<std::string>& flags,
                                 const std::string& script) const {
    std::vector<std::string> argv = {binary("pyrun"), "--cert", bundle, "--no-modules"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(address());
    argv.push_back(kScripts + script);
    return argv;
  }

  std::string alice_, bob_, flood_;

 private:
  TempDir dir_;
  std::unique_ptr<Pki> pki_;
  std::unique_ptr<Pyrund> server_;
};

class TerminalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0) return;
    server_ = std::make_unique<ServerFixture>("terminal-srv");
  }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "pyrund confines jobs as root only here";
    ASSERT_TRUE(server_->up()) << server_->error();
  }

  // drive_terminal.py SCENARIO [extra] pyrun -t ... SCRIPT: PASS, or its FAIL line and transcript.
  static Outcome drive(const std::string& scenario, const std::string& script,
                       const std::vector<std::string>& extra = {},
                       const ServerFixture* server = nullptr) {
    const ServerFixture& s = server != nullptr ? *server : *server_;
    std::vector<std::string> argv = {"python3", kDriver, scenario};
    argv.insert(argv.end(), extra.begin(), extra.end());
    for (auto& a : s.pyrun(s.alice_, {"-t"}, script)) argv.push_back(a);
    RunOptions options;
    options.timeout = 120s;
    return run(argv, options);
  }

  static Outcome job(const std::string& bundle, const std::vector<std::string>& flags,
                     const std::string& script, const std::string& stdin_data = "") {
    RunOptions options;
    options.timeout = 90s;
    options.stdin_data = stdin_data;
    return run(server_->pyrun(bundle, flags, script), options);
  }

  static inline std::unique_ptr<ServerFixture> server_;
};

// ---- what the user sees ----

TEST_F(TerminalTest, ProgramSeesATerminalWithTheClientsSizeAndTerm) {
  Outcome o = drive("isatty", "isatty.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_TRUE(contains(o.out, "PASS")) << o.out << o.err;
}

TEST_F(TerminalTest, PromptAppearsBeforeAnythingIsTyped) {
  Outcome o = drive("input", "input.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
}

TEST_F(TerminalTest, GetpassDoesNotEcho) {
  Outcome o = drive("getpass", "getpass_prompt.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
}

TEST_F(TerminalTest, PdbAtBreakpointTakesCommands) {
  Outcome o = drive("pdb", "debug_me.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
}

TEST_F(TerminalTest, ResizeChangesTheJobsTerminalSize) {
  Outcome o = drive("resize", "resize.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
}

TEST_F(TerminalTest, CtrlCRaisesKeyboardInterrupt) {
  Outcome o = drive("ctrl-c", "ctrl_c.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
}

TEST_F(TerminalTest, CtrlDEndsInputWithEofError) {
  Outcome o = drive("ctrl-d", "ctrl_d.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
}

TEST_F(TerminalTest, TildeDotEndsTheSessionAndRestoresTheTerminal) {
  Outcome o = drive("escape", "wait_input.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
}

// Every signal whose default would end pyrun goes through its way out, which restores the
// terminal: without the handler, SIGQUIT and SIGUSR1 would leave it in raw mode.
TEST_F(TerminalTest, SignalsSentToPyrunRestoreTheTerminal) {
  for (const char* name : {"kill-term", "kill-quit", "kill-usr1"}) {
    Outcome o = drive(name, "wait_input.py");
    EXPECT_EQ(o.exit_code, 0) << name << "\n" << o.out << o.err;
  }
}

TEST_F(TerminalTest, ServerDeathMidJobRestoresTheTerminal) {
  // A server of its own: this one is killed.
  ServerFixture doomed("terminal-doomed");
  ASSERT_TRUE(doomed.up()) << doomed.error();
  Outcome o = drive("server-dies", "wait_input.py", {std::to_string(doomed.pid())}, &doomed);
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
}

// ---- without a local terminal, without -t, and the policy ----

TEST_F(TerminalTest, SingleTNeedsALocalTerminal) {
  Outcome o = job(server_->alice_, {"-t"}, "isatty.py", "");
  EXPECT_EQ(o.exit_code, 255);
  EXPECT_EQ(o.err,
            "pyrun: -t needs a terminal on stdin (give -tt to get one for the program "
            "anyway)\n");
}

TEST_F(TerminalTest, DoubleTGivesTheProgramATerminalAnyway) {
  Outcome o = job(server_->alice_, {"-tt"}, "isatty.py", "");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(contains(o.out, "TTY True True True\r\n")) << o.out;
  EXPECT_TRUE(contains(o.out, "SIZE 80 24\r\n")) << o.out;  // no local size: 24x80
  EXPECT_TRUE(contains(o.out, "CTTY /dev/pts/0\r\n")) << o.out;
}

TEST_F(TerminalTest, WithoutTNothingChanges) {
  Outcome o = job(server_->alice_, {}, "no_terminal.py");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.out,
            "TTY False False False\n"
            "DEV fd full null random shm stderr stdin stdout urandom zero\n"
            "TERM None\n");
}

TEST_F(TerminalTest, PolicyCanRefuseTerminals) {
  Outcome refused = job(server_->bob_, {"-tt"}, "no_terminal.py");
  EXPECT_EQ(refused.exit_code, 255);
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(refused.err,
            "pyrun: policy \"noterm\" does not allow a terminal (terminal: false); run without "
            "-t\n");
  Outcome plain = job(server_->bob_, {}, "no_terminal.py");
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
}

// ---- attacks on the terminal ----

TEST_F(TerminalTest, HostPtysAreOutOfReach) {
  Outcome o = job(server_->alice_, {"-tt"}, "host_ptys.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_FALSE(contains(o.out, "ALLOWED")) << o.out;
  // The job's own devpts instance: its terminal and ptmx, nothing of the host's.
  EXPECT_TRUE(contains(o.out, "PTS 0 ptmx\r\n")) << o.out;
  for (const char* dev : {"/dev/pts/1", "/dev/pts/5", "/dev/tty0", "/dev/tty1", "/dev/console",
                          "/dev/ttyS0", "/dev/vcs"}) {
    EXPECT_TRUE(contains(o.out, std::string("BLOCKED open ") + dev + ": ")) << dev << o.out;
  }
  EXPECT_TRUE(contains(o.out, "BLOCKED list /proc/1/fd: PermissionError")) << o.out;
  // stdio is the terminal, and the job holds no other descriptor (no master: 0-2 and listdir's).
  EXPECT_TRUE(contains(o.out, "FDS /dev/pts/0 /dev/pts/0 /dev/pts/0\r\n")) << o.out;
  EXPECT_TRUE(contains(o.out, "NFDS 4\r\n")) << o.out;
  EXPECT_TRUE(contains(o.out, "DEVPTS devpts devpts rw,mode=600,ptmxmode=666,max=16")) << o.out;
  EXPECT_TRUE(contains(o.out, "NEWPTY /dev/pts/1\r\n")) << o.out;
  EXPECT_TRUE(contains(o.out, "DONE")) << o.out;
}

TEST_F(TerminalTest, TiocstiAndTioclinuxFailWithEperm) {
  Outcome o = job(server_->alice_, {"-tt"}, "inject.py");
  EXPECT_EQ(o.exit_code, 0) << o.out << o.err;
  EXPECT_FALSE(contains(o.out, "ALLOWED")) << o.out;
  for (const char* what : {"TIOCSTI stdin EPERM", "TIOCLINUX stdin EPERM", "TIOCSTI tty EPERM",
                           "TIOCLINUX tty EPERM"}) {
    EXPECT_TRUE(contains(o.out, std::string("BLOCKED ") + what + "\r\n")) << what << o.out;
  }
}

TEST_F(TerminalTest, UnlistedIoctlGetsThePolicysDefaultAction) {
  Outcome o = job(server_->alice_, {"-tt"}, "unknown_ioctl.py");
  EXPECT_EQ(o.exit_code, 128 + SIGSYS) << o.out << o.err;
  EXPECT_TRUE(contains(o.out, "ATTEMPT")) << o.out;
  EXPECT_FALSE(contains(o.out, "SURVIVED")) << o.out;
  EXPECT_TRUE(contains(o.err, "forbidden system call: ioctl")) << o.err;
}

TEST_F(TerminalTest, AClientThatDoesNotReadStallsTheProgram) {
  // pyrun's stdout is a pipe this test leaves unread for a while: the program's terminal must
  // fill and its writes stall (it says so once it can write again), far below the output cap
  // (16 MiB under default.yaml). The pause is the stall under test, not a synchronisation: the
  // program needs about 2 s of refused writes, and without backpressure it would reach the cap
  // in well under a second.
  Child pyrun(server_->pyrun(server_->alice_, {"-tt"}, "backpressure.py"));
  std::this_thread::sleep_for(10s);
  Outcome o = pyrun.wait(120s);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  auto at = o.out.find("STALLED after ");
  ASSERT_NE(at, std::string::npos) << o.out.size() << " bytes, no stall; " << o.err;
  const uint64_t written = std::stoull(o.out.substr(at + 14));
  EXPECT_LT(written, 16u << 20);
  EXPECT_EQ(o.out.size(), written + std::string("\r\nSTALLED after ").size() +
                              std::to_string(written).size() + 2);
}

TEST_F(TerminalTest, TerminalOutputFloodStopsAtTheCap) {
  Outcome o = job(server_->flood_, {"-tt"}, "flood.py");
  // As for pipes: delivered exactly up to the cap, then the job is killed (SIGKILL) and told so.
  EXPECT_EQ(o.exit_code, 128 + SIGKILL) << o.err;
  EXPECT_EQ(o.err, "pyrun: output limit of 256 KiB reached; output truncated and the job killed\n");
  EXPECT_EQ(o.out.size(), kFloodCap);
  EXPECT_EQ(o.out.find_first_not_of('x'), std::string::npos);
}

}  // namespace
}  // namespace pyrun::test
