// Byte codecs of the spawner's messages and of JobSpec: little-endian integers, strings as u32
// length + bytes. Every length is checked against the bytes that remain before anything is
// allocated; trailing bytes are an error.
#include <cstring>
#include <limits>
#include <type_traits>

#include "sandbox/spawner.h"

namespace pyrun::sandbox {
namespace {

enum class FromSpawnerType : uint8_t {
  kJobStarted = 1,
  kJobFailed = 2,
  kJobEnded = 3,
  kPoliciesReloaded = 4,
};

// JobFailed strings are cut so that the message always fits one datagram.
constexpr size_t kMaxStageBytes = 64;
constexpr size_t kMaxDetailBytes = 4096;

class Writer {
 public:
  template <class T>
  void integer(T value) {
    using U = std::make_unsigned_t<T>;
    auto u = static_cast<U>(value);
    for (size_t i = 0; i < sizeof(T); ++i) {
      bytes_.push_back(static_cast<uint8_t>(u & 0xffu));
      if constexpr (sizeof(T) > 1) u = static_cast<U>(u >> 8);
    }
  }
  void string(std::string_view s, size_t max = std::numeric_limits<uint32_t>::max()) {
    if (s.size() > max) s = s.substr(0, max);
    integer(static_cast<uint32_t>(s.size()));
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  std::vector<uint8_t> bytes_;
};

class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, const char* what) : bytes_(bytes), what_(what) {}

