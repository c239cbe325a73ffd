// The session's decisions on decoded frames: states, limits, output cap, verdicts.
#include "server/session_rules.h"

#include <gtest/gtest.h>

#include <csignal>

namespace pyrun::server {
namespace {

using proto::ErrorCode;
using proto::FrameType;
using proto::ServerState;

proto::Frame frameOf(const std::vector<uint8_t>& whole) {
  return {static_cast<FrameType>(whole[0]),
          std::vector<uint8_t>(whole.begin() + proto::kFrameHeaderSize, whole.end())};
}

proto::RunRequest hello() {
  proto::RunRequest r;
  r.script_name = "hello.py";
  r.script = "print('hi')\n";
  r.args = {"a", "b"};
  return r;
}

ErrorCode errorCodeOf(const ClientEvent& e) {
  auto* error = std::get_if<proto::ErrorMessage>(&e);
  EXPECT_NE(error, nullptr);
  return error ? error->code : ErrorCode::kInternal;
}

TEST(SessionRules, TerminalBeforeRunAndWindowWhileQueuedOrRunning) {
  proto::Terminal t{proto::WindowSize{30, 100}, "screen-256color"};
  auto e = interpretFrame(ServerState::kAwaitRun, frameOf(proto::encode(t)), policy::Limits{});
  auto* terminal = std::get_if<TerminalRequest>(&e);
  ASSERT_NE(terminal, nullptr);
  EXPECT_EQ(terminal->terminal, t);
  for (auto state : {ServerState::kQueued, ServerState::kRunning}) {
    auto w =
        interpretFrame(state, frameOf(proto::encode(proto::WindowSize{40, 120})), policy::Limits{});
    auto* window = std::get_if<WindowChange>(&w);
    ASSERT_NE(window, nullptr);
    EXPECT_EQ(window->size, (proto::WindowSize{40, 120}));
  }
  // TERMINAL once the job is queued, WINDOW before RUN: unexpected.
  EXPECT_EQ(errorCodeOf(
                interpretFrame(ServerState::kRunning, frameOf(proto::encode(t)), policy::Limits{})),
            ErrorCode::kUnexpectedFrame);
  EXPECT_EQ(errorCodeOf(interpretFrame(ServerState::kAwaitRun,
                                       frameOf(proto::encode(proto::WindowSize{1, 1})),
                                       policy::Limits{})),
            ErrorCode::kUnexpectedFrame);
}

TEST(SessionRules, TerminalWithUnknownTermOrZeroSizeIsABadRequest) {
  auto bad_term =
      interpretFrame(ServerState::kAwaitRun,
                     frameOf(proto::encode(proto::Terminal{proto::WindowSize{}, "xterm\x1b[2J"})),
                     policy::Limits{});
  EXPECT_EQ(errorCodeOf(bad_term), ErrorCode::kBadRequest);
  auto zero = interpretFrame(ServerState::kRunning,
                             frameOf(proto::encode(proto::WindowSize{0, 80})), policy::Limits{});
  EXPECT_EQ(errorCodeOf(zero), ErrorCode::kBadRequest);
}

TEST(SessionRules, RunInAwaitRunIsAcceptedWithThePolicyLimitsFilledIn) {
  policy::Limits limits;
  auto e = interpretFrame(ServerState::kAwaitRun, frameOf(proto::encode(hello())), limits);
  auto* run = std::get_if<RunAccepted>(&e);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->request, hello());
  EXPECT_EQ(run->limits.cpu_seconds, 10u);
  EXPECT_EQ(run->limits.wall_seconds, 60u);
  EXPECT_EQ(run->limits.memory_bytes, 512ull << 20);
  EXPECT_EQ(run->limits.output_bytes, 16ull << 20);
}

TEST(SessionRules, RequestedLimitsBelowTheServersAreKept) {
  policy::Limits limits;
  auto req = hello();
  req.limits.wall_seconds = 5;
  req.limits.output_bytes = 100;
  auto e = interpretFrame(ServerState::kAwaitRun, frameOf(proto::encode(req)), limits);
  auto* run = std::get_if<RunAccepted>(&e);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->limits.wall_seconds, 5u);
  EXPECT_EQ(run->limits.output_bytes, 100u);
  EXPECT_EQ(run->limits.cpu_seconds, 10u);
}

