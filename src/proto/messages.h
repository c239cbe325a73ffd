// Structured payloads of pyrun/1 frames and their encoding (see docs/PROTOCOL.md, "Encoding"):
// integers big-endian of fixed width, strings and byte strings as u32 length + bytes, lists as
// u32 count + items, fields in the order declared here. Decoders check every length against the
// bytes that remain before allocating, and reject trailing bytes.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "proto/frame.h"

namespace pyrun::proto {

// Limits of message fields (docs/PROTOCOL.md, "Limits").
inline constexpr uint32_t kMaxArgs = 64;          // RUN args
inline constexpr uint32_t kMaxFiles = 1000;       // RUN files
inline constexpr uint32_t kMaxNameLength = 255;   // RUN script_name; each component of a file name
inline constexpr uint32_t kMaxPathLength = 1024;  // RUN files[i].name
inline constexpr uint32_t kMaxGetPatterns = 64;   // GET patterns (each at most kMaxPathLength)
inline constexpr uint32_t kMaxServerName = 256;   // READY server
inline constexpr uint32_t kMaxJobId = 64;         // STARTED job_id
inline constexpr uint32_t kMaxTimings = 32;       // TIMINGS entries
inline constexpr uint32_t kMaxTimingName = 32;    // TIMINGS entry name
inline constexpr uint32_t kMaxTermName = 32;      // TERMINAL term
inline constexpr uint32_t kMaxText = 4096;        // ERROR message, EXIT detail; longer is truncated
                                                  // by the encoder

// Limits inside a RUN request: 0 means "the policy's value". A request above the policy's value is
// refused with kErrLimitTooHigh, never silently lowered.
struct Limits {
  uint32_t cpu_seconds = 0;
  uint32_t wall_seconds = 0;
  uint64_t memory_bytes = 0;
  uint64_t output_bytes = 0;  // stdout + stderr together
  friend bool operator==(const Limits&, const Limits&) = default;
};

struct File {
  std::string
      name;  // relative path inside the working directory ("data/in.txt"); no "..", no "/"-prefix
  uint32_t mode = 0644;  // permission bits only (0 .. 0777)
  std::string data;
  friend bool operator==(const File&, const File&) = default;
};

struct RunRequest {
  std::string script_name;        // base name, e.g. "fib.py"
  std::string script;             // the program's bytes
  std::vector<std::string> args;  // argv[1..]
  Limits limits;
  std::vector<File> files;
  // Asks for a TIMINGS frame after EXIT. Travels in RUN's optional trailing `flags` field, which
  // the encoder leaves out when no flag is set (so such a RUN is the same bytes as before it).
  bool want_timings = false;
  friend bool operator==(const RunRequest&, const RunRequest&) = default;
};

// FILE: announces one file of the job's working directory, whose `size` bytes follow in FILE_DATA
// frames (docs/PROTOCOL.md, "FILE"). Sent before RUN only.
struct FileHeader {
  std::string name;  // relative path, the rules of RUN's file names
  uint32_t mode = 0644;
  uint64_t size = 0;
  friend bool operator==(const FileHeader&, const FileHeader&) = default;
};

// GET: the result files wanted back after the job (glob patterns relative to the working
// directory) and the most the client accepts; RESULT frames never exceed them.
struct Get {
  std::vector<std::string> patterns;
  uint32_t max_files = 0;
  uint64_t max_bytes = 0;
  friend bool operator==(const Get&, const Get&) = default;
};

// A terminal's size in character cells, as TIOCGWINSZ reports it. Both 1 .. kMaxWindowCells.
struct WindowSize {
  uint16_t rows = 24;
  uint16_t cols = 80;
  friend bool operator==(const WindowSize&, const WindowSize&) = default;
};
inline constexpr uint16_t kMaxWindowCells = 10000;

// TERMINAL: run the job on a pseudo-terminal of this size, with TERM set to `term` (one of
// kTerminalNames). Sent before RUN, at most once.
struct Terminal {
  WindowSize size;
  std::string term;
  friend bool operator==(const Terminal&, const Terminal&) = default;
};
// The TERM values a job may be given; anything else is refused (it would reach the job's
// environment and its terminfo lookups).
std::span<const std::string_view> terminalNames() noexcept;
bool isKnownTerminalName(std::string_view term) noexcept;

struct Ready {
  uint16_t version = kProtocolVersion;
  uint32_t max_frame_payload = kMaxFramePayload;
  std::string server;  // "pyrund 0.1.0"
  friend bool operator==(const Ready&, const Ready&) = default;
};

struct Queued {
  uint32_t position = 0;  // 1 = next to start
  friend bool operator==(const Queued&, const Queued&) = default;
};

struct Started {
  std::string job_id;
  Limits limits;  // the limits in force (policy values filled in)
  friend bool operator==(const Started&, const Started&) = default;
};

enum class ExitKind : uint8_t { kExited = 0, kSignaled = 1 };

// Why the job ended. kOk means the program ended by itself (any exit code).
enum class Verdict : uint8_t {
  kOk = 0,
  kCpuLimit = 1,
  kWallLimit = 2,
  kMemoryLimit = 3,
  kOutputLimit = 4,  // output was truncated at the cap and the job killed
  kCancelled = 5,    // the client cancelled (or sent a second Ctrl-C)
  kSyscall = 6,      // the program made a forbidden system call (detail names it)
  kProcessLimit = 7,
  kFileSizeLimit = 8,
  kServerShutdown = 9,
  kInternalError = 10,
  kProtocolError = 11,  // the client broke the protocol while its job ran
};
std::string verdictName(Verdict v);  // "ok", "cpu-limit", ...; "0xNN" for values outside the enum

struct Exit {
  ExitKind kind = ExitKind::kExited;
  int32_t code = 0;  // exit status, or signal number when kind == kSignaled
  Verdict verdict = Verdict::kOk;
  uint64_t cpu_us = 0;
  uint64_t wall_us = 0;
  uint64_t peak_memory_bytes = 0;
  uint64_t stdout_bytes = 0;  // bytes delivered
  uint64_t stderr_bytes = 0;
  uint8_t output_truncated = 0;  // 1 when the output cap cut the output
  std::string detail;            // human sentence, e.g. "wall-clock limit of 60 s exceeded"
  friend bool operator==(const Exit&, const Exit&) = default;
};

// TIMINGS: when the job reached each stage, in microseconds since the server accepted the
// connection, in the order the server lists them (docs/PROTOCOL.md, "TIMINGS").
struct Timing {
  std::string name;  // "accept", "handshake", ..., "exit-sent"; a client shows unknown names as
                     // they come
  uint64_t micros = 0;
  friend bool operator==(const Timing&, const Timing&) = default;
};
struct Timings {
  std::vector<Timing> stages;
  friend bool operator==(const Timings&, const Timings&) = default;
};

// Error codes of ERROR frames.
enum class ErrorCode : uint16_t {
  kBadFrame = 1,         // malformed, oversize or unknown frame
  kUnexpectedFrame = 2,  // frame not allowed in the current state
  kBadRequest = 3,       // RUN request invalid (bad file name, empty script, ...)
  kLimitTooHigh = 4,     // requested limit above the policy's
  kBusy = 5,             // queue full
  kUnauthorized = 6,     // identity not allowed / quota
  kTimeout = 7,          // idle or handshake deadline
  kInternal = 8,         // server-side failure (spawn failed, ...)
  kShuttingDown = 9,
};

std::string errorCodeName(ErrorCode c);  // "bad-frame", "busy", ...; "0xNNNN" outside the enum

struct ErrorMessage {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  friend bool operator==(const ErrorMessage&, const ErrorMessage&) = default;
};

struct Signal {
  uint8_t signal =
      0;  // only SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 are accepted
  friend bool operator==(const Signal&, const Signal&) = default;
};
// True for the signal numbers a SIGNAL frame may carry (Linux numbering: 1 2 3 9 10 12 15).
bool isAllowedSignal(uint8_t signal) noexcept;

// Each encode returns a whole frame (header + payload). Text fields longer than their limit
// (kMaxServerName, kMaxJobId, kMaxText) are cut at a UTF-8 character boundary. A RUN request whose
// payload exceeds kMaxFramePayload throws std::length_error: validateRunRequest() first.
std::vector<uint8_t> encode(const RunRequest& m);
std::vector<uint8_t> encode(const Ready& m);
std::vector<uint8_t> encode(const Queued& m);
std::vector<uint8_t> encode(const Started& m);
std::vector<uint8_t> encode(const Exit& m);
std::vector<uint8_t> encode(const ErrorMessage& m);
std::vector<uint8_t> encode(const Signal& m);
// kFile by default; kResult for a RESULT frame (same payload).
std::vector<uint8_t> encode(const FileHeader& m, FrameType type = FrameType::kFile);
std::vector<uint8_t> encode(const Get& m);
// At most kMaxTimings entries (std::length_error beyond), names cut to kMaxTimingName bytes.
std::vector<uint8_t> encode(const Timings& m);
std::vector<uint8_t> encode(const Terminal& m);
// A WINDOW frame.
std::vector<uint8_t> encode(const WindowSize& m);
// Data frames (kStdin, kStdout, kStderr, kFileData) and empty frames (kStdinEnd, kCancel).
std::vector<uint8_t> encodeData(FrameType type, std::span<const uint8_t> bytes);
std::vector<uint8_t> encodeEmpty(FrameType type);

// Each decode takes a payload (without header). Errors are kProtocol with a detail naming the
// field ("RUN: args[2]: length 70000 exceeds the 65536 bytes that remain").
Result<RunRequest> decodeRunRequest(std::span<const uint8_t> payload);
Result<Ready> decodeReady(std::span<const uint8_t> payload);
Result<Queued> decodeQueued(std::span<const uint8_t> payload);
Result<Started> decodeStarted(std::span<const uint8_t> payload);
Result<Exit> decodeExit(std::span<const uint8_t> payload);
Result<ErrorMessage> decodeError(std::span<const uint8_t> payload);
Result<Signal> decodeSignal(std::span<const uint8_t> payload);
// Checks the encoding only (kProtocol); the name and mode rules are validateFileName's.
Result<FileHeader> decodeFileHeader(std::span<const uint8_t> payload);
// GET: the encoding, at most kMaxGetPatterns patterns, each a valid file name pattern (the rules of
// validateFileName, where '*', '?', '[' and "**" components are allowed).
Result<Get> decodeGet(std::span<const uint8_t> payload);
Result<Timings> decodeTimings(std::span<const uint8_t> payload);
// TERMINAL: the encoding, rows and cols within 1 .. kMaxWindowCells, term a known name.
Result<Terminal> decodeTerminal(std::span<const uint8_t> payload);
// WINDOW: rows and cols within 1 .. kMaxWindowCells.
Result<WindowSize> decodeWindow(std::span<const uint8_t> payload);
// True when the relative path matches the pattern: components are matched one by one with
// fnmatch(3) (a leading '.' only matched explicitly), and a "**" component matches any number of
// components, none included. A pattern matching a directory matches everything below it.
bool resultPatternMatches(std::string_view pattern, std::string_view path);

// The rules for a file name in RUN and FILE: not empty, at most kMaxPathLength bytes, relative,
// no empty, "." or ".." component, components at most kMaxNameLength bytes, no NUL or control
// characters; mode at most 0777. Errors are kInvalidArgument naming the file.
Result<void> validateFileName(const std::string& name, uint32_t mode);

// The names of one job's working directory, checked as they come: no name given twice and none
// that is both a file and a directory of another ("a" and "a/b").
class FileNameSet {
 public:
  // Adds a valid name (validateFileName). Errors are kInvalidArgument naming both names.
  Result<void> add(const std::string& name);
  bool contains(const std::string& name) const { return names_.count(name) != 0; }
  size_t size() const noexcept { return names_.size(); }
  // Directories the names imply ("a/b/c" implies "a" and "a/b"), each counted once.
  size_t directories() const noexcept { return dirs_.size(); }

