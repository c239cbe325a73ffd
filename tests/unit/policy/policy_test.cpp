// Tests for policy loading: every kind of mistake with its file:line:col, includes, extending a
// base, sizes, and the shipped policies.
#include "policy/policy.h"

#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "policy/catalog.h"
#include "support/temp_dir.h"

namespace pyrun::policy {
namespace {

using test::TempDir;
using test::writeFile;

const std::string kPolicyDir = std::string(PYRUN_SOURCE_DIR) + "/policy";

// A valid minimal document the tests add to.
const std::string kHead =
    "version: 1\n"
    "seccomp:\n"
    "  default_action: kill_process\n";

class PolicyFiles : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ / name;
    writeFile(path, text);
    return path;
  }
  // Every diagnostic of loading `text` as p.yaml, as "p.yaml:line:col: message" with the
  // directory stripped so expectations read like what an admin sees.
  std::vector<std::string> errorsOf(const std::string& text, const std::string& name = "p.yaml") {
    LoadOutcome outcome = loadPolicyWithDiagnostics(write(name, text));
    std::vector<std::string> lines;
    for (const Diagnostic& d : outcome.diagnostics) {
      std::string line = toString(d);
      std::string prefix = dir_.path() + "/";
      for (size_t at; (at = line.find(prefix)) != std::string::npos;) line.erase(at, prefix.size());
      lines.push_back(line);
    }
    EXPECT_EQ(outcome.policy.has_value(), lines.empty());
    return lines;
  }
  std::string firstErrorOf(const std::string& text) {
    auto errors = errorsOf(text);
    return errors.empty() ? "(no error)" : errors.front();
  }
  Policy load(const std::string& text, const std::string& name = "p.yaml") {
    Result<Policy> p = loadPolicy(write(name, text));
    EXPECT_TRUE(p) << (p ? "" : p.error().detail());
    return p ? *p : Policy{};
  }
  TempDir dir_{"policy"};
};

bool allows(const Policy& p, const std::string& syscall) {
  return std::any_of(p.seccomp.allowed.begin(), p.seccomp.allowed.end(),
                     [&](const AllowedSyscall& a) { return a.syscall == syscall; });
}
bool answersEnosys(const Policy& p, const std::string& syscall) {
  return std::find(p.seccomp.enosys.begin(), p.seccomp.enosys.end(), syscall) !=
         p.seccomp.enosys.end();
}

// ---- the shipped policies ----

TEST(ShippedPolicies, DefaultLoadsWithItsLimitsAndGroups) {
  Result<Policy> p = loadPolicy(kPolicyDir + "/default.yaml");
  ASSERT_TRUE(p) << p.error().detail();
  EXPECT_EQ(p->name, "default");
  EXPECT_EQ(p->interpreter, "/usr/bin/python3");
  EXPECT_EQ(p->limits.memory_bytes, 512ull << 20);
  EXPECT_EQ(p->limits.cpu_seconds, 10u);
  EXPECT_EQ(p->limits.workdir_bytes, 64ull << 20);
  EXPECT_EQ(p->limits.workdir_files, 4096u);
  EXPECT_EQ(p->network, NetworkMode::kNone);
  EXPECT_EQ(p->seccomp.default_action.kind, ActionKind::kKillProcess);
  EXPECT_TRUE(allows(*p, "read"));
  EXPECT_TRUE(allows(*p, "vfork"));
  EXPECT_FALSE(allows(*p, "socket"));  // only through its AF_UNIX rule
  EXPECT_FALSE(allows(*p, "ptrace"));
  EXPECT_TRUE(answersEnosys(*p, "clone3"));
  EXPECT_TRUE(answersEnosys(*p, "faccessat2"));
  EXPECT_TRUE(answersEnosys(*p, "io_uring_setup"));
}

TEST(ShippedPolicies, StrictHasNoChildProcessesAndTighterLimits) {
  Result<Policy> strict = loadPolicy(kPolicyDir + "/strict.yaml");
  Result<Policy> normal = loadPolicy(kPolicyDir + "/default.yaml");
  ASSERT_TRUE(strict) << strict.error().detail();
  ASSERT_TRUE(normal);
  EXPECT_FALSE(allows(*strict, "vfork"));
  EXPECT_FALSE(allows(*strict, "fork"));
  EXPECT_LT(strict->limits.memory_bytes, normal->limits.memory_bytes);
  EXPECT_LT(strict->limits.cpu_seconds, normal->limits.cpu_seconds);
  EXPECT_LT(strict->limits.processes, normal->limits.processes);
  EXPECT_LT(strict->limits.workdir_bytes, normal->limits.workdir_bytes);
  EXPECT_LT(strict->limits.workdir_files, normal->limits.workdir_files);
}

// ---- one test per kind of mistake, each with its exact position ----

// ---- terminals ----

const SyscallRule* ioctlRule(const Policy& p, int request) {
  for (const SyscallRule& r : p.seccomp.rules) {
    if (r.syscall == "ioctl" && r.conditions.size() == 1 && r.conditions[0].index == 1 &&
        r.conditions[0].value == static_cast<uint32_t>(request)) {
      return &r;
    }
  }
  return nullptr;
}

