// Encoders, decoders and semantic checks of the structured pyrun/1 messages, and the state tables.
#include "proto/messages.h"

#include <csignal>
#include <cstdio>
#include <set>
#include <stdexcept>
#include <string_view>

#include "common/glob.h"
#include "proto/wire.h"

namespace pyrun::proto {

// Signal numbers travel as Linux numbers; a port to an architecture that numbers them differently
// (alpha, mips, sparc) must translate instead of compiling silently.
static_assert(SIGHUP == 1 && SIGINT == 2 && SIGQUIT == 3 && SIGKILL == 9 && SIGUSR1 == 10 &&
              SIGUSR2 == 12 && SIGTERM == 15);

namespace {

constexpr size_t kLimitsSize = 4 + 4 + 8 + 8;
// Smallest encodings of list items, used to bound a list count by the bytes that remain.
constexpr size_t kMinArgSize = 4;
constexpr size_t kMinFileSize = 4 + 4 + 4;
constexpr uint8_t kMaxVerdict = static_cast<uint8_t>(Verdict::kProtocolError);
constexpr uint16_t kMaxErrorCode = static_cast<uint16_t>(ErrorCode::kShuttingDown);
// RUN's optional trailing flags.
constexpr uint32_t kRunFlagTimings = 1u << 0;
constexpr uint32_t kKnownRunFlags = kRunFlagTimings;

// Cuts s to at most max bytes without splitting a UTF-8 sequence (continuation bytes are
// 10xxxxxx), so a truncated message still decodes as text on the other side.
std::string_view truncateText(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<uint8_t>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::vector<uint8_t> frameOf(FrameType type, wire::Writer& w) {
  return encodeFrame(type, w.bytes());
}

void writeLimits(wire::Writer& w, const Limits& l) {
  w.u32(l.cpu_seconds);
  w.u32(l.wall_seconds);
  w.u64(l.memory_bytes);
  w.u64(l.output_bytes);
}

Limits readLimits(wire::Reader& r) {
  Limits l;
  l.cpu_seconds = r.u32("limits.cpu_seconds");
  l.wall_seconds = r.u32("limits.wall_seconds");
  l.memory_bytes = r.u64("limits.memory_bytes");
  l.output_bytes = r.u64("limits.output_bytes");
  return l;
}

std::string indexed(std::string_view field, size_t i) {
  return std::string(field) + "[" + std::to_string(i) + "]";
}

Error invalid(std::string detail) { return Error(Errc::kInvalidArgument, std::move(detail)); }

// Why a name is unfit to become a path component or an argv entry, or empty when it is fit.
std::string badCharacter(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u == 0) return "contains a NUL byte";
    // Control characters would reach log lines and terminals verbatim.
    if (u < 0x20 || u == 0x7f) return "contains a control character";
  }
  return {};
}

// Checks one '/'-separated component of a file name.
std::string badComponent(std::string_view c) {
  if (c.empty()) return "has an empty component";
  if (c == "." || c == "..") return "has a \"" + std::string(c) + "\" component";
  if (c.size() > kMaxNameLength) {
    return "has a component longer than " + std::to_string(kMaxNameLength) + " bytes";
  }
  return {};
}

size_t runPayloadSize(const RunRequest& m) {
  size_t n = 4 + m.script_name.size() + 4 + m.script.size() + 4 + kLimitsSize + 4;
  for (const auto& a : m.args) n += 4 + a.size();
  for (const auto& f : m.files) n += 4 + f.name.size() + 4 + 4 + f.data.size();
  if (m.want_timings) n += 4;
  return n;
}

}  // namespace

std::string verdictName(Verdict v) {
  switch (v) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kCpuLimit:
      return "cpu-limit";
    case Verdict::kWallLimit:
      return "wall-limit";
    case Verdict::kMemoryLimit:
      return "memory-limit";
    case Verdict::kOutputLimit:
      return "output-limit";
    case Verdict::kCancelled:
      return "cancelled";
    case Verdict::kSyscall:
      return "syscall";
    case Verdict::kProcessLimit:
      return "process-limit";
    case Verdict::kFileSizeLimit:
      return "file-size-limit";
    case Verdict::kServerShutdown:
      return "server-shutdown";
    case Verdict::kInternalError:
      return "internal-error";
    case Verdict::kProtocolError:
      return "protocol-error";
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned>(v));
  return buf;
}

