// YAML policy files -> Policy: includes, merging that extends a base, and validation that reports
// every mistake as file:line:col.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "common/file.h"
#include "policy/catalog.h"
#include "policy/job_root_paths.h"
#include "policy/policy.h"

namespace pyrun::policy {
namespace {

constexpr size_t kMaxPolicyFileBytes = 1u << 20;

std::string inQuotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string describeType(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return inQuotes(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// Parses a whole unsigned number: decimal, or hexadecimal with 0x.
std::optional<uint64_t> parseNumber(std::string_view text) {
  int base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// An unconditional verdict on a whole syscall, from an allow list or a rule without args.
struct Verdict {
  Action action;
  SourceLocation where;
  std::string group;
};

class Loader {
 public:
  Loader() = default;
  explicit Loader(PolicyFileCheck check) : check_(std::move(check)) {}

  // text, when given, is the content of the top-level file at path (its includes are still read
  // from disk, relative to path).
  LoadOutcome load(const std::string& path, std::optional<std::string_view> text = std::nullopt) {
    root_text_ = text;
    policy_.file = path;
    policy_.name = std::filesystem::path(path).stem().string();
    loadFile(path, 0, std::nullopt);
    if (diagnostics_.empty()) finish();
    LoadOutcome outcome;
    outcome.diagnostics = std::move(diagnostics_);
    if (outcome.diagnostics.empty()) outcome.policy = std::move(policy_);
    return outcome;
  }

 private:
  SourceLocation at(const YAML::Node& node) const {
    const YAML::Mark mark = node.Mark();
    return {file_, mark.line + 1, mark.column + 1};
  }
  void error(const SourceLocation& where, std::string message) {
    diagnostics_.push_back({where, std::move(message)});
  }
  void error(const YAML::Node& node, std::string message) { error(at(node), std::move(message)); }

  // Calls visit(key, value) for each entry of a mapping whose key is in `keys`; unknown and
  // repeated keys are errors (yaml-cpp keeps both copies of a repeated key, silently).
  template <class Visit>
  bool forEachEntry(const YAML::Node& map, std::string_view what,
                    std::initializer_list<std::string_view> keys, Visit visit) {
    if (!map.IsMap()) {
      error(map, std::string(what) + " must be a mapping, not " + describeType(map));
      return false;
    }
    std::map<std::string, SourceLocation> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      // A copy: it-> yields a proxy that dies at the end of the statement.
      YAML::Node key = it->first;
      if (!key.IsScalar()) {
        error(key, "keys of " + std::string(what) + " must be plain words");
        continue;
      }
      const std::string& name = key.Scalar();
      if (std::find(keys.begin(), keys.end(), name) == keys.end()) {
        std::string known;
        for (std::string_view k : keys) known += (known.empty() ? "" : ", ") + std::string(k);
        error(key, "unknown key " + inQuotes(name) + " in " + std::string(what) +
                       " (known: " + known + ")");
        continue;
      }
      auto [previous, inserted] = seen.emplace(name, at(key));
      if (!inserted) {
        error(key, "duplicate key " + inQuotes(name) + " in " + std::string(what) +
                       " (first at line " + std::to_string(previous->second.line) + ")");
        continue;
      }
      visit(name, key, it->second);
    }
    return true;
  }

  std::optional<uint64_t> unsignedValue(const YAML::Node& node, const std::string& what,
                                        uint64_t max) {
    std::optional<uint64_t> value;
    if (node.IsScalar()) value = parseNumber(node.Scalar());
    if (!value || *value == 0 || *value > max) {
      error(node, what + " must be a whole number from 1 to " + std::to_string(max) + ", not " +
                      describeType(node));
      return std::nullopt;
    }
    return value;
  }

  std::optional<uint64_t> sizeValue(const YAML::Node& node, const std::string& what) {
    if (!node.IsScalar()) {
      error(node, what + " must be a size such as 512M, not " + describeType(node));
      return std::nullopt;
    }
    Result<uint64_t> size = parseSize(node.Scalar());
    if (!size) {
      error(node, what + ": " + size.error().detail());
      return std::nullopt;
    }
    if (*size == 0) {
      error(node, what + " must be larger than 0");
      return std::nullopt;
    }
    return *size;
  }

  std::optional<Action> actionValue(const YAML::Node& node, const std::string& what,
                                    bool allow_allow) {
    if (!node.IsScalar()) {
      error(node, what + " must be kill_process, errno NAME, log" +
                      std::string(allow_allow ? " or allow" : "") + ", not " + describeType(node));
      return std::nullopt;
    }
    const std::string& text = node.Scalar();
    if (text == "kill_process") return Action{ActionKind::kKillProcess, 0};
    if (text == "log") return Action{ActionKind::kLog, 0};
    if (text == "allow") {
      if (allow_allow) return Action{ActionKind::kAllow, 0};
      error(node, what +
                      " cannot be allow: that would permit every system call not listed "
                      "(use log to learn what a program needs)");
      return std::nullopt;
    }
    if (text.rfind("errno ", 0) == 0) {
      std::string name = text.substr(6);
      if (auto value = errnoByName(name)) return Action{ActionKind::kErrno, *value};
      error(node, "unknown errno name " + inQuotes(name) + " in " + what);
      return std::nullopt;
    }
    error(node, "unknown action " + inQuotes(text) + " in " + what +
                    " (use kill_process, errno NAME, log" +
                    std::string(allow_allow ? " or allow)" : ")"));
    return std::nullopt;
  }

  // A number, a constant name, or names and numbers joined by '|'.
  std::optional<uint64_t> argumentValue(const YAML::Node& node, const std::string& what) {
    if (!node.IsScalar()) {
      error(node, what + " must be a number or a constant name, not " + describeType(node));
      return std::nullopt;
    }
    std::string_view text = node.Scalar();
    uint64_t value = 0;
    while (true) {
      size_t bar = text.find('|');
      std::string_view part = text.substr(0, bar);
      while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
      while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
      std::optional<uint64_t> v = parseNumber(part);
      if (!v) v = constantByName(part);
      if (!v) {
        if (!part.empty() && (std::isdigit(static_cast<unsigned char>(part[0])) != 0)) {
          error(node, what + ": " + inQuotes(part) + " is not a number");
        } else {
          error(node, "unknown constant " + inQuotes(part) + " in " + what);
        }
        return std::nullopt;
      }
      value |= *v;
      if (bar == std::string_view::npos) break;
      text.remove_prefix(bar + 1);
    }
    return value;
  }

  std::optional<std::string> absolutePath(const YAML::Node& node, const std::string& what) {
    if (!node.IsScalar() || node.Scalar().empty() || node.Scalar()[0] != '/') {
      error(node, what + " must be an absolute path, not " + describeType(node));
      return std::nullopt;
    }
    std::filesystem::path p(node.Scalar());
    for (const auto& part : p) {
      if (part == "..") {
        error(node, what + " must not contain \"..\": " + inQuotes(node.Scalar()));
        return std::nullopt;
      }
    }
    std::string normal = p.lexically_normal().string();
    if (normal.size() > 1 && normal.back() == '/') normal.pop_back();
    return normal;
  }

  // ---- files and includes ----

  void loadFile(const std::string& path, int depth, std::optional<SourceLocation> included_at) {
    std::error_code ec;
    std::filesystem::path canonical = std::filesystem::weakly_canonical(path, ec);
    std::string key = ec ? path : canonical.string();
    if (std::find(stack_.begin(), stack_.end(), key) != stack_.end()) {
      std::string chain;
      for (const std::string& f : stack_names_) chain += f + " includes ";
      error(*included_at, "include loop: " + chain + path);
      return;
    }
    if (loaded_.count(key) != 0) return;  // a diamond: the shared base is applied once
    if (check_) {
      if (auto allowed = check_(path); !allowed) {
        if (included_at) {
          error(*included_at, "cannot include " + inQuotes(path) + ": " + allowed.error().detail());
        } else {
          error({path, 1, 1}, allowed.error().detail());
        }
        return;
      }
    }
    Result<std::string> text =
        (!included_at && root_text_) ? textInMemory(path) : readFile(path, kMaxPolicyFileBytes);
    if (!text) {
      if (included_at) {
        error(*included_at, "cannot include " + inQuotes(path) + ": " + text.error().detail());
      } else {
        error({path, 1, 1}, text.error().detail());
      }
      return;
    }
    YAML::Node root;
    try {
      root = YAML::Load(*text);
    } catch (const YAML::Exception& e) {
      error({path, e.mark.line + 1, e.mark.column + 1}, "YAML syntax: " + e.msg);
      return;
    }
    loaded_.insert(key);
    policy_.files.push_back(path);
    stack_.push_back(key);
    stack_names_.push_back(path);
    std::string saved_file = file_;
    file_ = path;
    if (root.IsNull()) {
      error({path, 1, 1}, "the policy file is empty (it needs at least version: 1)");
    } else {
      loadDocument(root, path, depth);
    }
    file_ = saved_file;
    stack_.pop_back();
    stack_names_.pop_back();
  }

  // The same size limit as a file on disk, so a caller holding the text cannot make the loader
  // parse more than loadPolicy would.
  Result<std::string> textInMemory(const std::string& path) const {
    if (root_text_->size() > kMaxPolicyFileBytes) {
      return Error(Errc::kLimit,
                   path + ": larger than " + std::to_string(kMaxPolicyFileBytes) + " bytes");
    }
    return std::string(*root_text_);
  }

  void loadDocument(const YAML::Node& root, const std::string& path, int depth) {
    if (!root.IsMap()) {
      error(root, "a policy must be a mapping of keys (version, limits, seccomp, ...), not " +
                      describeType(root));
      return;
    }
    // Includes first: this file then extends what they define and may override their limits.
    bool has_version = false;
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "include") {
        loadIncludes(it->second, path, depth);
        break;
      }
    }
    forEachEntry(root, "the policy",
                 {"version", "include", "interpreter", "limits", "network", "terminal",
                  "filesystem", "seccomp"},
                 [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
                   if (key == "version") {
                     has_version = true;
                     if (!value.IsScalar() || value.Scalar() != "1") {
                       error(value, "unsupported policy version " + describeType(value) +
                                        " (this pyrun reads version 1)");
                     }
                   } else if (key == "interpreter") {
                     if (auto p = absolutePath(value, "interpreter")) {
                       policy_.interpreter = *p;
                       interpreter_where_ = at(value);
                     }
                   } else if (key == "limits") {
                     loadLimits(value);
                   } else if (key == "network") {
                     loadNetwork(value);
                   } else if (key == "terminal") {
                     loadTerminal(value);
                   } else if (key == "filesystem") {
                     loadFilesystem(value);
                   } else if (key == "seccomp") {
                     if (depth == 0) seccomp_key_ = at(key_node);
                     loadSeccomp(value);
                   }
                 });
    if (!has_version) error(root, "missing \"version: 1\" at the top of the policy");
    if (depth == 0 && !root_location_) root_location_ = at(root);
  }

  void loadIncludes(const YAML::Node& list, const std::string& path, int depth) {
    if (!list.IsSequence()) {
      error(list, "include must be a list of policy files, not " + describeType(list));
      return;
    }
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    for (const YAML::Node& entry : list) {
      if (!entry.IsScalar() || entry.Scalar().empty()) {
        error(entry, "an include entry must be a file path, not " + describeType(entry));
        continue;
      }
      if (depth + 1 > kMaxIncludeDepth) {
        error(entry, "includes nest deeper than " + std::to_string(kMaxIncludeDepth) +
                         " files; flatten them");
        continue;
      }
      // Relative to the including file, so a policy directory can move as a whole.
      std::filesystem::path target(entry.Scalar());
      if (target.is_relative()) target = dir / target;
      loadFile(target.lexically_normal().string(), depth + 1, at(entry));
    }
  }

  // "cpus: 1.5" -> 1500 millicores: a positive decimal with at most three decimals, at most 1024.
  std::optional<uint32_t> cpusValue(const YAML::Node& value, const std::string& what) {
    const std::string text = value.IsScalar() ? value.Scalar() : std::string();
    size_t dot = text.find('.');
    std::string whole = text.substr(0, dot);
    std::string frac = dot == std::string::npos ? std::string() : text.substr(dot + 1);
    auto digits = [](const std::string& t) {
      return std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    bool ok = value.IsScalar() && !whole.empty() && whole.size() <= 4 && digits(whole) &&
              frac.size() <= 3 && digits(frac) && (dot == std::string::npos || !frac.empty());
    uint32_t milli = 0;
    if (ok) {
      milli = static_cast<uint32_t>(std::stoul(whole)) * 1000;
      if (!frac.empty()) milli += static_cast<uint32_t>(std::stoul((frac + "00").substr(0, 3)));
      ok = milli > 0 && milli <= 1024 * 1000;
    }
    if (!ok) {
      error(value, what +
                       " must be a number of cores between 0.001 and 1024 (e.g. 1 or 0.5), not " +
                       (value.IsScalar() ? "\"" + text + "\"" : describeType(value)));
      return std::nullopt;
    }
    return milli;
  }

  void loadLimits(const YAML::Node& map) {
    Limits& l = policy_.limits;
    forEachEntry(map, "limits",
                 {"cpu_seconds", "wall_seconds", "memory", "processes", "file_size", "open_files",
                  "output", "tmp", "cpus", "workdir", "workdir_files"},
                 [&](const std::string& key, const YAML::Node&, const YAML::Node& value) {
                   const std::string what = "limits." + key;
                   constexpr uint64_t k32 = std::numeric_limits<uint32_t>::max();
                   bool ok = false;
                   auto set32 = [&](uint32_t& field) {
                     if (auto v = unsignedValue(value, what, k32)) {
                       field = static_cast<uint32_t>(*v);
                       ok = true;
                     }
                   };
                   auto setSize = [&](uint64_t& field) {
                     if (auto v = sizeValue(value, what)) {
                       field = *v;
                       ok = true;
                     }
                   };
                   if (key == "cpu_seconds") set32(l.cpu_seconds);
                   if (key == "wall_seconds") set32(l.wall_seconds);
                   if (key == "processes") set32(l.processes);
                   if (key == "open_files") set32(l.open_files);
                   if (key == "memory") setSize(l.memory_bytes);
                   if (key == "file_size") setSize(l.file_size_bytes);
                   if (key == "output") setSize(l.output_bytes);
                   if (key == "tmp") setSize(l.tmp_bytes);
                   if (key == "workdir") setSize(l.workdir_bytes);
                   if (key == "workdir_files") set32(l.workdir_files);
                   if (key == "cpus") {
                     if (auto v = cpusValue(value, what)) {
                       l.cpu_millicores = *v;
                       ok = true;
                     }
                   }
                   if (ok) policy_.limit_origins[key] = at(value);
                 });
  }

  void loadNetwork(const YAML::Node& value) {
    if (value.IsScalar() && value.Scalar() == "none") {
      policy_.network = NetworkMode::kNone;
    } else if (value.IsScalar() && value.Scalar() == "loopback") {
      policy_.network = NetworkMode::kLoopback;
    } else {
      error(value, "network must be none or loopback, not " + describeType(value));
    }
  }

  void loadTerminal(const YAML::Node& value) {
    if (value.IsScalar() && value.Tag() != "!" && value.Scalar() == "true") {
      policy_.terminal = true;
    } else if (value.IsScalar() && value.Tag() != "!" && value.Scalar() == "false") {
      policy_.terminal = false;
    } else {
      error(value, "terminal must be true or false, not " + describeType(value));
    }
  }

  void loadFilesystem(const YAML::Node& map) {
    forEachEntry(
        map, "filesystem", {"read_only", "read_write"},
        [&](const std::string& key, const YAML::Node&, const YAML::Node& list) {
          const std::string what = "filesystem." + key;
          if (!list.IsSequence()) {
            error(list, what + " must be a list of absolute paths, not " + describeType(list));
            return;
          }
          for (const YAML::Node& entry : list) {
            auto p = absolutePath(entry, "an entry of " + what);
            if (!p) continue;
            auto [it, inserted] = paths_.emplace(*p, std::make_pair(key, at(entry)));
            if (!inserted) {
              error(entry, (it->second.first == key ? "duplicate path " : "conflicting path ") +
                               inQuotes(*p) + ": already in filesystem." + it->second.first +
                               " at " + toString(it->second.second));
              continue;
            }
            (key == "read_only" ? policy_.filesystem.read_only : policy_.filesystem.read_write)
                .push_back(*p);
          }
        });
  }

  // ---- seccomp ----

  void loadSeccomp(const YAML::Node& map) {
    forEachEntry(map, "seccomp", {"default_action", "allow", "rules"},
                 [&](const std::string& key, const YAML::Node&, const YAML::Node& value) {
                   if (key == "default_action") {
                     auto action = actionValue(value, "seccomp.default_action", false);
                     if (!action) {
                       default_failed_ = true;
                       return;
                     }
                     if (default_where_ && !(policy_.seccomp.default_action == *action)) {
                       // Replacing a base's default action would silently widen (or narrow)
                       // everything it did not list.
                       error(value, "default_action " + toString(*action) + " conflicts with " +
                                        toString(policy_.seccomp.default_action) + " set at " +
                                        toString(*default_where_));
                       return;
                     }
                     policy_.seccomp.default_action = *action;
                     if (!default_where_) default_where_ = at(value);
                   } else if (key == "allow") {
                     loadAllow(value);
                   } else if (key == "rules") {
                     loadRules(value);
                   }
                 });
  }

  // A syscall name, with a "did you mean" when it is a typo.
  bool checkSyscallName(const YAML::Node& node, const std::string& name) {
    if (isKnownSyscall(name)) return true;
    std::string message = "unknown syscall " + inQuotes(name);
    if (auto suggestion = suggestSyscall(name))
      message += " (did you mean " + inQuotes(*suggestion) + "?)";
    error(node, message);
    return false;
  }

  void addVerdict(const std::string& syscall, const Action& action, const SourceLocation& where,
                  const std::string& group) {
    auto [it, inserted] = verdicts_.emplace(syscall, Verdict{action, where, group});
    if (inserted || it->second.action == action) return;
    std::string first = toString(it->second.action) + " at " + toString(it->second.where);
    if (!it->second.group.empty()) first += " (by " + it->second.group + ")";
    error(where, "conflicting rule: " + inQuotes(syscall) + " is " + toString(action) +
                     (group.empty() ? "" : " (by " + group + ")") + " here but " + first);
  }

  void loadAllow(const YAML::Node& list) {
    if (!list.IsSequence()) {
      error(list,
            "seccomp.allow must be a list of syscall names and @groups, not " + describeType(list));
      return;
    }
    std::map<std::string, SourceLocation> listed;
    for (const YAML::Node& entry : list) {
      if (!entry.IsScalar()) {
        error(entry, "an entry of seccomp.allow must be a syscall name or @group, not " +
                         describeType(entry));
        continue;
      }
      const std::string& name = entry.Scalar();
      auto [previous, inserted] = listed.emplace(name, at(entry));
      if (!inserted) {
        error(entry, "duplicate entry " + inQuotes(name) + " in seccomp.allow (first at " +
                         toString(previous->second) + ")");
        continue;
      }
      if (!name.empty() && name[0] == '@') {
        const SyscallGroup* group = findGroup(name);
        if (group == nullptr) {
          std::string known;
          for (const SyscallGroup& g : syscallGroups())
            known += (known.empty() ? "" : ", ") + std::string(g.name);
          error(entry, "unknown syscall group " + inQuotes(name) + " (known: " + known + ")");
          continue;
        }
        for (std::string_view s : group->syscalls) {
          addVerdict(std::string(s), Action{ActionKind::kAllow, 0}, at(entry), name);
        }
        for (const GroupRule& r : groupRules(name)) {
          SyscallRule rule;
          rule.syscall = std::string(r.syscall);
          rule.action = r.errno_value == 0 ? Action{ActionKind::kAllow, 0}
                                           : Action{ActionKind::kErrno, r.errno_value};
          // The argument is an int: compared on its low 32 bits, as loadCondition does.
          rule.conditions.push_back(
              {r.index, CompareOp::kMaskedEq, r.value & 0xffffffffu, 0xffffffffu, true});
          rule.where = at(entry);
          group_rules_.push_back(std::move(rule));
        }
      } else if (checkSyscallName(entry, name)) {
        addVerdict(name, Action{ActionKind::kAllow, 0}, at(entry), "");
      }
    }
  }

  std::optional<ArgCondition> loadCondition(const std::string& syscall, const YAML::Node& map) {
    ArgCondition c;
    bool ok = true;
    std::optional<CompareOp> op;
    std::optional<uint64_t> value;
    std::optional<uint64_t> mask;
    std::optional<YAML::Node> mask_node;
    std::optional<YAML::Node> op_node;
    std::optional<unsigned> index;
    if (!forEachEntry(map, "an argument condition", {"index", "op", "value", "mask"},
                      [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                        if (key == "index") {
                          auto n = v.IsScalar() ? parseNumber(v.Scalar()) : std::nullopt;
                          if (!n || *n > 5) {
                            error(v, "argument index must be 0 to 5, not " + describeType(v));
                            ok = false;
                          } else {
                            index = static_cast<unsigned>(*n);
                          }
                        } else if (key == "op") {
                          op_node = v;
                          static const std::pair<std::string_view, CompareOp> kOps[] = {
                              {"eq", CompareOp::kEq},
                              {"ne", CompareOp::kNe},
                              {"lt", CompareOp::kLt},
                              {"le", CompareOp::kLe},
                              {"gt", CompareOp::kGt},
                              {"ge", CompareOp::kGe},
                              {"masked_eq", CompareOp::kMaskedEq}};
                          for (auto [name, o] : kOps) {
                            if (v.IsScalar() && v.Scalar() == name) op = o;
                          }
                          if (!op) {
                            error(v, "unknown operator " + describeType(v) +
                                         " (use eq, ne, lt, le, gt, ge or masked_eq)");
                            ok = false;
                          }
                        } else if (key == "value") {
                          value = argumentValue(v, "the condition's value");
                          ok = ok && value.has_value();
                        } else if (key == "mask") {
                          mask_node = v;
                          mask = argumentValue(v, "the condition's mask");
                          ok = ok && mask.has_value();
                        }
                      })) {
      return std::nullopt;
    }
    if (!ok) return std::nullopt;
    if (!index) {
      error(map, "an argument condition needs an index (0 to 5)");
      return std::nullopt;
    }
    if (!value) {
      error(map, "an argument condition needs a value");
      return std::nullopt;
    }
    c.index = *index;
    c.op = op.value_or(CompareOp::kEq);
    c.value = *value;
    if (c.op == CompareOp::kMaskedEq) {
      if (!mask) {
        error(map, "op masked_eq needs a mask");
        return std::nullopt;
      }
      c.mask = *mask;
      if ((c.value & ~c.mask) != 0) {
        error(map, "value has bits outside the mask: (arg & mask) == value could never hold");
        return std::nullopt;
      }
    } else if (mask) {
      error(*mask_node, "mask is only meaningful with op masked_eq");
      return std::nullopt;
    }
    c.is_32bit = isArgument32Bit(syscall, c.index);
    if (c.is_32bit) {
      // The kernel ignores the upper half of an int argument, so a full 64-bit comparison could be
      // evaded (ne) or spuriously fail (eq with a sign-extended value): compare the low half only,
      // which libseccomp can express for eq and masked_eq alone.
      if (c.op != CompareOp::kEq && c.op != CompareOp::kMaskedEq) {
        error(op_node ? *op_node : map, "operator " + std::string(toString(c.op)) +
                                            " cannot be used on argument " +
                                            std::to_string(c.index) + " of " + syscall +
                                            ": it is a 32-bit int compared on its low 32 bits, "
                                            "which allows eq and masked_eq only");
        return std::nullopt;
      }
      if (c.op == CompareOp::kEq) {
        c.op = CompareOp::kMaskedEq;
        c.mask = 0xffffffffu;
      }
      c.mask &= 0xffffffffu;
      c.value &= 0xffffffffu;
    }
    return c;
  }

  void loadRules(const YAML::Node& list) {
    if (!list.IsSequence()) {
      error(list, "seccomp.rules must be a list of rules, not " + describeType(list));
      return;
    }
    for (const YAML::Node& entry : list) {
      SyscallRule rule;
      rule.where = at(entry);
      rule.action = Action{ActionKind::kAllow, 0};
      bool ok = true;
      bool has_syscall = false;
      std::optional<YAML::Node> args;
      if (!forEachEntry(entry, "a seccomp rule", {"syscall", "action", "args"},
                        [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
                          if (key == "syscall") {
                            has_syscall = true;
                            if (!v.IsScalar()) {
                              error(v, "a rule's syscall must be one syscall name, not " +
                                           describeType(v));
                              ok = false;
                            } else if (!checkSyscallName(v, v.Scalar())) {
                              ok = false;
                            } else {
                              rule.syscall = v.Scalar();
                              rule.where = at(v);
                            }
                          } else if (key == "action") {
                            auto a = actionValue(v, "a rule's action", true);
                            if (a) rule.action = *a;
                            ok = ok && a.has_value();
                          } else if (key == "args") {
                            args = v;
                          }
                        })) {
        continue;
      }
      if (!has_syscall) {
        error(entry, "a seccomp rule needs a syscall");
        continue;
      }
      if (!ok) continue;
      if (args) {
        if (!args->IsSequence()) {
          error(*args, "a rule's args must be a list of conditions, not " + describeType(*args));
          continue;
        }
        std::set<unsigned> indexes;
        for (const YAML::Node& cnode : *args) {
          auto c = loadCondition(rule.syscall, cnode);
          if (!c) {
            ok = false;
            continue;
          }
          if (!indexes.insert(c->index).second) {
            error(cnode, "argument " + std::to_string(c->index) +
                             " is compared twice in one rule (use masked_eq to test several bits)");
            ok = false;
            continue;
          }
          rule.conditions.push_back(*c);
        }
        if (!ok) continue;
      }
      if (rule.conditions.empty()) {
        bool duplicate = false;
        for (const SyscallRule& other : policy_.seccomp.rules) {
          if (other.syscall == rule.syscall && other.conditions.empty() &&
              other.action == rule.action) {
            error(rule.where, "duplicate rule for " + inQuotes(rule.syscall) + " (first at " +
                                  toString(other.where) + ")");
            duplicate = true;
            break;
          }
        }
        if (duplicate) continue;
        addVerdict(rule.syscall, rule.action, rule.where, "");
        if (rule.action.kind != ActionKind::kAllow) policy_.seccomp.rules.push_back(rule);
        continue;
      }
      std::sort(rule.conditions.begin(), rule.conditions.end(),
                [](const ArgCondition& a, const ArgCondition& b) { return a.index < b.index; });
      for (const SyscallRule& other : policy_.seccomp.rules) {
        if (other.syscall != rule.syscall || other.conditions != rule.conditions) continue;
        if (other.action == rule.action) {
          error(rule.where, "duplicate rule for " + inQuotes(rule.syscall) + " (first at " +
                                toString(other.where) + ")");
        } else {
          error(rule.where, "conflicting rule for " + inQuotes(rule.syscall) + ": " +
                                toString(rule.action) + " here but " + toString(other.action) +
                                " with the same conditions at " + toString(other.where));
        }
        ok = false;
        break;
      }
      if (ok) policy_.seccomp.rules.push_back(rule);
    }
  }

  // Checks across files, then fills the allow list and the ENOSYS set.
  void finish() {
    deriveWorkdirFiles();
    checkInterpreterInJobRoot();
    Seccomp& s = policy_.seccomp;
    if (!default_where_) {
      if (!default_failed_) {
        error(seccomp_key_.value_or(root_location_.value_or(SourceLocation{policy_.file, 1, 1})),
              "seccomp.default_action is required (kill_process, errno NAME or log): a policy "
              "must say what happens to a system call it does not list");
      }
      return;
    }
    for (const SyscallRule& r : s.rules) {
      if (r.conditions.empty()) continue;
      auto it = verdicts_.find(r.syscall);
      if (it != verdicts_.end()) {
        // libseccomp lets an unconditional verdict win over every conditional rule of the same
        // syscall, so this rule would silently do nothing.
        error(r.where, "conflicting rule: the conditional rule for " + inQuotes(r.syscall) +
                           " would never apply, because " + inQuotes(r.syscall) + " is " +
                           toString(it->second.action) + " unconditionally at " +
                           toString(it->second.where) +
                           (it->second.group.empty() ? "" : " (by " + it->second.group + ")"));
      }
    }
    if (!diagnostics_.empty()) return;
    addGroupRules();
    std::set<std::string> mentioned;
    for (const auto& [name, verdict] : verdicts_) {
      mentioned.insert(name);
      if (verdict.action.kind == ActionKind::kAllow) {
        s.allowed.push_back({name, verdict.group, verdict.where});
      }
    }
    for (const SyscallRule& r : s.rules) mentioned.insert(r.syscall);
    for (std::string_view name : enosysByDefault()) {
      if (mentioned.count(std::string(name)) == 0) s.enosys.emplace_back(name);
    }
  }

  // The conditional rules groups bring in (ioctl by request), after the policy's own: a syscall the
  // policy allows or denies unconditionally keeps that verdict, and a rule of the policy with the
  // same conditions wins over the group's.
  void addGroupRules() {
    Seccomp& s = policy_.seccomp;
    for (SyscallRule& rule : group_rules_) {
      if (verdicts_.count(rule.syscall) != 0) continue;
      bool taken = false;
      for (size_t i = 0; i < s.rules.size() && !taken; ++i) {
        taken = s.rules[i].syscall == rule.syscall && s.rules[i].conditions == rule.conditions;
      }
      if (!taken) s.rules.push_back(std::move(rule));
    }
    group_rules_.clear();
  }

  // A policy whose interpreter the job's root does not hold would load, and every job would fail
  // at execve with "No such file or directory".
  void checkInterpreterInJobRoot() {
    std::vector<std::string> extras = policy_.filesystem.read_only;
    extras.insert(extras.end(), policy_.filesystem.read_write.begin(),
                  policy_.filesystem.read_write.end());
    if (auto why = interpreterOutsideJobRoot(policy_.interpreter, extras)) {
      const SourceLocation file_start{policy_.file, 1, 1};
      error(interpreter_where_.value_or(root_location_.value_or(file_start)), *why);
    }
  }

  // A policy that sizes /job but does not count its files gets a file bound in proportion, so that
  // a small working directory cannot be filled with empty files (which use no size at all).
  void deriveWorkdirFiles() {
    Limits& l = policy_.limits;
    const auto& origins = policy_.limit_origins;
    if (origins.count("workdir") == 0 || origins.count("workdir_files") != 0) return;
    uint64_t files = std::max<uint64_t>(l.workdir_bytes / kWorkdirBytesPerFile, kMinWorkdirFiles);
    l.workdir_files =
        static_cast<uint32_t>(std::min<uint64_t>(files, std::numeric_limits<uint32_t>::max()));
  }

  std::vector<SyscallRule> group_rules_;  // groupRules() of the groups allowed, see addGroupRules
  PolicyFileCheck check_;                 // before each file is read; empty: none
  std::optional<std::string_view> root_text_;
  Policy policy_;
  std::vector<Diagnostic> diagnostics_;
  std::string file_;
  std::vector<std::string> stack_;        // canonical paths of the files being loaded
  std::vector<std::string> stack_names_;  // the same, as written
  std::set<std::string> loaded_;
  std::map<std::string, Verdict> verdicts_;
  std::map<std::string, std::pair<std::string, SourceLocation>> paths_;
  std::optional<SourceLocation> default_where_;
  bool default_failed_ = false;
  std::optional<SourceLocation> seccomp_key_;
  std::optional<SourceLocation> root_location_;
  std::optional<SourceLocation> interpreter_where_;
};

}  // namespace

LoadOutcome loadPolicyWithDiagnostics(const std::string& path) {
  Loader loader;
  return loader.load(path);
}

LoadOutcome loadPolicyWithDiagnostics(const std::string& path, const PolicyFileCheck& check) {
  Loader loader(check);
  return loader.load(path);
}

LoadOutcome loadPolicyTextWithDiagnostics(std::string_view text, const std::string& path) {
  Loader loader;
  return loader.load(path, text);
}

namespace {

Result<Policy> toResult(LoadOutcome outcome) {
  if (!outcome.policy) {
    std::string detail;
    for (const Diagnostic& d : outcome.diagnostics) {
      if (!detail.empty()) detail += "\n";
      detail += toString(d);
    }
    return Error(Errc::kPolicy, detail);
  }
  return std::move(*outcome.policy);
}

}  // namespace

Result<Policy> loadPolicy(const std::string& path) {
  return toResult(loadPolicyWithDiagnostics(path));
}

Result<Policy> loadPolicy(const std::string& path, const PolicyFileCheck& check) {
  return toResult(loadPolicyWithDiagnostics(path, check));
}

Result<Policy> loadPolicyFromString(std::string_view text, const std::string& path) {
  return toResult(loadPolicyTextWithDiagnostics(text, path));
}

}  // namespace pyrun::policy