TEST_F(PolicyFiles, TerminalsAreAllowedUnlessThePolicySaysFalse) {
  EXPECT_TRUE(load(kHead).terminal);
  EXPECT_TRUE(load(kHead + "terminal: true\n").terminal);
  EXPECT_FALSE(load(kHead + "terminal: false\n").terminal);
  EXPECT_EQ(firstErrorOf(kHead + "terminal: no\n"),
            "p.yaml:4:11: terminal must be true or false, not \"no\"");
  EXPECT_EQ(firstErrorOf(kHead + "terminal: [true]\n"),
            "p.yaml:4:11: terminal must be true or false, not a list");
}

TEST_F(PolicyFiles, StartupGroupAllowsTerminalIoctlsByRequestAndDeniesInjection) {
  Policy p = load(kHead + "  allow: [\"@python-startup\"]\n");
  EXPECT_FALSE(allows(p, "ioctl"));  // never unconditionally
  for (int request : {TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCSWINSZ, TIOCGPGRP,
                      TIOCSPGRP, FIONBIO, FIOCLEX, FIONREAD}) {
    const SyscallRule* r = ioctlRule(p, request);
    ASSERT_NE(r, nullptr) << request;
    EXPECT_EQ(r->action.kind, ActionKind::kAllow);
    EXPECT_TRUE(r->conditions[0].is_32bit);
    EXPECT_EQ(r->conditions[0].op, CompareOp::kMaskedEq);
    EXPECT_EQ(r->conditions[0].mask, 0xffffffffu);
  }
  for (int request : {TIOCSTI, TIOCLINUX}) {
    const SyscallRule* r = ioctlRule(p, request);
    ASSERT_NE(r, nullptr) << request;
    EXPECT_EQ(r->action, (Action{ActionKind::kErrno, EPERM}));
  }
  // Without the group, no ioctl at all.
  EXPECT_EQ(ioctlRule(load(kHead + "  allow: [read]\n"), TCGETS), nullptr);
}

TEST_F(PolicyFiles, ShippedPoliciesDenyTiocstiAndTioclinux) {
  for (const char* name : {"default.yaml", "strict.yaml"}) {
    Result<Policy> p = loadPolicy(kPolicyDir + "/" + name);
    ASSERT_TRUE(p) << p.error().detail();
    EXPECT_FALSE(allows(*p, "ioctl")) << name;
    for (int request : {TIOCSTI, TIOCLINUX}) {
      const SyscallRule* r = ioctlRule(*p, request);
      ASSERT_NE(r, nullptr) << name << " " << request;
      EXPECT_EQ(r->action, (Action{ActionKind::kErrno, EPERM})) << name;
    }
  }
}

TEST_F(PolicyFiles, PolicysOwnIoctlRulesWinOverTheGroups) {
  // The policy's rule with the same condition replaces the group's; ioctl allowed by name keeps
  // its unconditional verdict (the group's rules would never apply).
  Policy p = load(kHead +
                  "  allow: [\"@python-startup\"]\n  rules:\n    - syscall: ioctl\n"
                  "      action: errno ENOTTY\n      args: [{index: 1, value: TIOCGWINSZ}]\n");
  EXPECT_EQ(ioctlRule(p, TIOCGWINSZ)->action, (Action{ActionKind::kErrno, ENOTTY}));
  Policy open = load(kHead + "  allow: [\"@python-startup\", ioctl]\n");
  EXPECT_TRUE(allows(open, "ioctl"));
  EXPECT_EQ(ioctlRule(open, TIOCSTI), nullptr);
}

TEST_F(PolicyFiles, UnknownTopLevelKey) {
  EXPECT_EQ(firstErrorOf(kHead + "limitz:\n  memory: 1G\n"),
            "p.yaml:4:1: unknown key \"limitz\" in the policy (known: version, include, "
            "interpreter, limits, network, terminal, filesystem, seccomp)");
}

TEST_F(PolicyFiles, UnknownLimitKey) {
  EXPECT_EQ(firstErrorOf(kHead + "limits:\n  memroy: 1G\n"),
            "p.yaml:5:3: unknown key \"memroy\" in limits (known: cpu_seconds, wall_seconds, "
            "memory, processes, file_size, open_files, output, tmp, cpus, workdir, "
            "workdir_files)");
}

TEST_F(PolicyFiles, UnknownSyscallSuggestsTheNearestName) {
  EXPECT_EQ(firstErrorOf(kHead + "  allow: [read, sokcet]\n"),
            "p.yaml:4:17: unknown syscall \"sokcet\" (did you mean \"socket\"?)");
}

TEST_F(PolicyFiles, UnknownSyscallWithoutCloseNameHasNoSuggestion) {
  EXPECT_EQ(firstErrorOf(kHead + "  allow:\n    - zzzzzzzzzzzz\n"),
            "p.yaml:5:7: unknown syscall \"zzzzzzzzzzzz\"");
}

TEST_F(PolicyFiles, UnknownSyscallInRule) {
  EXPECT_EQ(firstErrorOf(kHead + "  rules:\n    - syscall: opne\n"),
            "p.yaml:5:16: unknown syscall \"opne\" (did you mean \"open\"?)");
}