std::string errorCodeName(ErrorCode c) {
  switch (c) {
    case ErrorCode::kBadFrame:
      return "bad-frame";
    case ErrorCode::kUnexpectedFrame:
      return "unexpected-frame";
    case ErrorCode::kBadRequest:
      return "bad-request";
    case ErrorCode::kLimitTooHigh:
      return "limit-too-high";
    case ErrorCode::kBusy:
      return "busy";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kShuttingDown:
      return "shutting-down";
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04x", static_cast<unsigned>(c));
  return buf;
}

bool isAllowedSignal(uint8_t signal) noexcept {
  switch (signal) {
    case SIGHUP:
    case SIGINT:
    case SIGQUIT:
    case SIGKILL:
    case SIGUSR1:
    case SIGUSR2:
    case SIGTERM:
      return true;
    default:
      return false;
  }
}

// ---- encoders ----

std::vector<uint8_t> encode(const RunRequest& m) {
  wire::Writer w;
  w.string(m.script_name);
  w.string(m.script);
  w.u32(static_cast<uint32_t>(m.args.size()));
  for (const auto& a : m.args) w.string(a);
  writeLimits(w, m.limits);
  w.u32(static_cast<uint32_t>(m.files.size()));
  for (const auto& f : m.files) {
    w.string(f.name);
    w.u32(f.mode);
    w.string(f.data);
  }
  // Only when a flag is set: a RUN without one stays readable by servers that predate the field.
  if (m.want_timings) w.u32(kRunFlagTimings);
  return frameOf(FrameType::kRun, w);
}

std::vector<uint8_t> encode(const Ready& m) {
  wire::Writer w;
  w.u16(m.version);
  w.u32(m.max_frame_payload);
  w.string(truncateText(m.server, kMaxServerName));
  return frameOf(FrameType::kReady, w);
}

std::vector<uint8_t> encode(const Queued& m) {
  wire::Writer w;
  w.u32(m.position);
  return frameOf(FrameType::kQueued, w);
}

std::vector<uint8_t> encode(const Started& m) {
  wire::Writer w;
  w.string(truncateText(m.job_id, kMaxJobId));
  writeLimits(w, m.limits);
  return frameOf(FrameType::kStarted, w);
}

std::vector<uint8_t> encode(const Exit& m) {
  wire::Writer w;
  w.u8(static_cast<uint8_t>(m.kind));
  w.i32(m.code);
  w.u8(static_cast<uint8_t>(m.verdict));
  w.u64(m.cpu_us);
  w.u64(m.wall_us);
  w.u64(m.peak_memory_bytes);
  w.u64(m.stdout_bytes);
  w.u64(m.stderr_bytes);
  w.u8(m.output_truncated);
  w.string(truncateText(m.detail, kMaxText));
  return frameOf(FrameType::kExit, w);
}

std::vector<uint8_t> encode(const ErrorMessage& m) {
  wire::Writer w;
  w.u16(static_cast<uint16_t>(m.code));
  w.string(truncateText(m.message, kMaxText));
  return frameOf(FrameType::kError, w);
}

std::vector<uint8_t> encode(const Signal& m) {
  wire::Writer w;
  w.u8(m.signal);
  return frameOf(FrameType::kSignal, w);
}

std::vector<uint8_t> encode(const FileHeader& m, FrameType type) {
  if (m.name.size() > kMaxPathLength) throw std::length_error("FILE: name too long");
  if (type != FrameType::kFile && type != FrameType::kResult) {
    throw std::invalid_argument("encode(FileHeader): neither FILE nor RESULT");
  }
  wire::Writer w;
  w.string(m.name);
  w.u32(m.mode);
  w.u64(m.size);
  return frameOf(type, w);
}

std::vector<uint8_t> encode(const Get& m) {
  if (m.patterns.size() > kMaxGetPatterns) throw std::length_error("GET: too many patterns");
  wire::Writer w;
  w.u32(static_cast<uint32_t>(m.patterns.size()));
  for (const auto& p : m.patterns) {
    if (p.size() > kMaxPathLength) throw std::length_error("GET: pattern too long");
    w.string(p);
  }
  w.u32(m.max_files);
  w.u64(m.max_bytes);
  return frameOf(FrameType::kGet, w);
}

std::vector<uint8_t> encode(const Timings& m) {
  if (m.stages.size() > kMaxTimings) throw std::length_error("TIMINGS: too many entries");
  wire::Writer w;
  w.u32(static_cast<uint32_t>(m.stages.size()));
  for (const auto& t : m.stages) {
    w.string(truncateText(t.name, kMaxTimingName));
    w.u64(t.micros);
  }
  return frameOf(FrameType::kTimings, w);
}

std::vector<uint8_t> encode(const Terminal& m) {
  if (m.term.size() > kMaxTermName) throw std::length_error("TERMINAL: term too long");
  wire::Writer w;
  w.u16(m.size.rows);
  w.u16(m.size.cols);
  w.string(m.term);
  return frameOf(FrameType::kTerminal, w);
}

std::vector<uint8_t> encode(const WindowSize& m) {
  wire::Writer w;
  w.u16(m.rows);
  w.u16(m.cols);
  return frameOf(FrameType::kWindow, w);
}

std::vector<uint8_t> encodeData(FrameType type, std::span<const uint8_t> bytes) {
  if (type != FrameType::kStdin && type != FrameType::kStdout && type != FrameType::kStderr &&
      type != FrameType::kFileData && type != FrameType::kResultData) {
    throw std::invalid_argument("encodeData: " + frameTypeName(static_cast<uint8_t>(type)) +
                                " is not a data frame");
  }
  return encodeFrame(type, bytes);
}

std::vector<uint8_t> encodeEmpty(FrameType type) {
  if (type != FrameType::kStdinEnd && type != FrameType::kCancel) {
    throw std::invalid_argument("encodeEmpty: " + frameTypeName(static_cast<uint8_t>(type)) +
                                " is not an empty frame");
  }
  return encodeFrame(type, {});
}

// ---- decoders ----

Result<RunRequest> decodeRunRequest(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "RUN");
  RunRequest m;
  m.script_name = r.string("script_name", kMaxNameLength);
  m.script = r.string("script", kMaxFramePayload);
  const uint32_t nargs = r.count("args", kMaxArgs, kMinArgSize);
  m.args.reserve(nargs);
  for (uint32_t i = 0; i < nargs && r.ok(); ++i) {
    m.args.push_back(r.string(indexed("args", i), kMaxFramePayload));
  }
  m.limits = readLimits(r);
  const uint32_t nfiles = r.count("files", kMaxFiles, kMinFileSize);
  m.files.reserve(nfiles);
  for (uint32_t i = 0; i < nfiles && r.ok(); ++i) {
    const std::string field = indexed("files", i);
    File f;
    f.name = r.string(field + ".name", kMaxPathLength);
    f.mode = r.u32(field + ".mode");
    f.data = r.string(field + ".data", kMaxFramePayload);
    m.files.push_back(std::move(f));
  }
  // Exactly four bytes after the files are the flags; any other rest is trailing bytes.
  if (r.ok() && r.remaining() == 4) {
    const uint32_t flags = r.u32("flags");
    if (r.ok() && (flags & ~kKnownRunFlags) != 0) {
      r.fail("flags", "unknown flags " + std::to_string(flags & ~kKnownRunFlags));
    }
    // One encoding per request: a field that sets no flag is left out, never sent as 0.
    if (r.ok() && flags == 0) r.fail("flags", "present but 0 (leave the field out)");
    m.want_timings = (flags & kRunFlagTimings) != 0;
  }
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

Result<Ready> decodeReady(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "READY");
  Ready m;
  m.version = r.u16("version");
  m.max_frame_payload = r.u32("max_frame_payload");
  m.server = r.string("server", kMaxServerName);
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

Result<Queued> decodeQueued(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "QUEUED");
  Queued m;
  m.position = r.u32("position");
  if (r.ok() && m.position == 0) r.fail("position", "invalid value 0 (1 is the next to start)");
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

Result<Started> decodeStarted(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "STARTED");
  Started m;
  m.job_id = r.string("job_id", kMaxJobId);
  m.limits = readLimits(r);
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

Result<Exit> decodeExit(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "EXIT");
  Exit m;
  const uint8_t kind = r.u8("kind");
  if (r.ok() && kind > 1) r.fail("kind", "invalid value " + std::to_string(kind));
  m.kind = static_cast<ExitKind>(kind);
  m.code = r.i32("code");
  if (r.ok()) {
    // An exit status is what waitpid can report: 0..255, or a signal number 1..64.
    if (m.kind == ExitKind::kExited && (m.code < 0 || m.code > 255)) {
      r.fail("code", "exit status " + std::to_string(m.code) + " is outside 0..255");
    } else if (m.kind == ExitKind::kSignaled && (m.code < 1 || m.code > 64)) {
      r.fail("code", "signal number " + std::to_string(m.code) + " is outside 1..64");
    }
  }
  const uint8_t verdict = r.u8("verdict");
  if (r.ok() && verdict > kMaxVerdict)
    r.fail("verdict", "invalid value " + std::to_string(verdict));
  m.verdict = static_cast<Verdict>(verdict);
  m.cpu_us = r.u64("cpu_us");
  m.wall_us = r.u64("wall_us");
  m.peak_memory_bytes = r.u64("peak_memory_bytes");
  m.stdout_bytes = r.u64("stdout_bytes");
  m.stderr_bytes = r.u64("stderr_bytes");
  m.output_truncated = r.flag("output_truncated");
  m.detail = r.string("detail", kMaxText);
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

Result<ErrorMessage> decodeError(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "ERROR");
  ErrorMessage m;
  const uint16_t code = r.u16("code");
  if (r.ok() && (code == 0 || code > kMaxErrorCode)) {
    r.fail("code", "invalid value " + std::to_string(code));
  }
  m.code = static_cast<ErrorCode>(code);
  m.message = r.string("message", kMaxText);
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

Result<Signal> decodeSignal(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "SIGNAL");
  Signal m;
  m.signal = r.u8("signal");
  if (r.ok() && !isAllowedSignal(m.signal)) {
    r.fail("signal", "signal " + std::to_string(m.signal) + " may not be sent");
  }
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

Result<FileHeader> decodeFileHeader(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "FILE");
  FileHeader m;
  m.name = r.string("name", kMaxPathLength);
  m.mode = r.u32("mode");
  m.size = r.u64("size");
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

Result<Get> decodeGet(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "GET");
  Get m;
  const uint32_t n = r.count("patterns", kMaxGetPatterns, 4);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    m.patterns.push_back(r.string(indexed("patterns", i), kMaxPathLength));
  }
  m.max_files = r.u32("max_files");
  m.max_bytes = r.u64("max_bytes");
  if (auto done = r.finish(); !done) return done.error();
  for (size_t i = 0; i < m.patterns.size(); ++i) {
    if (auto ok = validateFileName(m.patterns[i], 0); !ok) {
      return Error(Errc::kProtocol,
                   "GET: patterns[" + std::to_string(i) + "]: " + ok.error().detail());
    }
  }
  return m;
}

