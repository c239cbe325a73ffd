// Policy values as text: locations, actions, sizes, and the `explain` summary.
#include "policy/policy.h"

#include <charconv>
#include <limits>
#include <set>
#include <sstream>

#include "policy/catalog.h"

namespace pyrun::policy {

std::string toString(const SourceLocation& where) {
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
}

std::string toString(const Diagnostic& diagnostic) {
  return toString(diagnostic.where) + ": " + diagnostic.message;
}

std::string toString(const Action& action) {
  switch (action.kind) {
    case ActionKind::kAllow:
      return "allow";
    case ActionKind::kKillProcess:
      return "kill_process";
    case ActionKind::kLog:
      return "log";
    case ActionKind::kErrno:
      return "errno " + std::string(errnoName(action.errno_value));
  }
  return "?";
}

std::string_view toString(CompareOp op) {
  switch (op) {
    case CompareOp::kEq:
      return "eq";
    case CompareOp::kNe:
      return "ne";
    case CompareOp::kLt:
      return "lt";
    case CompareOp::kLe:
      return "le";
    case CompareOp::kGt:
      return "gt";
    case CompareOp::kGe:
      return "ge";
    case CompareOp::kMaskedEq:
      return "masked_eq";
  }
  return "?";
}

Result<uint64_t> parseSize(std::string_view text) {
  auto invalid = [&] {
    // Appended, not "\"" + std::string(text): g++ 12 -O3 warns -Wrestrict on the latter (a
    // libstdc++ false positive, GCC PR 105329).
    std::string message = "\"";
    message.append(text);
    message += "\" is not a size (use bytes or a number with K, M, G or T, e.g. 512M)";
    return Error(Errc::kInvalidArgument, message);
  };
  uint64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc::result_out_of_range) {
    return Error(Errc::kInvalidArgument, "size \"" + std::string(text) + "\" is too large");
  }
  if (ec != std::errc() || end == text.data()) return invalid();
  std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
  unsigned shift = 0;
  if (!suffix.empty()) {
    switch (suffix[0]) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      default:
        return invalid();
    }
    suffix.remove_prefix(1);
    if (!suffix.empty() && suffix != "B" && suffix != "iB") return invalid();
  }
  if (shift != 0 && number > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return Error(Errc::kInvalidArgument, "size \"" + std::string(text) + "\" is too large");
  }
  return number << shift;
}

std::string formatSize(uint64_t bytes) {
  static constexpr std::pair<unsigned, char> kUnits[] = {
      {40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
  for (auto [shift, letter] : kUnits) {
    uint64_t unit = uint64_t{1} << shift;
    if (bytes != 0 && bytes % unit == 0) return std::to_string(bytes / unit) + letter;
  }
  return std::to_string(bytes);
}

namespace {

std::string origin(const Policy& policy, const std::string& key) {
  auto it = policy.limit_origins.find(key);
  if (it == policy.limit_origins.end()) return "(built-in default)";
  std::string out = "(";  // appended: see parseSize on g++ 12's -Wrestrict
  out += toString(it->second);
  out += ')';
  return out;
}

std::string describeCondition(const ArgCondition& c) {
  std::ostringstream out;
  out << "arg" << c.index;
  if (c.op == CompareOp::kMaskedEq) {
    out << " & 0x" << std::hex << c.mask << " == 0x" << c.value << std::dec;
  } else {
    out << " " << toString(c.op) << " 0x" << std::hex << c.value << std::dec;
  }
  if (c.is_32bit) out << " (low 32 bits)";
  return out.str();
}

}  // namespace

std::string describePolicy(const Policy& policy) {
  std::ostringstream out;
  const Limits& l = policy.limits;
  out << "policy " << policy.name << " (" << policy.file << ")\n";
  if (policy.files.size() > 1) {
    out << "includes:";
    for (size_t i = 1; i < policy.files.size(); ++i) out << " " << policy.files[i];
    out << "\n";
  }
  out << "interpreter: " << policy.interpreter << "\n";
  out << "limits:\n";
  out << "  cpu_seconds:  " << l.cpu_seconds << " " << origin(policy, "cpu_seconds") << "\n";
  out << "  wall_seconds: " << l.wall_seconds << " " << origin(policy, "wall_seconds") << "\n";
  out << "  memory:       " << formatSize(l.memory_bytes) << " " << origin(policy, "memory")
      << "\n";
  out << "  processes:    " << l.processes << " " << origin(policy, "processes") << "\n";
  out << "  file_size:    " << formatSize(l.file_size_bytes) << " " << origin(policy, "file_size")
      << "\n";
  out << "  open_files:   " << l.open_files << " " << origin(policy, "open_files") << "\n";
  out << "  output:       " << formatSize(l.output_bytes) << " " << origin(policy, "output")
      << "\n";
  out << "  tmp:          " << formatSize(l.tmp_bytes) << " " << origin(policy, "tmp") << "\n";
  out << "  cpus:         " << l.cpu_millicores / 1000 << "." << (l.cpu_millicores % 1000) / 100
      << (l.cpu_millicores % 100) / 10 << l.cpu_millicores % 10 << " " << origin(policy, "cpus")
      << "\n";
  out << "  workdir:      " << formatSize(l.workdir_bytes) << " " << origin(policy, "workdir")
      << "\n";
  out << "  workdir_files: " << l.workdir_files << " "
      << (policy.limit_origins.count("workdir_files") == 0 &&
                  policy.limit_origins.count("workdir") != 0
              ? "(1 per " + formatSize(kWorkdirBytesPerFile) + " of workdir)"
              : origin(policy, "workdir_files"))
      << "\n";
  out << "network: " << (policy.network == NetworkMode::kNone ? "none" : "loopback") << "\n";
  out << "terminal: " << (policy.terminal ? "allowed (pyrun -t)" : "refused") << "\n";
  out << "filesystem:\n";
  out << "  read_only:";
  for (const std::string& p : policy.filesystem.read_only) out << " " << p;
  out << (policy.filesystem.read_only.empty() ? " (none)\n" : "\n");
  out << "  read_write:";
  for (const std::string& p : policy.filesystem.read_write) out << " " << p;
  out << (policy.filesystem.read_write.empty() ? " (none)\n" : "\n");

  const Seccomp& s = policy.seccomp;
  out << "seccomp:\n";
  out << "  default_action: " << toString(s.default_action) << "\n";
  // Allowed syscalls by the group (or the file line) that brought them in.
  std::map<std::string, std::set<std::string>> by_group;
  for (const AllowedSyscall& a : s.allowed) {
    by_group[a.group.empty() ? "listed by name" : a.group].insert(a.syscall);
  }
  out << "  allowed (" << s.allowed.size() << "):\n";
  for (const auto& [group, names] : by_group) {
    out << "    " << group << " (" << names.size() << "):";
    for (const std::string& n : names) out << " " << n;
    out << "\n";
  }
  out << "  rules (" << s.rules.size() << "):\n";
  for (const SyscallRule& r : s.rules) {
    out << "    " << r.syscall;
    if (r.conditions.empty()) out << " always";
    for (size_t i = 0; i < r.conditions.size(); ++i) {
      out << (i == 0 ? " if " : " and ") << describeCondition(r.conditions[i]);
    }
    out << " -> " << toString(r.action) << "  [" << toString(r.where) << "]\n";
  }
  out << "  answer ENOSYS (" << s.enosys.size() << "):";
  for (const std::string& n : s.enosys) out << " " << n;
  out << "\n";
  return out.str();
}

}  // namespace pyrun::policy