TEST_F(PolicyFiles, UnknownGroup) {
  std::string e = firstErrorOf(kHead + "  allow: [\"@python-everything\"]\n");
  EXPECT_EQ(e.rfind("p.yaml:4:11: unknown syscall group \"@python-everything\" (known: ", 0), 0u)
      << e;
}

TEST_F(PolicyFiles, UnknownErrnoName) {
  EXPECT_EQ(firstErrorOf("version: 1\nseccomp:\n  default_action: errno EPRM\n"),
            "p.yaml:3:19: unknown errno name \"EPRM\" in seccomp.default_action");
}

TEST_F(PolicyFiles, UnknownAction) {
  EXPECT_EQ(firstErrorOf(kHead + "  rules:\n    - {syscall: read, action: deny}\n"),
            "p.yaml:5:31: unknown action \"deny\" in a rule's action (use kill_process, errno "
            "NAME, log or allow)");
}

TEST_F(PolicyFiles, UnknownConstant) {
  EXPECT_EQ(
      firstErrorOf(
          kHead +
          "  rules:\n    - syscall: socket\n      args: [{index: 0, op: eq, value: AF_UNIKS}]\n"),
      "p.yaml:6:40: unknown constant \"AF_UNIKS\" in the condition's value");
}

TEST_F(PolicyFiles, BadArgumentIndex) {
  EXPECT_EQ(
      firstErrorOf(kHead + "  rules:\n    - syscall: socket\n      args: [{index: 6, value: 1}]\n"),
      "p.yaml:6:22: argument index must be 0 to 5, not \"6\"");
}

TEST_F(PolicyFiles, BadOperator) {
  EXPECT_EQ(firstErrorOf(
                kHead +
                "  rules:\n    - syscall: mmap\n      args: [{index: 1, op: approx, value: 1}]\n"),
            "p.yaml:6:29: unknown operator \"approx\" (use eq, ne, lt, le, gt, ge or masked_eq)");
}

TEST_F(PolicyFiles, OrderingOperatorOnA32BitArgumentIsRefused) {
  // ne on socket's int domain could be evaded with garbage in the upper half of the register.
  EXPECT_EQ(
      firstErrorOf(
          kHead +
          "  rules:\n    - syscall: socket\n      args: [{index: 0, op: ne, value: AF_INET}]\n"),
      "p.yaml:6:29: operator ne cannot be used on argument 0 of socket: it is a 32-bit int "
      "compared on its low 32 bits, which allows eq and masked_eq only");
}

TEST_F(PolicyFiles, MaskedEqNeedsAMask) {
  EXPECT_EQ(
      firstErrorOf(
          kHead +
          "  rules:\n    - syscall: clone\n      args: [{index: 0, op: masked_eq, value: 0}]\n"),
      "p.yaml:6:14: op masked_eq needs a mask");
}

TEST_F(PolicyFiles, SameArgumentComparedTwiceInOneRule) {
  EXPECT_EQ(firstErrorOf(kHead + "  rules:\n    - syscall: mmap\n      args: [{index: 2, value: "
                                 "1}, {index: 2, value: 3}]\n"),
            "p.yaml:6:36: argument 2 is compared twice in one rule (use masked_eq to test several "
            "bits)");
}

TEST_F(PolicyFiles, DuplicateRule) {
  EXPECT_EQ(firstErrorOf(kHead + "  rules:\n"
                                 "    - {syscall: socket, args: [{index: 0, value: AF_UNIX}]}\n"
                                 "    - {syscall: socket, args: [{index: 0, value: AF_UNIX}]}\n"),
            "p.yaml:6:17: duplicate rule for \"socket\" (first at p.yaml:5:17)");
}

TEST_F(PolicyFiles, ConflictingRuleWithTheSameConditions) {
  EXPECT_EQ(
      firstErrorOf(kHead +
                   "  rules:\n"
                   "    - {syscall: socket, args: [{index: 0, value: AF_UNIX}]}\n"
                   "    - {syscall: socket, action: errno EPERM, args: [{index: 0, value: 1}]}\n"),
      "p.yaml:6:17: conflicting rule for \"socket\": errno EPERM here but allow with the same "
      "conditions at p.yaml:5:17");
}

TEST_F(PolicyFiles, ConflictBetweenAllowListAndUnconditionalRule) {
  EXPECT_EQ(firstErrorOf(kHead + "  allow: [\"@python-subprocess\"]\n"
                                 "  rules:\n"
                                 "    - {syscall: vfork, action: errno EPERM}\n"),
            "p.yaml:6:17: conflicting rule: \"vfork\" is errno EPERM here but allow at p.yaml:4:11 "
            "(by @python-subprocess)");
}

TEST_F(PolicyFiles, ConditionalRuleShadowedByUnconditionalAllowIsAConflict) {
  EXPECT_EQ(
      firstErrorOf(
          kHead +
          "  allow: [socket]\n"
          "  rules:\n"
          "    - {syscall: socket, action: errno EPERM, args: [{index: 0, value: AF_INET}]}\n"),
      "p.yaml:6:17: conflicting rule: the conditional rule for \"socket\" would never apply, "
      "because \"socket\" is allow unconditionally at p.yaml:4:11");
}