  template <class T>
  bool integer(T& out) {
    if (bytes_.size() - pos_ < sizeof(T)) return fail("truncated");
    using U = std::make_unsigned_t<T>;
    U u = 0;
    for (size_t i = sizeof(T); i-- > 0;) {
      if constexpr (sizeof(T) > 1) u = static_cast<U>(u << 8);
      u = static_cast<U>(u | bytes_[pos_ + i]);
    }
    pos_ += sizeof(T);
    out = static_cast<T>(u);
    return true;
  }
  bool string(std::string& out, size_t max) {
    uint32_t n = 0;
    if (!integer(n)) return false;
    if (n > max) return fail("string longer than its limit");
    if (bytes_.size() - pos_ < n) return fail("truncated");
    out.assign(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return true;
  }
  // A list count, checked against the bytes left: every item needs at least min_item_bytes.
  bool count(uint32_t& out, uint32_t max, size_t min_item_bytes) {
    if (!integer(out)) return false;
    if (out > max) return fail("list longer than its limit");
    if (static_cast<uint64_t>(out) * min_item_bytes > bytes_.size() - pos_)
      return fail("truncated");
    return true;
  }
  bool finish() {
    if (pos_ != bytes_.size()) return fail("trailing bytes");
    return true;
  }
  bool failed() const { return !error_.empty(); }
  Error error() const {
    return Error(Errc::kProtocol, std::string("malformed ") + what_ + ": " + error_);
  }
  bool fail(const char* why) {
    if (error_.empty()) error_ = why;
    return false;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
  const char* what_;
  std::string error_;
};

// Stage stamps: [u8 count] then count x [u8 stage][u64 CLOCK_MONOTONIC us], only those reached.
void writeTimes(Writer& w, const StageTimes& times) {
  uint8_t count = 0;
  for (size_t i = 0; i < kJobStageCount; ++i) {
    if (times.has(static_cast<JobStage>(i))) ++count;
  }
  w.integer(count);
  for (size_t i = 0; i < kJobStageCount; ++i) {
    auto stage = static_cast<JobStage>(i);
    if (!times.has(stage)) continue;
    w.integer(static_cast<uint8_t>(i));
    w.integer(times.at(stage));
  }
}

bool readTimes(Reader& r, StageTimes& times) {
  uint8_t count = 0;
  if (!r.integer(count)) return false;
  if (count > kJobStageCount) return r.fail("more stage stamps than stages");
  int previous = -1;
  for (uint8_t i = 0; i < count; ++i) {
    uint8_t number = 0;
    uint64_t micros = 0;
    if (!(r.integer(number) && r.integer(micros))) return false;
    auto stage = jobStageFromNumber(number);
    if (!stage) return r.fail("unknown stage stamp");
    if (micros == 0 || times.has(*stage)) return r.fail("stage stamp zero or given twice");
    // In stage order, as writeTimes puts them: one encoding per message.
    if (number <= previous) return r.fail("stage stamps out of order");
    previous = number;
    times.set(*stage, micros);
  }
  return true;
}

constexpr uint32_t kMaxArgs = 4096;
constexpr uint32_t kMaxFiles = 10000;
constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxNameBytes = 255;

// JobEnded carries two texts; each is cut so that the largest JobEnded still fits one datagram of
// kMaxFromSpawnerBytes (a longer one would be refused by the front's receive, and the job's end
// lost). Checked below, field by field.
constexpr size_t kMaxEndDetailBytes = 3584;
constexpr size_t kMaxJobEndedBytes = 1 + 8 + 1 + 4 + 1 + 8 + 8 + 8    // type .. wall_us
                                     + 4 + kMaxEndDetailBytes + 1     // detail, syscall_named
                                     + 4 + kMaxNameBytes              // results
                                     + 4 + kMaxEndDetailBytes         // results_detail
                                     + 1 + kJobStageCount * (1 + 8);  // times
static_assert(kMaxJobEndedBytes <= kMaxFromSpawnerBytes,
              "the largest JobEnded must fit one spawner datagram");

}  // namespace

std::vector<uint8_t> encodeMessage(const FromSpawner& m) {
  Writer w;
  if (const auto* s = std::get_if<JobStarted>(&m)) {
    w.integer(static_cast<uint8_t>(FromSpawnerType::kJobStarted));
    w.integer(s->job_id);
    w.integer(s->pid);
    writeTimes(w, s->times);
  } else if (const auto* f = std::get_if<JobFailed>(&m)) {
    w.integer(static_cast<uint8_t>(FromSpawnerType::kJobFailed));
    w.integer(f->job_id);
    w.string(f->stage, kMaxStageBytes);
    w.integer(f->error);
    w.string(f->detail, kMaxDetailBytes);
  } else if (const auto* p = std::get_if<PoliciesReloaded>(&m)) {
    w.integer(static_cast<uint8_t>(FromSpawnerType::kPoliciesReloaded));
    w.integer(static_cast<uint8_t>(p->ok ? 1 : 0));
    w.string(p->detail, kMaxDetailBytes);
  } else {
    const auto& e = std::get<JobEnded>(m);
    w.integer(static_cast<uint8_t>(FromSpawnerType::kJobEnded));
    w.integer(e.job_id);
    w.integer(static_cast<uint8_t>(e.signaled ? 1 : 0));
    w.integer(e.code);
    w.integer(static_cast<uint8_t>(e.cause));
    w.integer(e.cpu_us);
    w.integer(e.peak_memory_bytes);
    w.integer(e.wall_us);
    w.string(e.detail, kMaxEndDetailBytes);
    w.integer(static_cast<uint8_t>(e.syscall_named ? 1 : 0));
    w.string(e.results, kMaxNameBytes);
    w.string(e.results_detail, kMaxEndDetailBytes);
    writeTimes(w, e.times);
  }
  return w.take();
}

Result<FromSpawner> decodeFromSpawner(std::span<const uint8_t> bytes) {
  Reader r(bytes, "spawner message");
  uint8_t type = 0;
  if (!r.integer(type)) return r.error();
  FromSpawner out;
  switch (static_cast<FromSpawnerType>(type)) {
    case FromSpawnerType::kJobStarted: {
      JobStarted s;
      r.integer(s.job_id) && r.integer(s.pid) && readTimes(r, s.times);
      out = s;
      break;
    }
    case FromSpawnerType::kJobFailed: {
      JobFailed f;
      r.integer(f.job_id) && r.string(f.stage, kMaxStageBytes) && r.integer(f.error) &&
          r.string(f.detail, kMaxDetailBytes);
      out = std::move(f);
      break;
    }
    case FromSpawnerType::kJobEnded: {
      JobEnded e;
      uint8_t signaled = 0, cause = 0, named = 0;
      if (r.integer(e.job_id) && r.integer(signaled) && r.integer(e.code) && r.integer(cause) &&
          r.integer(e.cpu_us) && r.integer(e.peak_memory_bytes) && r.integer(e.wall_us) &&
          r.string(e.detail, kMaxEndDetailBytes) && r.integer(named) &&
          r.string(e.results, kMaxNameBytes) && r.string(e.results_detail, kMaxEndDetailBytes) &&
          readTimes(r, e.times)) {
        if (signaled > 1) r.fail("signaled flag is neither 0 nor 1");
        if (cause > static_cast<uint8_t>(EndCause::kProcessLimit)) r.fail("unknown end cause");
        if (named > 1) r.fail("syscall-named flag is neither 0 nor 1");
        if (named == 1 && cause != static_cast<uint8_t>(EndCause::kSyscall)) {
          r.fail("syscall-named flag on an end that is not a forbidden system call");
        }
      }
      e.signaled = signaled == 1;
      e.syscall_named = named == 1;
      e.cause = static_cast<EndCause>(cause);
      out = e;
      break;
    }
    case FromSpawnerType::kPoliciesReloaded: {
      PoliciesReloaded p;
      uint8_t ok = 0;
      if (r.integer(ok) && r.string(p.detail, kMaxDetailBytes) && ok > 1) {
        r.fail("ok flag is neither 0 nor 1");
      }
      p.ok = ok == 1;
      out = std::move(p);
      break;
    }
    default:
      return Error(Errc::kProtocol,
                   "malformed spawner message: unknown type " + std::to_string(type));
  }
  if (r.failed() || !r.finish()) return r.error();
  return out;
}

bool isPlainTermName(const std::string& term) noexcept {
  if (term.empty() || term.size() > 32) return false;
  for (char c : term) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

std::vector<uint8_t> encodeJobSpec(const JobSpec& spec) {
  Writer w;
  w.integer(spec.job_id);
  w.string(spec.interpreter);
  w.string(spec.policy);
  w.string(spec.script_name);
  w.string(spec.script);
  w.integer(static_cast<uint32_t>(spec.args.size()));
  for (const auto& a : spec.args) w.string(a);
  w.integer(static_cast<uint32_t>(spec.files.size()));
  for (const auto& f : spec.files) {
    w.string(f.name);
    w.integer(f.mode);
    w.string(f.data);
  }
  w.integer(spec.limits.cpu_seconds);
  w.integer(spec.limits.wall_seconds);
  w.integer(spec.limits.memory_bytes);
  w.integer(spec.limits.file_size_bytes);
  w.integer(spec.limits.open_files);
  w.integer(spec.limits.processes);
  w.string(spec.upload);
  w.integer(static_cast<uint32_t>(spec.results.size()));
  for (const auto& p : spec.results) w.string(p);
  w.integer(spec.results_max_files);
  w.integer(spec.results_max_bytes);
  w.integer(static_cast<uint8_t>(spec.terminal.enabled ? 1 : 0));
  w.integer(spec.terminal.rows);
  w.integer(spec.terminal.cols);
  w.string(spec.terminal.term);
  return w.take();
}

Result<JobSpec> decodeJobSpec(std::span<const uint8_t> bytes) {
  Reader r(bytes, "job spec");
  JobSpec s;
  constexpr size_t kMaxData = kMaxJobSpecBytes;
  uint32_t n = 0;
  if (!(r.integer(s.job_id) && r.string(s.interpreter, kMaxPathBytes) &&
        r.string(s.policy, kMaxNameBytes) && r.string(s.script_name, kMaxNameBytes) &&
        r.string(s.script, kMaxData) && r.count(n, kMaxArgs, 4))) {
    return r.error();
  }
  s.args.resize(n);
  for (auto& a : s.args) {
    if (!r.string(a, kMaxData)) return r.error();
  }
  if (!r.count(n, kMaxFiles, 12)) return r.error();
  s.files.resize(n);
  for (auto& f : s.files) {
    if (!(r.string(f.name, kMaxPathBytes) && r.integer(f.mode) && r.string(f.data, kMaxData))) {
      return r.error();
    }
  }
  auto& l = s.limits;
  if (!(r.integer(l.cpu_seconds) && r.integer(l.wall_seconds) && r.integer(l.memory_bytes) &&
        r.integer(l.file_size_bytes) && r.integer(l.open_files) && r.integer(l.processes) &&
        r.string(s.upload, kMaxNameBytes) && r.count(n, kMaxArgs, 4))) {
    return r.error();
  }
  s.results.resize(n);
  for (auto& p : s.results) {
    if (!r.string(p, kMaxPathBytes)) return r.error();
  }
  uint8_t terminal = 0;
  if (!(r.integer(s.results_max_files) && r.integer(s.results_max_bytes) && r.integer(terminal) &&
        r.integer(s.terminal.rows) && r.integer(s.terminal.cols) && r.string(s.terminal.term, 32) &&
        r.finish())) {
    return r.error();
  }
  if (terminal > 1)
    return Error(Errc::kProtocol, "job spec: terminal flag " + std::to_string(terminal));
  s.terminal.enabled = terminal == 1;
  if (s.terminal.enabled &&
      (s.terminal.rows == 0 || s.terminal.cols == 0 || !isPlainTermName(s.terminal.term))) {
    return Error(Errc::kProtocol, "job spec: invalid terminal size or TERM");
  }
  return s;
}

}  // namespace pyrun::sandbox