 private:
  std::set<std::string> names_;
  std::set<std::string> dirs_;
};

// Semantic checks of a decoded RUN beyond the encoding: script name a plain base name ending in
// ".py"-or-anything but without '/', "." or ".."; file names relative, no "..", no empty
// components, no duplicates, not equal to the script name; at most 64 args, 1000 files.
// Also: script name not starting with '-' (it would be read as an interpreter option), no NUL in
// any name or argument (execve cannot carry it), no control characters in names (they reach logs),
// file modes within 0777, no file that is also a directory of another file ("a" and "a/b"), and
// the encoded payload within kMaxFramePayload. Errors are kInvalidArgument naming the field.
Result<void> validateRunRequest(const RunRequest& m);

// Which frames each side accepts in each state (the table in docs/PROTOCOL.md, "States").
// kUploading: a FILE's bytes are still owed (FILE_DATA only); then back to kAwaitRun.
enum class ServerState : uint8_t { kAwaitRun, kUploading, kQueued, kRunning, kDone };
// kAwaitTimings: EXIT came and the RUN asked for TIMINGS, which comes next.
enum class ClientState : uint8_t {
  kAwaitReady,
  kAwaitStart,
  kQueued,
  kRunning,
  kDone,
  kAwaitTimings
};
// True if the server may receive `type` from the client in `state`.
bool serverAccepts(ServerState state, FrameType type) noexcept;
// True if the client may receive `type` from the server in `state`.
bool clientAccepts(ClientState state, FrameType type) noexcept;

}  // namespace pyrun::proto