TEST_F(PolicyFiles, DuplicateAllowEntry) {
  EXPECT_EQ(firstErrorOf(kHead + "  allow:\n    - read\n    - write\n    - read\n"),
            "p.yaml:7:7: duplicate entry \"read\" in seccomp.allow (first at p.yaml:5:7)");
}

TEST_F(PolicyFiles, DuplicateKey) {
  EXPECT_EQ(firstErrorOf(kHead + "limits:\n  memory: 1G\n  memory: 2G\n"),
            "p.yaml:6:3: duplicate key \"memory\" in limits (first at line 5)");
}

TEST_F(PolicyFiles, WrongTypes) {
  EXPECT_EQ(firstErrorOf(kHead + "limits:\n  cpu_seconds: ten\n"),
            "p.yaml:5:16: limits.cpu_seconds must be a whole number from 1 to 4294967295, not "
            "\"ten\"");
  EXPECT_EQ(firstErrorOf(kHead + "  allow: read\n"),
            "p.yaml:4:10: seccomp.allow must be a list of syscall names and @groups, not \"read\"");
  EXPECT_EQ(firstErrorOf(kHead + "limits: [1, 2]\n"),
            "p.yaml:4:9: limits must be a mapping, not a list");
  EXPECT_EQ(firstErrorOf(kHead + "network: internet\n"),
            "p.yaml:4:10: network must be none or loopback, not \"internet\"");
  EXPECT_EQ(firstErrorOf(kHead + "filesystem:\n  read_only: [usr/share]\n"),
            "p.yaml:5:15: an entry of filesystem.read_only must be an absolute path, not "
            "\"usr/share\"");
}

TEST_F(PolicyFiles, MissingDefaultActionPointsAtTheSeccompKey) {
  EXPECT_EQ(firstErrorOf("version: 1\nseccomp:\n  allow: [read]\n"),
            "p.yaml:2:1: seccomp.default_action is required (kill_process, errno NAME or log): a "
            "policy must say what happens to a system call it does not list");
  EXPECT_EQ(firstErrorOf("version: 1\nlimits: {memory: 1G}\n").substr(0, 51),
            "p.yaml:1:1: seccomp.default_action is required (kil");
}

TEST_F(PolicyFiles, DefaultActionAllowIsRefused) {
  EXPECT_EQ(firstErrorOf("version: 1\nseccomp:\n  default_action: allow\n"),
            "p.yaml:3:19: seccomp.default_action cannot be allow: that would permit every system "
            "call not listed (use log to learn what a program needs)");
}

TEST_F(PolicyFiles, MissingOrWrongVersion) {
  EXPECT_EQ(firstErrorOf("seccomp:\n  default_action: log\n"),
            "p.yaml:1:1: missing \"version: 1\" at the top of the policy");
  EXPECT_EQ(firstErrorOf("version: 2\nseccomp:\n  default_action: log\n"),
            "p.yaml:1:10: unsupported policy version \"2\" (this pyrun reads version 1)");
}

TEST_F(PolicyFiles, YamlSyntaxErrorHasAPosition) {
  std::string e = firstErrorOf("version: 1\nseccomp: [\n");
  EXPECT_EQ(e.rfind("p.yaml:3:1: YAML syntax: ", 0), 0u) << e;
}

TEST_F(PolicyFiles, ReportsEveryMistakeNotOnlyTheFirst) {
  auto errors = errorsOf(kHead + "  allow: [sokcet, raed]\nlimits:\n  memory: lots\n");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].substr(0, 11), "p.yaml:4:11");
  EXPECT_EQ(errors[1].substr(0, 11), "p.yaml:4:19");
  EXPECT_EQ(errors[2].substr(0, 11), "p.yaml:6:11");
}

// ---- what a valid policy means ----

TEST_F(PolicyFiles, ThirtyTwoBitEqualityIsComparedMasked) {
  Policy p = load(kHead +
                  "  rules:\n    - {syscall: socket, args: [{index: 0, value: AF_UNIX}]}\n"
                  "    - {syscall: mmap, args: [{index: 1, op: le, value: 4096}]}\n");
  ASSERT_EQ(p.seccomp.rules.size(), 2u);
  const ArgCondition& socket_domain = p.seccomp.rules[0].conditions.at(0);
  EXPECT_TRUE(socket_domain.is_32bit);
  EXPECT_EQ(socket_domain.op, CompareOp::kMaskedEq);
  EXPECT_EQ(socket_domain.mask, 0xffffffffu);
  EXPECT_EQ(socket_domain.value, 1u);
  const ArgCondition& mmap_length = p.seccomp.rules[1].conditions.at(0);
  EXPECT_FALSE(mmap_length.is_32bit);
  EXPECT_EQ(mmap_length.op, CompareOp::kLe);
  EXPECT_EQ(mmap_length.value, 4096u);
}

TEST_F(PolicyFiles, ConstantsCombineWithBars) {
  Policy p = load(kHead +
                  "  rules:\n    - syscall: clone\n      args:\n"
                  "        - {index: 0, op: masked_eq, mask: \"CLONE_NEWUSER | CLONE_NEWNS | "
                  "0x1\", value: 0}\n");
  EXPECT_EQ(p.seccomp.rules.at(0).conditions.at(0).mask,
            static_cast<uint64_t>(constantByName("CLONE_NEWUSER").value() |
                                  constantByName("CLONE_NEWNS").value() | 1));
}