Result<Timings> decodeTimings(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "TIMINGS");
  Timings m;
  const uint32_t n = r.count("stages", kMaxTimings, 4 + 8);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    Timing t;
    t.name = r.string(indexed("stages", i) + ".name", kMaxTimingName);
    t.micros = r.u64(indexed("stages", i) + ".micros");
    m.stages.push_back(std::move(t));
  }
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

namespace {
WindowSize readWindowSize(wire::Reader& r) {
  WindowSize m;
  m.rows = r.u16("rows");
  if (r.ok() && (m.rows == 0 || m.rows > kMaxWindowCells)) {
    r.fail("rows", std::to_string(m.rows) + " is outside 1.." + std::to_string(kMaxWindowCells));
  }
  m.cols = r.u16("cols");
  if (r.ok() && (m.cols == 0 || m.cols > kMaxWindowCells)) {
    r.fail("cols", std::to_string(m.cols) + " is outside 1.." + std::to_string(kMaxWindowCells));
  }
  return m;
}
}  // namespace

Result<Terminal> decodeTerminal(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "TERMINAL");
  Terminal m;
  m.size = readWindowSize(r);
  m.term = r.string("term", kMaxTermName);
  if (r.ok() && !isKnownTerminalName(m.term)) {
    // The name is not echoed: it may hold control characters.
    r.fail("term", "not a known terminal type (xterm-256color, screen, tmux, vt100, ...)");
  }
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