TEST(SessionRules, RequestedLimitAboveTheServersIsRefusedNotLowered) {
  policy::Limits limits;
  auto req = hello();
  req.limits.wall_seconds = 120;
  auto e = interpretFrame(ServerState::kAwaitRun, frameOf(proto::encode(req)), limits);
  ASSERT_EQ(errorCodeOf(e), ErrorCode::kLimitTooHigh);
  EXPECT_EQ(std::get<proto::ErrorMessage>(e).message,
            "requested wall_seconds 120 is above the server's limit of 60");
  for (int field = 0; field < 4; ++field) {
    proto::Limits l;
    if (field == 0) l.cpu_seconds = 11;
    if (field == 1) l.memory_bytes = (512ull << 20) + 1;
    if (field == 2) l.output_bytes = (16ull << 20) + 1;
    if (field == 3) l.wall_seconds = 61;
    EXPECT_FALSE(limitsInForce(l, limits).has_value()) << field;
  }
}

TEST(SessionRules, InvalidRunIsABadRequest) {
  auto req = hello();
  req.script_name = "../evil.py";
  auto e = interpretFrame(ServerState::kAwaitRun, frameOf(proto::encode(req)), policy::Limits{});
  EXPECT_EQ(errorCodeOf(e), ErrorCode::kBadRequest);
}

TEST(SessionRules, UndecodableRunIsABadFrame) {
  auto whole = proto::encode(hello());
  proto::Frame f = frameOf(whole);
  f.payload.resize(f.payload.size() - 3);
  auto e = interpretFrame(ServerState::kAwaitRun, f, policy::Limits{});
  EXPECT_EQ(errorCodeOf(e), ErrorCode::kBadFrame);
}

TEST(SessionRules, FramesNotAllowedInTheStateAreUnexpected) {
  policy::Limits limits;
  auto run = frameOf(proto::encode(hello()));
  auto stdin_frame = frameOf(proto::encodeData(FrameType::kStdin, std::vector<uint8_t>{'x'}));
  auto cancel = frameOf(proto::encodeEmpty(FrameType::kCancel));
  auto ready = frameOf(proto::encode(proto::Ready{}));
  EXPECT_EQ(errorCodeOf(interpretFrame(ServerState::kAwaitRun, stdin_frame, limits)),
            ErrorCode::kUnexpectedFrame);
  EXPECT_EQ(errorCodeOf(interpretFrame(ServerState::kAwaitRun, cancel, limits)),
            ErrorCode::kUnexpectedFrame);
  EXPECT_EQ(errorCodeOf(interpretFrame(ServerState::kQueued, stdin_frame, limits)),
            ErrorCode::kUnexpectedFrame);
  EXPECT_EQ(errorCodeOf(interpretFrame(ServerState::kRunning, run, limits)),
            ErrorCode::kUnexpectedFrame);
  EXPECT_EQ(errorCodeOf(interpretFrame(ServerState::kRunning, ready, limits)),
            ErrorCode::kUnexpectedFrame);
  EXPECT_EQ(errorCodeOf(interpretFrame(ServerState::kDone, cancel, limits)),
            ErrorCode::kUnexpectedFrame);
  auto e = interpretFrame(ServerState::kRunning, run, limits);
  EXPECT_NE(std::get<proto::ErrorMessage>(e).message.find("RUN"), std::string::npos);
}