TEST_F(PolicyFiles, UnlistedProbedSyscallsAnswerEnosysButListedOnesDoNot) {
  Policy p = load(kHead + "  allow: [clone3]\n");
  EXPECT_FALSE(answersEnosys(p, "clone3"));
  EXPECT_TRUE(answersEnosys(p, "faccessat2"));
  EXPECT_TRUE(answersEnosys(p, "io_uring_enter"));
  Policy with_uring = load(kHead + "  allow: [\"@io-uring\"]\n", "u.yaml");
  EXPECT_FALSE(answersEnosys(with_uring, "io_uring_setup"));
  EXPECT_TRUE(allows(with_uring, "io_uring_setup"));
}

TEST_F(PolicyFiles, BuiltInLimitsApplyWhenUnset) {
  Policy p = load(kHead + "limits:\n  memory: 1G\n");
  EXPECT_EQ(p.limits.memory_bytes, 1ull << 30);
  EXPECT_EQ(p.limits.cpu_seconds, Limits{}.cpu_seconds);
  EXPECT_EQ(p.limit_origins.count("memory"), 1u);
  EXPECT_EQ(p.limit_origins.count("cpu_seconds"), 0u);
}

// ---- includes and extending a base ----

TEST_F(PolicyFiles, IncludeIsRelativeToTheIncludingFileAndExtendsIt) {
  ASSERT_EQ(mkdir((dir_ / "base").c_str(), 0700), 0);
  write("base/common.yaml",
        "version: 1\nlimits:\n  memory: 256M\n  cpu_seconds: 3\n"
        "seccomp:\n  default_action: kill_process\n  allow: [read, write]\n"
        "  rules:\n    - {syscall: socket, args: [{index: 0, value: AF_UNIX}]}\n");
  write("base/entry.yaml", "version: 1\ninclude: [common.yaml]\n");
  Policy p = load(
      "version: 1\ninclude: [base/entry.yaml]\nlimits:\n  memory: 1G\n"
      "seccomp:\n  allow: [close]\n");
  EXPECT_TRUE(allows(p, "read"));   // from the base: extended, not replaced
  EXPECT_TRUE(allows(p, "close"));  // from this file
  EXPECT_EQ(p.seccomp.rules.size(), 1u);
  EXPECT_EQ(p.limits.memory_bytes, 1ull << 30);  // set here: overrides the base
  EXPECT_EQ(p.limits.cpu_seconds, 3u);           // only in the base
  EXPECT_EQ(p.limit_origins.at("cpu_seconds").file, dir_ / "base/common.yaml");
  EXPECT_EQ(p.files.size(), 3u);
}

TEST_F(PolicyFiles, ExtendingCannotReplaceTheBaseDefaultAction) {
  write("base.yaml", kHead);
  EXPECT_EQ(firstErrorOf("version: 1\ninclude: [base.yaml]\nseccomp:\n  default_action: log\n"),
            "p.yaml:4:19: default_action log conflicts with kill_process set at base.yaml:3:19");
}

TEST_F(PolicyFiles, ExtendingCannotTurnABaseAllowIntoADenial) {
  write("base.yaml", kHead + "  allow: [vfork]\n");
  EXPECT_EQ(firstErrorOf("version: 1\ninclude: [base.yaml]\nseccomp:\n  rules:\n"
                         "    - {syscall: vfork, action: errno EPERM}\n"),
            "p.yaml:5:17: conflicting rule: \"vfork\" is errno EPERM here but allow at "
            "base.yaml:4:11");
}

TEST_F(PolicyFiles, SharedBaseIncludedTwiceIsLoadedOnce) {
  write("base.yaml",
        kHead + "  rules:\n    - {syscall: socket, args: [{index: 0, value: AF_UNIX}]}\n");
  write("a.yaml", "version: 1\ninclude: [base.yaml]\n");
  write("b.yaml", "version: 1\ninclude: [base.yaml]\n");
  Policy p = load("version: 1\ninclude: [a.yaml, b.yaml]\n");
  EXPECT_EQ(p.seccomp.rules.size(), 1u);
}

TEST_F(PolicyFiles, IncludeLoopIsReportedWhereItCloses) {
  write("b.yaml", "version: 1\ninclude:\n  - a.yaml\n");
  auto errors = errorsOf("version: 1\ninclude: [b.yaml]\n", "a.yaml");
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0], "b.yaml:3:5: include loop: a.yaml includes b.yaml includes a.yaml");
}

TEST_F(PolicyFiles, SelfIncludeIsALoop) {
  EXPECT_EQ(firstErrorOf(kHead + "include: [p.yaml]\n"),
            "p.yaml:4:11: include loop: p.yaml includes p.yaml");
}