Result<WindowSize> decodeWindow(std::span<const uint8_t> payload) {
  wire::Reader r(payload, "WINDOW");
  WindowSize m = readWindowSize(r);
  if (auto done = r.finish(); !done) return done.error();
  return m;
}

std::span<const std::string_view> terminalNames() noexcept {
  static constexpr std::string_view kNames[] = {"xterm",
                                                "xterm-256color",
                                                "xterm-color",
                                                "screen",
                                                "screen-256color",
                                                "tmux",
                                                "tmux-256color",
                                                "vt100",
                                                "vt220",
                                                "linux",
                                                "rxvt-unicode",
                                                "alacritty",
                                                "rxvt-unicode-256color",
                                                "dumb"};
  return kNames;
}

bool isKnownTerminalName(std::string_view term) noexcept {
  for (auto name : terminalNames()) {
    if (name == term) return true;
  }
  return false;
}

bool resultPatternMatches(std::string_view pattern, std::string_view path) {
  return pathMatches(pattern, path);
}

// ---- semantic checks ----

Result<void> validateRunRequest(const RunRequest& m) {
  const std::string& s = m.script_name;
  if (s.empty()) return invalid("script name is empty");
  if (s.size() > kMaxNameLength) {
    return invalid("script name is longer than " + std::to_string(kMaxNameLength) + " bytes");
  }
  if (s.find('/') != std::string::npos) {
    return invalid("script name \"" + s + "\" contains '/' (a base name is required)");
  }
  if (s == "." || s == "..") return invalid("script name \"" + s + "\" is not a file name");
  if (auto why = badCharacter(s); !why.empty()) return invalid("script name " + why);
  // python3 reads an argument starting with '-' as an option, not as the script.
  if (s.front() == '-') return invalid("script name \"" + s + "\" starts with '-'");
  if (m.script.empty()) return invalid("script \"" + s + "\" is empty");

  if (m.args.size() > kMaxArgs) {
    return invalid(std::to_string(m.args.size()) + " arguments exceed the maximum of " +
                   std::to_string(kMaxArgs));
  }
  for (size_t i = 0; i < m.args.size(); ++i) {
    if (m.args[i].find('\0') != std::string::npos) {
      return invalid("argument " + std::to_string(i + 1) + " contains a NUL byte");
    }
  }

  if (m.files.size() > kMaxFiles) {
    return invalid(std::to_string(m.files.size()) + " files exceed the maximum of " +
                   std::to_string(kMaxFiles));
  }
  FileNameSet names;
  (void)names.add(s);  // a file "fib.py/x" would need the script to be a directory
  for (const auto& f : m.files) {
    if (auto ok = validateFileName(f.name, f.mode); !ok) return ok;
    if (f.name == s) return invalid("file name \"" + f.name + "\" is the script's name");
    if (auto ok = names.add(f.name); !ok) return ok;
  }

  if (const size_t size = runPayloadSize(m); size > kMaxFramePayload) {
    return invalid("the script and files take " + std::to_string(size) +
                   " bytes encoded, above the request limit of " +
                   std::to_string(kMaxFramePayload) + " bytes");
  }
  return {};
}