TEST(SessionRules, RunningAcceptsStdinEndSignalAndCancel) {
  policy::Limits limits;
  auto data = interpretFrame(
      ServerState::kRunning,
      frameOf(proto::encodeData(FrameType::kStdin, std::vector<uint8_t>{'h', 'i'})), limits);
  ASSERT_TRUE(std::holds_alternative<StdinData>(data));
  EXPECT_EQ(std::get<StdinData>(data).bytes, (std::vector<uint8_t>{'h', 'i'}));
  EXPECT_TRUE(std::holds_alternative<StdinEnd>(interpretFrame(
      ServerState::kRunning, frameOf(proto::encodeEmpty(FrameType::kStdinEnd)), limits)));
  auto sig =
      interpretFrame(ServerState::kRunning,
                     frameOf(proto::encode(proto::Signal{static_cast<uint8_t>(SIGINT)})), limits);
  ASSERT_TRUE(std::holds_alternative<SignalRequest>(sig));
  EXPECT_EQ(std::get<SignalRequest>(sig).signal, SIGINT);
  EXPECT_TRUE(std::holds_alternative<CancelRequest>(interpretFrame(
      ServerState::kRunning, frameOf(proto::encodeEmpty(FrameType::kCancel)), limits)));
}

TEST(SessionRules, QueuedAcceptsSignalAndCancel) {
  policy::Limits limits;
  EXPECT_TRUE(std::holds_alternative<SignalRequest>(
      interpretFrame(ServerState::kQueued,
                     frameOf(proto::encode(proto::Signal{static_cast<uint8_t>(SIGINT)})), limits)));
  EXPECT_TRUE(std::holds_alternative<CancelRequest>(interpretFrame(
      ServerState::kQueued, frameOf(proto::encodeEmpty(FrameType::kCancel)), limits)));
}

TEST(SessionRules, ForbiddenSignalIsRefused) {
  proto::Frame f{FrameType::kSignal, {static_cast<uint8_t>(SIGSEGV)}};
  auto e = interpretFrame(ServerState::kRunning, f, policy::Limits{});
  ASSERT_TRUE(std::holds_alternative<proto::ErrorMessage>(e));
  EXPECT_FALSE(clientMaySend(SIGSEGV));
  EXPECT_FALSE(clientMaySend(SIGSTOP));
  EXPECT_TRUE(clientMaySend(SIGINT));
  EXPECT_TRUE(clientMaySend(SIGKILL));
}

TEST(SessionRules, JobSpecCarriesRequestAndAllLimits) {
  policy::Limits limits;
  limits.file_size_bytes = 77;
  limits.open_files = 33;
  limits.processes = 5;
  auto req = hello();
  req.files.push_back({"data/in.txt", 0600, "xyz"});
  RunAccepted run{req, *limitsInForce(proto::Limits{3, 4, 1000, 2000}, limits)};
  auto spec = makeJobSpec(42, run, limits, "strict", "/opt/python/bin/python3");
  EXPECT_EQ(spec.job_id, 42u);
  EXPECT_EQ(spec.policy, "strict");
  EXPECT_EQ(spec.interpreter, "/opt/python/bin/python3");
  EXPECT_EQ(spec.script_name, "hello.py");
  EXPECT_EQ(spec.script, req.script);
  EXPECT_EQ(spec.args, req.args);
  ASSERT_EQ(spec.files.size(), 1u);
  EXPECT_EQ(spec.files[0].name, "data/in.txt");
  EXPECT_EQ(spec.files[0].mode, 0600u);
  EXPECT_EQ(spec.files[0].data, "xyz");
  EXPECT_EQ(spec.limits.cpu_seconds, 3u);
  EXPECT_EQ(spec.limits.wall_seconds, 4u);
  EXPECT_EQ(spec.limits.memory_bytes, 1000u);
  EXPECT_EQ(spec.limits.file_size_bytes, 77u);
  EXPECT_EQ(spec.limits.open_files, 33u);
  EXPECT_EQ(spec.limits.processes, 5u);
}

TEST(OutputBudget, DeliversExactlyUpToTheCap) {
  OutputBudget b(10);
  EXPECT_EQ(b.take(4), 4u);
  EXPECT_FALSE(b.truncated());
  EXPECT_EQ(b.take(6), 6u);  // exactly at the cap: nothing cut yet
  EXPECT_FALSE(b.truncated());
  EXPECT_EQ(b.take(1), 0u);
  EXPECT_TRUE(b.truncated());
  EXPECT_EQ(b.used(), 10u);
}