TEST_F(PolicyFiles, IncludeDepthIsLimited) {
  for (int i = 1; i <= kMaxIncludeDepth + 1; ++i) {
    write("l" + std::to_string(i) + ".yaml",
          "version: 1\ninclude: [l" + std::to_string(i + 1) + ".yaml]\n");
  }
  write("l" + std::to_string(kMaxIncludeDepth + 2) + ".yaml", kHead);
  auto errors = errorsOf("version: 1\ninclude: [l1.yaml]\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "l" + std::to_string(kMaxIncludeDepth) +
                           ".yaml:2:11: includes nest deeper than " +
                           std::to_string(kMaxIncludeDepth) + " files; flatten them");
  // One level less is fine.
  write("l" + std::to_string(kMaxIncludeDepth) + ".yaml", kHead);
  EXPECT_TRUE(errorsOf("version: 1\ninclude: [l1.yaml]\n").empty());
}

TEST_F(PolicyFiles, MissingIncludeIsReportedAtTheEntry) {
  std::string e = firstErrorOf(kHead + "include:\n  - nothere.yaml\n");
  EXPECT_EQ(e.rfind("p.yaml:5:5: cannot include \"nothere.yaml\": ", 0), 0u) << e;
}

// ---- text already in memory (the fuzzer's entry point) ----

TEST_F(PolicyFiles, TextInMemoryLoadsLikeTheFileAndResolvesIncludesBesideItsPath) {
  write("base.yaml", kHead + "  allow: [read]\n");
  Result<Policy> p = loadPolicyFromString(
      "version: 1\ninclude: [base.yaml]\nlimits:\n  memory: 1G\n", dir_ / "mem.yaml");
  ASSERT_TRUE(p) << p.error().detail();
  EXPECT_EQ(p->name, "mem");
  EXPECT_TRUE(allows(*p, "read"));
  EXPECT_EQ(p->limits.memory_bytes, 1ull << 30);
  EXPECT_EQ(p->limit_origins.at("memory").file, dir_ / "mem.yaml");
  // The in-memory text wins over a file of the same name, which is never read.
  write("mem.yaml", "this is not a policy");
  EXPECT_TRUE(loadPolicyFromString(kHead, dir_ / "mem.yaml"));
}

TEST_F(PolicyFiles, TextInMemoryReportsMistakesUnderItsPath) {
  Result<Policy> p = loadPolicyFromString(kHead + "limitz: {}\n", "/nowhere/mem.yaml");
  ASSERT_FALSE(p);
  EXPECT_TRUE(p.error().is(Errc::kPolicy));
  EXPECT_EQ(p.error().detail().rfind("/nowhere/mem.yaml:4:1: unknown key \"limitz\"", 0), 0u)
      << p.error().detail();
}

TEST_F(PolicyFiles, TextInMemoryWithAMissingIncludeIsACleanError) {
  LoadOutcome outcome =
      loadPolicyTextWithDiagnostics(kHead + "include: [gone.yaml]\n", "/nowhere/mem.yaml");
  EXPECT_FALSE(outcome.policy);
  ASSERT_EQ(outcome.diagnostics.size(), 1u);
  EXPECT_EQ(toString(outcome.diagnostics[0])
                .rfind("/nowhere/mem.yaml:4:11: cannot include \"/nowhere/gone.yaml\": ", 0),
            0u)
      << toString(outcome.diagnostics[0]);
}

TEST_F(PolicyFiles, TextInMemoryHasTheFileSizeLimit) {
  std::string huge = kHead + "# " + std::string(1u << 20, 'x') + "\n";
  Result<Policy> p = loadPolicyFromString(huge, "/nowhere/mem.yaml");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().detail().find("/nowhere/mem.yaml: larger than 1048576 bytes"),
            std::string::npos)
      << p.error().detail();
}

// ---- sizes ----

TEST(Sizes, AcceptsBytesAndBinarySuffixes) {
  EXPECT_EQ(parseSize("4096").value(), 4096u);
  EXPECT_EQ(parseSize("64K").value(), 64u << 10);
  EXPECT_EQ(parseSize("512M").value(), 512u << 20);
  EXPECT_EQ(parseSize("1G").value(), 1ull << 30);
  EXPECT_EQ(parseSize("2GiB").value(), 2ull << 30);
  EXPECT_EQ(parseSize("3MB").value(), 3u << 20);
  EXPECT_EQ(parseSize("1T").value(), 1ull << 40);
}

TEST(Sizes, RejectsJunkAndOverflow) {
  for (const char* bad : {"", "M", "1.5G", "-1", "12Q", "1Gx", " 1G", "1 G", "0x10"}) {
    EXPECT_FALSE(parseSize(bad)) << bad;
  }
  EXPECT_FALSE(parseSize("99999999999T"));
  EXPECT_FALSE(parseSize("99999999999999999999"));
}

TEST(Sizes, FormatsWholeUnits) {
  EXPECT_EQ(formatSize(512ull << 20), "512M");
  EXPECT_EQ(formatSize(1ull << 30), "1G");
  EXPECT_EQ(formatSize(1500), "1500");
}

TEST_F(PolicyFiles, ZeroAndBadSizesAreErrors) {
  EXPECT_EQ(firstErrorOf(kHead + "limits:\n  tmp: 0\n"),
            "p.yaml:5:8: limits.tmp must be larger than 0");
  EXPECT_EQ(firstErrorOf(kHead + "limits:\n  output: 10X\n"),
            "p.yaml:5:11: limits.output: \"10X\" is not a size (use bytes or a number with K, M, G "
            "or T, e.g. 512M)");
}