Result<void> validateFileName(const std::string& n, uint32_t mode) {
  if (n.empty()) return invalid("a file name is empty");
  if (n.size() > kMaxPathLength) {
    return invalid("file name \"" + n.substr(0, 64) + "...\" is longer than " +
                   std::to_string(kMaxPathLength) + " bytes");
  }
  if (auto why = badCharacter(n); !why.empty()) return invalid("a file name " + why);
  if (n.front() == '/') return invalid("file name \"" + n + "\" is absolute");
  for (size_t begin = 0;;) {
    const size_t end = n.find('/', begin);
    const std::string_view c =
        std::string_view(n).substr(begin, end == std::string::npos ? end : end - begin);
    if (auto why = badComponent(c); !why.empty()) {
      return invalid("file name \"" + n + "\" " + why);
    }
    if (end == std::string::npos) break;
    begin = end + 1;
  }
  if (mode > 0777) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%o", static_cast<unsigned>(mode));
    return invalid("file \"" + n + "\" has mode " + buf + " (only permission bits 0..777)");
  }
  return {};
}

Result<void> FileNameSet::add(const std::string& name) {
  if (names_.count(name) != 0) return invalid("file name \"" + name + "\" appears twice");
  if (dirs_.count(name) != 0) {
    auto later = names_.lower_bound(name + "/");
    return invalid("file name \"" + *later + "\" needs \"" + name +
                   "\" to be a directory, but it is a file");
  }
  for (size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    const std::string dir = name.substr(0, slash);
    if (names_.count(dir) != 0) {
      return invalid("file name \"" + name + "\" needs \"" + dir +
                     "\" to be a directory, but it is a file");
    }
  }
  for (size_t slash = name.find('/'); slash != std::string::npos;
       slash = name.find('/', slash + 1)) {
    dirs_.insert(name.substr(0, slash));
  }
  names_.insert(name);
  return {};
}

