// The session's decisions that need no sockets: what a client frame means in a state, the limits a
// job runs under, output accounting against the cap, and the verdict and sentence of an ending.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common/error.h"
#include "proto/frame.h"
#include "proto/messages.h"
#include "proto/verdict.h"
#include "sandbox/spawner.h"
#include "server/audit.h"
#include "server/config.h"

namespace pyrun::server {

// A valid RUN, with the limits that will be in force.
struct RunAccepted {
  proto::RunRequest request;
  proto::Limits limits;
};
struct StdinData {
  std::vector<uint8_t> bytes;
};
struct StdinEnd {};
struct SignalRequest {
  int signal = 0;
};
struct CancelRequest {};
// FILE with a valid name and mode (the size is judged against the quota by the upload).
struct FileBegin {
  proto::FileHeader header;
};
struct FileData {
  std::vector<uint8_t> bytes;
};
struct GetRequest {
  proto::Get get;
};
// TERMINAL with a valid size and TERM (whether the policy allows terminals is the session's call).
struct TerminalRequest {
  proto::Terminal terminal;
};
// WINDOW with a valid size.
struct WindowChange {
  proto::WindowSize size;
};
// Anything else: the session sends this ERROR and closes.
using ClientEvent =
    std::variant<RunAccepted, StdinData, StdinEnd, SignalRequest, CancelRequest, FileBegin,
                 FileData, GetRequest, TerminalRequest, WindowChange, proto::ErrorMessage>;

// Interprets one complete client frame in `state`: frames the state does not accept give
// kUnexpectedFrame, undecodable payloads kBadFrame, invalid requests kBadRequest, requested limits
// above the server's kLimitTooHigh, signals outside the allowed set kBadRequest.
ClientEvent interpretFrame(proto::ServerState state, proto::Frame frame,
                           const policy::Limits& limits);

// The limits in force for a request: 0 means the server's value; a value above the server's is
// refused (kLimit, "requested wall_seconds 120 is above the server's limit of 60"), never lowered.
Result<proto::Limits> limitsInForce(const proto::Limits& requested, const policy::Limits& limits);

// True for the signals a client may ask for (SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1,
// SIGUSR2).
bool clientMaySend(int signal) noexcept;

// What the spawner gets for an accepted RUN under the policy `policy_name` (the name in the
// config's policies:, which the spawner knows too) with that policy's interpreter and ceilings.
sandbox::JobSpec makeJobSpec(uint64_t job_id, const RunAccepted& run, const policy::Limits& limits,
                             const std::string& policy_name, const std::string& interpreter);

// Counts stdout+stderr bytes against the cap.
class OutputBudget {
 public:
  explicit OutputBudget(uint64_t cap) : cap_(cap) {}
  // Of n bytes that arrived, how many may be delivered (the rest is cut). Once anything has been
  // cut, truncated() stays true.
  size_t take(size_t n) noexcept;
  bool truncated() const noexcept { return truncated_; }
  uint64_t used() const noexcept { return used_; }
  uint64_t cap() const noexcept { return cap_; }

 private:
  uint64_t cap_;
  uint64_t used_ = 0;
  bool truncated_ = false;
};

// The verdict of a job that the spawner reports ended with `cause`, given the verdict the front
// itself imposed (kOk when it imposed none): the front's kill explains a kKilled or kExited
// ending. A cause this front does not know (a newer spawner's) never reads as a success: it gives
// the front's verdict when there is one, else kInternalError.
proto::Verdict finalVerdict(sandbox::EndCause cause, proto::Verdict front_verdict) noexcept;

// The verdict of a job ended because the session sends ERROR `code`: kProtocolError when the
// client broke the protocol (bad-frame, unexpected-frame, bad-request), else kInternalError.
proto::Verdict verdictForError(proto::ErrorCode code) noexcept;

// What the spawner said about the cause of an ending, for the verdict's sentence, which is
// proto::verdictSentence (one for pyrund's EXIT and audit log, pyrun-policy and pyrun).
using CauseDetail = proto::VerdictCause;
using proto::humanBytes;

// The spawner's detail of a JobEnded (JobEnded::detail and syscall_named).
CauseDetail endDetail(const sandbox::JobEnded& end);

// What the job_end audit line says besides the spawner's report. The session fills it in; when the
// session ends before its job does, the handler it leaves with the spawner link keeps a copy, so
// that every job gets exactly one job_end line whoever is left to write it.
struct JobEndRecord {
  std::string peer, identity, serial, fingerprint;
  std::string proxy;  // the load balancer the connection came through (empty: direct)
  uint64_t job_id = 0;
  std::string script, script_sha256, policy;
  proto::Verdict front_verdict = proto::Verdict::kOk;  // what the front imposed (kOk: nothing)
  std::string detail;  // replaces the sentence of the front's verdict ("certificate revoked")
  proto::Limits limits;
  uint64_t stdout_bytes = 0, stderr_bytes = 0, bytes_in = 0, bytes_out = 0;
};

// How a job ended, as EXIT and job_end tell it: finalVerdict() of the spawner's cause and the
// front's verdict, and its sentence (record.detail when that verdict is the front's own).
struct Ending {
  proto::Verdict verdict = proto::Verdict::kOk;
  std::string detail;
};
Ending endingOf(const JobEndRecord& record, const sandbox::JobEnded& end);

// The job_end line of a job that ended as `end` reports.
AuditLine jobEndLine(const JobEndRecord& record, const sandbox::JobEnded& end);
// The job_end line of a job the spawner could not start (verdict internal-error, the stage and
// the spawner's sentence as detail).
AuditLine jobFailedLine(const JobEndRecord& record, const sandbox::JobFailed& failed);

// The job_end line of a job whose end the spawner never reported (pyrund stopped, or the spawner
// failed, first): `verdict` and `detail` say so; there is no exit status or usage to give.
AuditLine jobUnreportedLine(const JobEndRecord& record, proto::Verdict verdict,
                            const std::string& detail);

}  // namespace pyrun::server