TEST_F(PolicyFiles, CpusAreCoresWithUpToThreeDecimals) {
  EXPECT_EQ(load(kHead).limits.cpu_millicores, 1000u);  // one core unless the policy says
  EXPECT_EQ(load(kHead + "limits:\n  cpus: 2\n").limits.cpu_millicores, 2000u);
  EXPECT_EQ(load(kHead + "limits:\n  cpus: 0.25\n").limits.cpu_millicores, 250u);
  EXPECT_EQ(load(kHead + "limits:\n  cpus: 1.5\n").limits.cpu_millicores, 1500u);
  EXPECT_EQ(firstErrorOf(kHead + "limits:\n  cpus: 0\n"),
            "p.yaml:5:9: limits.cpus must be a number of cores between 0.001 and 1024 (e.g. 1 or "
            "0.5), not \"0\"");
  EXPECT_EQ(firstErrorOf(kHead + "limits:\n  cpus: 0.0001\n"),
            "p.yaml:5:9: limits.cpus must be a number of cores between 0.001 and 1024 (e.g. 1 or "
            "0.5), not \"0.0001\"");
  EXPECT_NE(firstErrorOf(kHead + "limits:\n  cpus: lots\n"), "(no error)");
  EXPECT_NE(firstErrorOf(kHead + "limits:\n  cpus: 2000\n"), "(no error)");
  EXPECT_NE(firstErrorOf(kHead + "limits:\n  cpus: [1]\n"), "(no error)");
}

TEST_F(PolicyFiles, WorkdirFilesFollowTheWorkdirSizeUnlessSet) {
  Policy built_in = load(kHead);
  EXPECT_EQ(built_in.limits.workdir_bytes, 64ull << 20);
  EXPECT_EQ(built_in.limits.workdir_files, 4096u);
  // One file per 16K of the size, at least 64.
  EXPECT_EQ(load(kHead + "limits:\n  workdir: 8M\n").limits.workdir_files, 512u);
  EXPECT_EQ(load(kHead + "limits:\n  workdir: 256K\n").limits.workdir_files, 64u);
  Policy both = load(kHead + "limits:\n  workdir: 8M\n  workdir_files: 10\n");
  EXPECT_EQ(both.limits.workdir_bytes, 8ull << 20);
  EXPECT_EQ(both.limits.workdir_files, 10u);
  EXPECT_EQ(load(kHead + "limits:\n  workdir_files: 7\n").limits.workdir_files, 7u);
  // A count set by a base stays when the including file changes only the size.
  write("base.yaml", kHead + "limits:\n  workdir_files: 99\n");
  Policy child = load("version: 1\ninclude: [base.yaml]\nlimits:\n  workdir: 1G\n", "child.yaml");
  EXPECT_EQ(child.limits.workdir_files, 99u);
  EXPECT_EQ(firstErrorOf(kHead + "limits:\n  workdir: 0\n"),
            "p.yaml:5:12: limits.workdir must be larger than 0");
  EXPECT_NE(firstErrorOf(kHead + "limits:\n  workdir_files: 0\n"), "(no error)");
  EXPECT_NE(firstErrorOf(kHead + "limits:\n  workdir_files: 4294967296\n"), "(no error)");
  std::string text = describePolicy(load(kHead + "limits:\n  workdir: 8M\n"));
  EXPECT_NE(text.find("workdir:      8M ("), std::string::npos) << text;
  EXPECT_NE(text.find("workdir_files: 512 (1 per 16K of workdir)"), std::string::npos) << text;
}

// ---- names ----

TEST(Catalog, KnowsSyscallsOfOtherArchitectures) {
  EXPECT_TRUE(isKnownSyscall("socket"));
  EXPECT_TRUE(isKnownSyscall("socketcall"));  // x86 only
  EXPECT_FALSE(isKnownSyscall("sokcet"));
  EXPECT_EQ(suggestSyscall("sokcet").value_or(""), "socket");
  EXPECT_EQ(suggestSyscall("mmpa").value_or(""), "mmap");
}

TEST(Catalog, SuggestsAcrossLengthsButNotForLongJunk) {
  EXPECT_EQ(suggestSyscall("sockt").value_or(""), "socket");     // one letter short
  EXPECT_EQ(suggestSyscall("socketxx").value_or(""), "socket");  // two letters long
  EXPECT_FALSE(suggestSyscall("socketxxx"));                     // three is too far
  EXPECT_FALSE(suggestSyscall(std::string(100000, 'x')));
}

TEST(Catalog, GroupsNameOnlyKnownSyscalls) {
  for (const SyscallGroup& g : syscallGroups()) {
    for (std::string_view s : g.syscalls) EXPECT_TRUE(isKnownSyscall(s)) << g.name << ": " << s;
  }
  for (std::string_view s : enosysByDefault()) EXPECT_TRUE(isKnownSyscall(s)) << s;
}