TEST(OutputBudget, CutsTheChunkThatCrossesTheCap) {
  OutputBudget b(10);
  EXPECT_EQ(b.take(7), 7u);
  EXPECT_EQ(b.take(7), 3u);
  EXPECT_TRUE(b.truncated());
  EXPECT_EQ(b.take(0), 0u);
  EXPECT_TRUE(b.truncated());
}

TEST(Verdicts, SpawnerCauseWinsForLimitsItEnforces) {
  using proto::Verdict;
  using sandbox::EndCause;
  EXPECT_EQ(finalVerdict(EndCause::kCpuLimit, Verdict::kOk), Verdict::kCpuLimit);
  EXPECT_EQ(finalVerdict(EndCause::kMemoryLimit, Verdict::kOk), Verdict::kMemoryLimit);
  EXPECT_EQ(finalVerdict(EndCause::kFileSizeLimit, Verdict::kOk), Verdict::kFileSizeLimit);
  EXPECT_EQ(finalVerdict(EndCause::kExited, Verdict::kOk), Verdict::kOk);
  EXPECT_EQ(finalVerdict(EndCause::kKilled, Verdict::kWallLimit), Verdict::kWallLimit);
  EXPECT_EQ(finalVerdict(EndCause::kKilled, Verdict::kOutputLimit), Verdict::kOutputLimit);
  EXPECT_EQ(finalVerdict(EndCause::kExited, Verdict::kCancelled), Verdict::kCancelled);
}

TEST(SessionRules, UnknownEndCauseIsNeverASuccess) {
  // A cause value from a newer spawner that this front does not know.
  auto unknown = static_cast<sandbox::EndCause>(200);
  EXPECT_EQ(finalVerdict(unknown, proto::Verdict::kOk), proto::Verdict::kInternalError);
  EXPECT_EQ(finalVerdict(unknown, proto::Verdict::kWallLimit), proto::Verdict::kWallLimit);
}

TEST(SessionRules, SandboxCausesBecomeTheirVerdicts) {
  EXPECT_EQ(finalVerdict(sandbox::EndCause::kSyscall, proto::Verdict::kOk),
            proto::Verdict::kSyscall);
  EXPECT_EQ(finalVerdict(sandbox::EndCause::kProcessLimit, proto::Verdict::kOk),
            proto::Verdict::kProcessLimit);
  sandbox::JobEnded end;
  end.cause = sandbox::EndCause::kSyscall;
  end.detail = "socket";
  end.syscall_named = true;
  EXPECT_EQ(endDetail(end).text, "socket");
  EXPECT_TRUE(endDetail(end).names_the_call);
  proto::Limits l{10, 60, 512ull << 20, 64ull << 20};
  EXPECT_EQ(proto::verdictSentence(finalVerdict(end.cause, proto::Verdict::kOk), l, endDetail(end)),
            "forbidden system call: socket");
}

TEST(SessionRules, ForbiddenSyscallDetailNamesTheCall) {
  proto::Limits l{10, 60, 512ull << 20, 64ull << 20};
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kSyscall, l, {"socket", true}),
            "forbidden system call: socket");
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kSyscall, l),
            "the program made a forbidden system call");
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kProcessLimit, l), "process limit exceeded");
}

// A call the spawner could not name: its sentence is said once, never as "forbidden system call:
// forbidden system call (name unknown: ...)". The flag decides, not the text.
TEST(SessionRules, UnnamedForbiddenSyscallReadsAsTheSpawnersSentence) {
  proto::Limits l{10, 60, 512ull << 20, 64ull << 20};
  sandbox::JobEnded end;
  end.cause = sandbox::EndCause::kSyscall;
  end.detail = "forbidden system call (name unknown: no audit source)";
  end.syscall_named = false;
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kSyscall, l, endDetail(end)),
            "forbidden system call (name unknown: no audit source)");
  // A call whose name happens to contain the word is still a name.
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kSyscall, l, {"forbidden", true}),
            "forbidden system call: forbidden");
}

