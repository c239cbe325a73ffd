// A job policy as data: what a confined Python job may use (limits, network, files, system calls),
// loaded from admin-edited YAML with every mistake reported as `file:line:col: message`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun::policy {

// Where a value came from, for messages and `pyrun-policy explain`. line and column count from 1.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};
// "file:line:col"
std::string toString(const SourceLocation& where);

// One mistake in a policy file.
struct Diagnostic {
  SourceLocation where;
  std::string message;
};
// "file:line:col: message"
std::string toString(const Diagnostic& diagnostic);

struct Limits {
  uint32_t cpu_seconds = 10;
  uint32_t wall_seconds = 60;
  uint64_t memory_bytes = 512ull << 20;    // address space and memory cgroup, swap included
  uint32_t processes = 64;                 // pids cgroup / RLIMIT_NPROC
  uint64_t file_size_bytes = 64ull << 20;  // RLIMIT_FSIZE
  uint32_t open_files = 256;               // RLIMIT_NOFILE
  uint64_t output_bytes = 16ull << 20;     // stdout + stderr, enforced by the front
  uint64_t tmp_bytes = 64ull << 20;        // size of the private /tmp (and /dev/shm)
  uint32_t cpu_millicores = 1000;          // CPU bandwidth (cgroup cpu controller), 1000 = one core
  uint64_t workdir_bytes = 64ull << 20;    // size of the working directory /job (a tmpfs)
  // Files, directories and links /job may hold (the tmpfs's inodes, its root not counted). Unless
  // a policy sets it, one per kWorkdirBytesPerFile of workdir_bytes, at least kMinWorkdirFiles.
  uint32_t workdir_files = 4096;
};
// Derives Limits::workdir_files from workdir_bytes (mke2fs's default bytes per inode).
inline constexpr uint64_t kWorkdirBytesPerFile = 16u << 10;
inline constexpr uint32_t kMinWorkdirFiles = 64;

enum class NetworkMode {
  kNone,      // a fresh network namespace without any interface up
  kLoopback,  // a fresh network namespace with only `lo` up (the job talks to itself)
};

// Host paths bound into the job's root beyond the system paths. Absolute, normalised.
struct Filesystem {
  std::vector<std::string> read_only;
  std::vector<std::string> read_write;
};

enum class ActionKind { kAllow, kKillProcess, kErrno, kLog };
struct Action {
  ActionKind kind = ActionKind::kKillProcess;
  int errno_value = 0;  // for kErrno
  friend bool operator==(const Action&, const Action&) = default;
};
// "allow", "kill_process", "log", "errno EPERM"
std::string toString(const Action& action);

enum class CompareOp { kEq, kNe, kLt, kLe, kGt, kGe, kMaskedEq };
std::string_view toString(CompareOp op);

struct ArgCondition {
  unsigned index = 0;  // 0..5
  CompareOp op = CompareOp::kEq;
  uint64_t value = 0;
  uint64_t mask = 0;  // kMaskedEq only: (arg & mask) == value
  // The kernel reads this argument as a 32-bit int: the filter compares only the low 32 bits
  // (eq and masked_eq only), so garbage in the upper half neither matches nor evades a rule.
  bool is_32bit = false;
  friend bool operator==(const ArgCondition&, const ArgCondition&) = default;
};

// `syscall` with every condition true (none = always) gets `action`.
struct SyscallRule {
  std::string syscall;
  Action action;
  std::vector<ArgCondition> conditions;
  SourceLocation where;
};

struct AllowedSyscall {
  std::string syscall;
  std::string group;  // "@python-threads", or empty when listed by name
  SourceLocation where;
};

struct Seccomp {
  Action default_action;
  std::vector<AllowedSyscall> allowed;  // unconditional allows, one entry per syscall
  std::vector<SyscallRule> rules;       // conditional rules and unconditional non-allow rules
  // Syscalls that neither `allowed` nor `rules` mention and that answer ENOSYS (glibc's feature
  // probes and io_uring); filled by the loader from the built-in lists.
  std::vector<std::string> enosys;
};

struct Policy {
  std::string name;  // file name without directory and ".yaml"
  std::string file;  // path as given to loadPolicy
  std::string interpreter = "/usr/bin/python3";
  Limits limits;
  // Where each limit was set ("memory" -> location); absent ones are the built-in defaults.
  std::map<std::string, SourceLocation> limit_origins;
  NetworkMode network = NetworkMode::kNone;
  // Whether a client may ask for a pseudo-terminal (`pyrun -t`); false refuses it with an ERROR.
  bool terminal = true;
  Filesystem filesystem;
  Seccomp seccomp;
  std::vector<std::string> files;  // the policy file and every file it includes, in load order
};

// Maximum nesting of `include:` (a file including a file ... ) before it is an error.
inline constexpr int kMaxIncludeDepth = 8;

// Loads and validates the policy at path (following its includes). On failure the error is kPolicy
// and its detail holds one `file:line:col: message` line per mistake found.
Result<Policy> loadPolicy(const std::string& path);

// Called with each file's path (the one named and every include) before the loader opens it; an
// error refuses the file unread and becomes its diagnostic. The root spawner passes StrictModes,
// so that nothing another user could have written makes it open a file.
using PolicyFileCheck = std::function<Result<void>(const std::string& path)>;
// loadPolicy, with check run before each file is read.
Result<Policy> loadPolicy(const std::string& path, const PolicyFileCheck& check);

// The same, returning every mistake (empty on success) alongside the policy when valid.
struct LoadOutcome {
  std::optional<Policy> policy;
  std::vector<Diagnostic> diagnostics;
};
LoadOutcome loadPolicyWithDiagnostics(const std::string& path);
// The same, with check run before each file is read (see PolicyFileCheck).
LoadOutcome loadPolicyWithDiagnostics(const std::string& path, const PolicyFileCheck& check);

// The same for a top-level policy whose text is already in memory: path names it in messages and
// anchors its relative includes, which are read from disk as usual (a missing one is a
// "cannot include" diagnostic). The size limit of a policy file applies to text. Used by the
// fuzzer (tests/fuzz/policy_fuzz.cpp).
LoadOutcome loadPolicyTextWithDiagnostics(std::string_view text, const std::string& path);
Result<Policy> loadPolicyFromString(std::string_view text, const std::string& path);

// Parses a size: a whole number of bytes with an optional binary suffix K, M, G or T (optionally
// followed by "B" or "iB"): "512M", "1G", "4096". kInvalidArgument on anything else or overflow.
Result<uint64_t> parseSize(std::string_view text);
// 536870912 -> "512M"; values that are not a whole multiple print in bytes.
std::string formatSize(uint64_t bytes);

// A human summary: resolved limits with their origin, network, filesystem, and the allowed
// syscalls grouped by the group that brought them in (the seccomp filter's size is added by the
// caller, which owns the compiler).
std::string describePolicy(const Policy& policy);

}  // namespace pyrun::policy