TEST(Catalog, ErrnoAndConstantNames) {
  EXPECT_EQ(errnoByName("EPERM").value_or(0), 1);
  EXPECT_EQ(errnoByName("ENOSYS").value_or(0), 38);
  EXPECT_FALSE(errnoByName("EPRM"));
  EXPECT_EQ(errnoName(38), "ENOSYS");
  EXPECT_EQ(constantByName("AF_UNIX").value_or(0), 1u);
  EXPECT_TRUE(isArgument32Bit("socket", 0));
  EXPECT_FALSE(isArgument32Bit("clone", 0));
}

TEST_F(PolicyFiles, DescribeShowsLimitsOriginsGroupsAndRules) {
  Policy p = load(kHead +
                  "  allow: [\"@python-threads\", close]\n"
                  "  rules:\n    - {syscall: socket, args: [{index: 0, value: AF_UNIX}]}\n"
                  "limits:\n  memory: 1G\n");
  std::string text = describePolicy(p);
  EXPECT_NE(text.find("memory:       1G (" + dir_ / "p.yaml" + ":8:11)"), std::string::npos)
      << text;
  EXPECT_NE(text.find("cpu_seconds:  10 (built-in default)"), std::string::npos) << text;
  EXPECT_NE(text.find("@python-threads ("), std::string::npos) << text;
  EXPECT_NE(text.find("listed by name (1): close"), std::string::npos) << text;
  EXPECT_NE(text.find("socket if arg0 & 0xffffffff == 0x1 (low 32 bits) -> allow"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("clone3"), std::string::npos) << text;
}

// ---- the interpreter must be in the job's root ----

// A venv's bin/python3 is a link to the system interpreter: the venv (where the link is) must be
// in the job's root, and the fix is named.
TEST_F(PolicyFiles, VenvInterpreterWithoutItsDirectoryIsRefusedWithTheFix) {
  const std::string venv = dir_ / "venv";
  ASSERT_EQ(::mkdir(venv.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((venv + "/bin").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("/usr/bin/python3", (venv + "/bin/python3").c_str()), 0);
  EXPECT_EQ(firstErrorOf(kHead + "interpreter: " + venv + "/bin/python3\n"),
            "p.yaml:4:14: interpreter venv/bin/python3, which is not in the job's root (it holds "
            "/usr, /bin, /sbin, /lib*, a few /etc files and the policy's filesystem paths): add "
            "it, e.g. filesystem: {read_only: [venv]}");
  Policy p = load(kHead + "interpreter: " + venv + "/bin/python3\nfilesystem:\n  read_only: [" +
                  venv + "]\n");
  EXPECT_EQ(p.interpreter, venv + "/bin/python3");
}

// The link and what it leads to must both be there: a link into a directory the job does not see
// is refused, naming the target and the link.
TEST_F(PolicyFiles, InterpreterLinkToAPathOutsideTheJobRootIsRefused) {
  const std::string venv = dir_ / "venv", other = dir_ / "other";
  ASSERT_EQ(::mkdir(venv.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(other.c_str(), 0755), 0);
  writeFile(other + "/python3.11", "#!/bin/sh\n", 0755);
  ASSERT_EQ(::symlink("python3.11", (venv + "/python3").c_str()), 0);
  ASSERT_EQ(::symlink((other + "/python3.11").c_str(), (venv + "/python3.11").c_str()), 0);
  EXPECT_EQ(firstErrorOf(kHead + "interpreter: " + venv + "/python3\nfilesystem:\n  read_only: [" +
                         venv + "]\n"),
            "p.yaml:4:14: interpreter venv/python3 leads to other/python3.11 (through the link "
            "venv/python3.11), which is not in the job's root (it holds /usr, /bin, /sbin, /lib*, "
            "a few /etc files and the policy's filesystem paths): add it, e.g. filesystem: "
            "{read_only: [other]}");
  load(kHead + "interpreter: " + venv + "/python3\nfilesystem:\n  read_only: [" + venv + ", " +
       other + "]\n");
}

// The check applies to the policy as a whole: an interpreter from an included base and the path
// that makes it reachable from the including file.
TEST_F(PolicyFiles, InterpreterOfABaseIsCheckedWithTheWholePolicysPaths) {
  write("base.yaml", kHead + "interpreter: /opt/pyrun-no-such-venv/bin/python3\n");
  EXPECT_EQ(firstErrorOf("version: 1\ninclude: [base.yaml]\n"),
            "base.yaml:4:14: interpreter /opt/pyrun-no-such-venv/bin/python3, which is not in the "
            "job's root (it holds /usr, /bin, /sbin, /lib*, a few /etc files and the policy's "
            "filesystem paths): add it, e.g. filesystem: {read_only: [/opt/pyrun-no-such-venv]}");
  load("version: 1\ninclude: [base.yaml]\nfilesystem:\n  read_only: [/opt/pyrun-no-such-venv]\n");
}

// Under /usr the root holds whatever the host has; a missing file there is execve's to report.
TEST_F(PolicyFiles, InterpretersUnderTheSystemPathsPass) {
  EXPECT_EQ(load(kHead).interpreter, "/usr/bin/python3");
  load(kHead + "interpreter: /usr/bin/pyrun-no-such-python3\n");
  load(kHead + "interpreter: /bin/sh\n");
}

}  // namespace
}  // namespace pyrun::policy