TEST(Verdicts, DetailsAreSentences) {
  proto::Limits l{10, 60, 512ull << 20, 64ull << 20};
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kWallLimit, l),
            "wall-clock limit of 60 s exceeded");
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kCpuLimit, l),
            "CPU time limit of 10 s exceeded");
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kMemoryLimit, l),
            "memory limit of 512 MiB exceeded");
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kOutputLimit, l),
            "output limit of 64 MiB reached; output truncated and the job killed");
  EXPECT_EQ(proto::verdictSentence(proto::Verdict::kOk, l), "");
  EXPECT_EQ(humanBytes(1000), "1000 bytes");
  EXPECT_EQ(humanBytes(64 << 10), "64 KiB");
  EXPECT_EQ(humanBytes(2ull << 30), "2 GiB");
}

JobEndRecord revokedRecord() {
  JobEndRecord r;
  r.peer = "127.0.0.1:5000";
  r.identity = "alice";
  r.job_id = 7;
  r.script = "job.py";
  r.policy = "default";
  r.front_verdict = proto::Verdict::kCancelled;
  r.detail = "certificate revoked";
  r.limits.memory_bytes = 512ull << 20;
  return r;
}

TEST(JobEnd, FrontSentenceGoesOnlyWithTheFrontsVerdict) {
  sandbox::JobEnded killed;
  killed.signaled = true;
  killed.code = SIGKILL;
  killed.cause = sandbox::EndCause::kKilled;
  Ending e = endingOf(revokedRecord(), killed);
  EXPECT_EQ(e.verdict, proto::Verdict::kCancelled);
  EXPECT_EQ(e.detail, "certificate revoked");
  // The memory cgroup got there first: its verdict, its sentence.
  sandbox::JobEnded oom = killed;
  oom.cause = sandbox::EndCause::kMemoryLimit;
  e = endingOf(revokedRecord(), oom);
  EXPECT_EQ(e.verdict, proto::Verdict::kMemoryLimit);
  EXPECT_EQ(e.detail, "memory limit of 512 MiB exceeded");
  // Nothing imposed by the front: a stray sentence is not used.
  JobEndRecord plain = revokedRecord();
  plain.front_verdict = proto::Verdict::kOk;
  e = endingOf(plain, sandbox::JobEnded{});
  EXPECT_EQ(e.verdict, proto::Verdict::kOk);
  EXPECT_EQ(e.detail, "");
}

TEST(JobEnd, LinesSayHowTheJobEnded) {
  sandbox::JobEnded killed;
  killed.signaled = true;
  killed.code = SIGKILL;
  killed.cause = sandbox::EndCause::kKilled;
  std::string line = jobEndLine(revokedRecord(), killed).text();
  EXPECT_NE(line.find("\"event\":\"job_end\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"identity\":\"alice\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"job_id\":7,"), std::string::npos) << line;
  EXPECT_NE(line.find("\"verdict\":\"cancelled\",\"detail\":\"certificate revoked\",\"signal\":9"),
            std::string::npos)
      << line;
  sandbox::JobFailed failed;
  failed.stage = "execve";
  failed.detail = "no interpreter";
  line = jobFailedLine(revokedRecord(), failed).text();
  EXPECT_NE(line.find("\"verdict\":\"internal-error\",\"detail\":\"execve: no interpreter\""),
            std::string::npos)
      << line;
  EXPECT_EQ(line.find("exit_code"), std::string::npos) << line;
  line = jobUnreportedLine(revokedRecord(), proto::Verdict::kServerShutdown, "gone").text();
  EXPECT_NE(line.find("\"verdict\":\"server-shutdown\",\"detail\":\"gone\""), std::string::npos)
      << line;
  EXPECT_EQ(line.find("signal"), std::string::npos) << line;
}

}  // namespace
}  // namespace pyrun::server