// ---- state tables ----

bool serverAccepts(ServerState state, FrameType type) noexcept {
  using F = FrameType;
  switch (state) {
    // FILE frames come before RUN; while a FILE's bytes are owed only FILE_DATA is accepted.
    case ServerState::kAwaitRun:
      return type == F::kRun || type == F::kFile || type == F::kGet || type == F::kTerminal;
    case ServerState::kUploading:
      return type == F::kFileData;
    // Queued covers the whole time from RUN to STARTED: the program does not exist yet, so there
    // is no stdin to write, but the user may give up (Ctrl-C) while waiting.
    // WINDOW: the user may resize the terminal while the job waits; the latest size is used.
    case ServerState::kQueued:
      return type == F::kSignal || type == F::kCancel || type == F::kWindow;
    case ServerState::kRunning:
      return type == F::kStdin || type == F::kStdinEnd || type == F::kSignal ||
             type == F::kCancel || type == F::kWindow;
    case ServerState::kDone:
      return false;
  }
  return false;
}

bool clientAccepts(ClientState state, FrameType type) noexcept {
  using F = FrameType;
  switch (state) {
    case ClientState::kAwaitReady:
      return type == F::kReady || type == F::kError;
    case ClientState::kAwaitStart:
    case ClientState::kQueued:
      // EXIT here: a job cancelled while queued ends without ever starting.
      return type == F::kQueued || type == F::kStarted || type == F::kExit || type == F::kError;
    // RESULT and RESULT_DATA: after the program's output, before EXIT (GET asked for them).
    case ClientState::kRunning:
      return type == F::kStdout || type == F::kStderr || type == F::kExit || type == F::kError ||
             type == F::kResult || type == F::kResultData;
    case ClientState::kAwaitTimings:
      return type == F::kTimings;
    case ClientState::kDone:
      return false;
  }
  return false;
}

}  // namespace pyrun::proto
