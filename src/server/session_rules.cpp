// Session decisions over decoded frames (see session_rules.h).
#include "server/session_rules.h"

#include <csignal>

namespace pyrun::server {
namespace {

proto::ErrorMessage errorFrom(proto::ErrorCode code, const Error& e) { return {code, e.detail()}; }

template <class T>
Result<void> checkLimit(T requested, T configured, const char* name, T& out) {
  if (requested == 0) {
    out = configured;
    return {};
  }
  if (requested > configured) {
    return Error(Errc::kLimit, std::string("requested ") + name + " " + std::to_string(requested) +
                                   " is above the server's limit of " + std::to_string(configured));
  }
  out = requested;
  return {};
}

}  // namespace

Result<proto::Limits> limitsInForce(const proto::Limits& requested, const policy::Limits& limits) {
  proto::Limits out;
  if (auto r =
          checkLimit(requested.cpu_seconds, limits.cpu_seconds, "cpu_seconds", out.cpu_seconds);
      !r)
    return r.error();
  if (auto r =
          checkLimit(requested.wall_seconds, limits.wall_seconds, "wall_seconds", out.wall_seconds);
      !r)
    return r.error();
  if (auto r =
          checkLimit(requested.memory_bytes, limits.memory_bytes, "memory_bytes", out.memory_bytes);
      !r)
    return r.error();
  if (auto r =
          checkLimit(requested.output_bytes, limits.output_bytes, "output_bytes", out.output_bytes);
      !r)
    return r.error();
  return out;
}

bool clientMaySend(int signal) noexcept {
  switch (signal) {
    case SIGINT:
    case SIGTERM:
    case SIGKILL:
    case SIGHUP:
    case SIGQUIT:
    case SIGUSR1:
    case SIGUSR2:
      return true;
    default:
      return false;
  }
}

ClientEvent interpretFrame(proto::ServerState state, proto::Frame frame,
                           const policy::Limits& limits) {
  if (!proto::serverAccepts(state, frame.type)) {
    return proto::ErrorMessage{
        proto::ErrorCode::kUnexpectedFrame,
        proto::frameTypeName(static_cast<uint8_t>(frame.type)) + " is not allowed in this state"};
  }
  switch (frame.type) {
    case proto::FrameType::kRun: {
      auto run = proto::decodeRunRequest(frame.payload);
      if (!run) return errorFrom(proto::ErrorCode::kBadFrame, run.error());
      if (auto ok = proto::validateRunRequest(*run); !ok) {
        return errorFrom(proto::ErrorCode::kBadRequest, ok.error());
      }
      auto in_force = limitsInForce(run->limits, limits);
      if (!in_force) return errorFrom(proto::ErrorCode::kLimitTooHigh, in_force.error());
      return RunAccepted{std::move(*run), *in_force};
    }
    case proto::FrameType::kStdin:
      return StdinData{std::move(frame.payload)};
    case proto::FrameType::kStdinEnd:
      return StdinEnd{};
    case proto::FrameType::kSignal: {
      auto sig = proto::decodeSignal(frame.payload);
      if (!sig) return errorFrom(proto::ErrorCode::kBadFrame, sig.error());
      if (!clientMaySend(sig->signal)) {
        return proto::ErrorMessage{
            proto::ErrorCode::kBadRequest,
            "SIGNAL: signal " + std::to_string(sig->signal) + " is not one a client may send"};
      }
      return SignalRequest{sig->signal};
    }
    case proto::FrameType::kCancel:
      return CancelRequest{};
    case proto::FrameType::kFile: {
      auto file = proto::decodeFileHeader(frame.payload);
      if (!file) return errorFrom(proto::ErrorCode::kBadFrame, file.error());
      if (auto ok = proto::validateFileName(file->name, file->mode); !ok) {
        return errorFrom(proto::ErrorCode::kBadRequest, ok.error());
      }
      return FileBegin{std::move(*file)};
    }
    case proto::FrameType::kFileData:
      return FileData{std::move(frame.payload)};
    case proto::FrameType::kGet: {
      auto get = proto::decodeGet(frame.payload);
      if (!get) return errorFrom(proto::ErrorCode::kBadRequest, get.error());
      return GetRequest{std::move(*get)};
    }
    case proto::FrameType::kTerminal: {
      auto terminal = proto::decodeTerminal(frame.payload);
      if (!terminal) return errorFrom(proto::ErrorCode::kBadRequest, terminal.error());
      return TerminalRequest{std::move(*terminal)};
    }
    case proto::FrameType::kWindow: {
      auto size = proto::decodeWindow(frame.payload);
      if (!size) return errorFrom(proto::ErrorCode::kBadRequest, size.error());
      return WindowChange{*size};
    }
    default:
      // serverAccepts() never admits server-to-client types; this keeps the switch total.
      return proto::ErrorMessage{
          proto::ErrorCode::kUnexpectedFrame,
          proto::frameTypeName(static_cast<uint8_t>(frame.type)) + " is not a client frame"};
  }
}

sandbox::JobSpec makeJobSpec(uint64_t job_id, const RunAccepted& run, const policy::Limits& limits,
                             const std::string& policy_name, const std::string& interpreter) {
  sandbox::JobSpec spec;
  spec.job_id = job_id;
  spec.policy = policy_name;
  spec.interpreter = interpreter;
  spec.script_name = run.request.script_name;
  spec.script = run.request.script;
  spec.args = run.request.args;
  for (const auto& f : run.request.files) spec.files.push_back({f.name, f.mode, f.data});
  // The policy's limits, with the ones a RUN may lower as they are in force.
  spec.limits = sandbox::jobLimitsOf(limits);
  spec.limits.cpu_seconds = run.limits.cpu_seconds;
  spec.limits.wall_seconds = run.limits.wall_seconds;
  spec.limits.memory_bytes = run.limits.memory_bytes;
  return spec;
}

size_t OutputBudget::take(size_t n) noexcept {
  uint64_t left = cap_ - used_;
  size_t allowed = n <= left ? n : static_cast<size_t>(left);
  used_ += allowed;
  if (allowed < n) truncated_ = true;
  return allowed;
}

proto::Verdict finalVerdict(sandbox::EndCause cause, proto::Verdict front_verdict) noexcept {
  using sandbox::EndCause;
  switch (cause) {
    case EndCause::kExited:
    case EndCause::kKilled:
      // A job may exit by itself between the front's decision and the kill arriving; the front's
      // verdict still explains the ending the client sees (cut output, a cancel, a timeout).
      return front_verdict;
    case EndCause::kCpuLimit:
      return proto::Verdict::kCpuLimit;
    case EndCause::kMemoryLimit:
      return proto::Verdict::kMemoryLimit;
    case EndCause::kFileSizeLimit:
      return proto::Verdict::kFileSizeLimit;
    case EndCause::kSyscall:
      return proto::Verdict::kSyscall;
    case EndCause::kProcessLimit:
      return proto::Verdict::kProcessLimit;
  }
  // A value outside the enum (the codec checks, but never report it as a success).
  return front_verdict != proto::Verdict::kOk ? front_verdict : proto::Verdict::kInternalError;
}

CauseDetail endDetail(const sandbox::JobEnded& end) { return {end.detail, end.syscall_named}; }

Ending endingOf(const JobEndRecord& record, const sandbox::JobEnded& end) {
  Ending e;
  e.verdict = finalVerdict(end.cause, record.front_verdict);
  // The front's own sentence only explains the front's own verdict: a job that hit its memory
  // limit while being cancelled says "memory limit", not "certificate revoked".
  const bool front_explains =
      record.front_verdict != proto::Verdict::kOk && e.verdict == record.front_verdict;
  e.detail = !record.detail.empty() && front_explains
                 ? record.detail
                 : proto::verdictSentence(e.verdict, record.limits, endDetail(end));
  return e;
}

namespace {

AuditLine jobEndBase(const JobEndRecord& r) {
  AuditLine line("job_end");
  line.str("peer", r.peer);
  if (!r.proxy.empty()) line.str("proxy", r.proxy);
  if (!r.identity.empty()) {
    line.str("identity", r.identity).str("serial", r.serial).str("fingerprint", r.fingerprint);
  }
  line.num("job_id", r.job_id)
      .str("script", r.script)
      .str("script_sha256", r.script_sha256)
      .str("policy", r.policy);
  return line;
}

}  // namespace

AuditLine jobEndLine(const JobEndRecord& record, const sandbox::JobEnded& end) {
  Ending ending = endingOf(record, end);
  AuditLine line = jobEndBase(record);
  line.str("verdict", proto::verdictName(ending.verdict));
  if (!ending.detail.empty()) line.str("detail", ending.detail);
  if (end.signaled) {
    line.sint("signal", end.code);
  } else {
    line.sint("exit_code", end.code);
  }
  line.num("cpu_us", end.cpu_us)
      .num("wall_us", end.wall_us)
      .num("peak_memory_bytes", end.peak_memory_bytes)
      .num("stdout_bytes", record.stdout_bytes)
      .num("stderr_bytes", record.stderr_bytes)
      .num("bytes_in", record.bytes_in)
      .num("bytes_out", record.bytes_out);
  return line;
}

AuditLine jobFailedLine(const JobEndRecord& record, const sandbox::JobFailed& failed) {
  AuditLine line = jobEndBase(record);
  line.str("verdict", proto::verdictName(proto::Verdict::kInternalError))
      .str("detail", failed.stage + ": " + failed.detail)
      .num("bytes_in", record.bytes_in)
      .num("bytes_out", record.bytes_out);
  return line;
}

AuditLine jobUnreportedLine(const JobEndRecord& record, proto::Verdict verdict,
                            const std::string& detail) {
  AuditLine line = jobEndBase(record);
  line.str("verdict", proto::verdictName(verdict))
      .str("detail", detail)
      .num("stdout_bytes", record.stdout_bytes)
      .num("stderr_bytes", record.stderr_bytes)
      .num("bytes_in", record.bytes_in)
      .num("bytes_out", record.bytes_out);
  return line;
}

proto::Verdict verdictForError(proto::ErrorCode code) noexcept {
  switch (code) {
    case proto::ErrorCode::kBadFrame:
    case proto::ErrorCode::kUnexpectedFrame:
    case proto::ErrorCode::kBadRequest:
      return proto::Verdict::kProtocolError;
    default:
      return proto::Verdict::kInternalError;
  }
}

}  // namespace pyrun::server
