// Job cgroups over v1 and v2: detection, per-job creation and limits, kill, statistics, removal.
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "common/dir.h"
#include "common/log.h"

namespace pyrun::sandbox {

// Which files a hierarchy's job directory carries limits in (v1: one controller per hierarchy).
enum class Controller { kUnified, kMemory, kPids, kCpu, kFreezer };

struct Hierarchy {
  Controller controller;
  std::string base;  // <cgroup dir>/<subtree>
};

// The detected setup. Immutable once built; shared by the Cgroups and every JobCgroup.
class CgroupBackend {
 public:
  CgroupVersion version = CgroupVersion::kNone;
  std::string description;
  std::vector<Hierarchy> hierarchies;  // v2: one kUnified entry
  bool memory = false, pids = false, cpu = false;
  bool memsw = false;    // v1: memory.memsw.* exists (swap accounting on)
  bool freezer = false;  // v1: a freezer hierarchy is among the hierarchies
  bool use_cgroup_kill = true;  // v2: use cgroup.kill where the kernel has it
};

namespace {

using Clock = std::chrono::steady_clock;

// How long killAll and remove wait for the kernel: SIGKILLed tasks leave within milliseconds unless
// stuck in uninterruptible I/O, which these bounds turn into an error instead of a hang.
constexpr auto kDrainTimeout = std::chrono::seconds(10);
constexpr auto kRemoveTimeout = std::chrono::seconds(5);
constexpr uint64_t kCpuPeriodUs = 100000;

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

Error sandboxError(std::string detail) { return Error(Errc::kSandbox, std::move(detail)); }

Error sandboxErrno(const std::string& what, int err) {
  return sandboxError(what + ": " + std::strerror(err));
}

// cgroup files are small and their size is reported as 0 (or 4096): read until end of file.
Result<std::string> readSmall(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return sandboxErrno("open " + path, errno);
  auto text = readAll(fd.get(), path, 4u << 20);
  if (!text) return sandboxError(text.error().detail());
  return text;
}

// One write(2): the kernel parses each write to a control file as a whole.
Result<void> writeControl(const std::string& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return sandboxErrno("open " + path, errno);
  ssize_t n;
  do {
    n = ::write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return sandboxErrno("write '" + std::string(value) + "' to " + path, errno);
  return {};
}

// "key value" lines (memory.events, pids.events, memory.oom_control, cgroup.events).
std::optional<uint64_t> keyedValue(std::string_view text, std::string_view key) {
  std::istringstream in{std::string(text)};
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return std::nullopt;
}

Result<uint64_t> readNumber(const std::string& path) {
  auto text = readSmall(path);
  if (!text) return text.error();
  try {
    return std::stoull(*text);
  } catch (const std::exception&) {
    return sandboxError(path + ": not a number: '" + *text + "'");
  }
}

Result<std::vector<pid_t>> readPids(const std::string& dir) {
  auto text = readSmall(dir + "/cgroup.procs");
  if (!text) return text.error();
  std::vector<pid_t> pids;
  std::istringstream in(*text);
  long pid = 0;
  while (in >> pid) pids.push_back(static_cast<pid_t>(pid));
  return pids;
}

std::set<std::string> splitWords(std::string_view text, char sep) {
  std::set<std::string> words;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) words.emplace(text.substr(start, end - start));
    start = end + 1;
  }
  return words;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void pause(Clock::duration& step) {
  std::this_thread::sleep_for(step);
  step = std::min<Clock::duration>(step * 2, std::chrono::milliseconds(20));
}

// ---- the process's view: mounts and its own cgroups ----

struct Mount {
  std::string root;   // the cgroup path shown at the mount point
  std::string point;  // where it is mounted
  bool v2 = false;
  std::set<std::string> controllers;  // v1: from the super options
};

// mountinfo: "id parent maj:min root mountpoint opts [optional...] - fstype source superopts".
std::vector<Mount> cgroupMounts() {
  std::vector<Mount> mounts;
  auto text = readSmall("/proc/self/mountinfo");
  if (!text) return mounts;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    std::string id, parent, dev, root, point, opts, word;
    in >> id >> parent >> dev >> root >> point >> opts;
    while (in >> word && word != "-") {
    }
    std::string fstype, source, super;
    in >> fstype >> source >> super;
    if (fstype == "cgroup2") {
      mounts.push_back({root, point, true, {}});
    } else if (fstype == "cgroup") {
      mounts.push_back({root, point, false, splitWords(super, ',')});
    }
  }
  return mounts;
}

// /proc/self/cgroup: "hierarchy-id:controllers:path", v2 being "0::path". Keyed by controller,
// "" for v2.
std::map<std::string, std::string> ownCgroups() {
  std::map<std::string, std::string> own;
  auto text = readSmall("/proc/self/cgroup");
  if (!text) return own;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controllers.empty()) {
      own[""] = path;
    } else {
      for (const auto& c : splitWords(controllers, ',')) own[c] = path;
    }
  }
  return own;
}

// Our cgroup's directory in a mount, or nullopt when the mount does not show it.
std::optional<std::string> dirInMount(const Mount& m, const std::string& own_path) {
  if (m.root == "/") return own_path == "/" ? m.point : m.point + own_path;
  if (own_path == m.root) return m.point;
  if (own_path.compare(0, m.root.size() + 1, m.root + "/") == 0) {
    return m.point + own_path.substr(m.root.size());
  }
  return std::nullopt;
}

Result<void> makeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return sandboxErrno("mkdir " + path, errno);
  }
  return {};
}

// ---- v2 ----

bool delegatedToUs(const std::string& dir) {
  char value[8];
  // systemd marks the top of a Delegate=yes subtree with this extended attribute.
  if (::getxattr(dir.c_str(), "trusted.delegate", value, sizeof value) >= 0) return true;
  if (::getxattr(dir.c_str(), "user.delegate", value, sizeof value) >= 0) return true;
  // Unprivileged, a writable cgroup can only be one that was handed to us.
  return ::geteuid() != 0 && ::access(dir.c_str(), W_OK) == 0 &&
         ::access((dir + "/cgroup.procs").c_str(), W_OK) == 0 &&
         ::access((dir + "/cgroup.subtree_control").c_str(), W_OK) == 0;
}

// Controllers can be enabled for children only in a cgroup without processes of its own (the v2
// "no internal processes" rule; the real root is exempt). When the kernel refuses with EBUSY and
// `dir` is the daemon's own cgroup (may_move), its processes (the daemon's) move into a leaf beside
// pyrun's subtree and we try again; other processes are never moved.
Result<void> enableControllers(const std::string& dir, const std::set<std::string>& wanted,
                               const std::string& subtree, bool may_move) {
  auto enabled = readSmall(dir + "/cgroup.subtree_control");
  if (!enabled) return enabled.error();
  auto have = splitWords(trim(*enabled), ' ');
  std::string request;
  for (const auto& c : wanted) {
    if (have.count(c) == 0) request += (request.empty() ? "+" : " +") + c;
  }
  if (request.empty()) return {};
  {
    UniqueFd fd(::open((dir + "/cgroup.subtree_control").c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return sandboxErrno("open " + dir + "/cgroup.subtree_control", errno);
    if (::write(fd.get(), request.data(), request.size()) >= 0) return {};
    if (errno != EBUSY || !may_move) {
      return sandboxErrno("write '" + request + "' to " + dir + "/cgroup.subtree_control", errno);
    }
  }
  std::string leaf = dir + "/" + subtree + "-daemon";
  if (auto m = makeDir(leaf); !m) return m;
  for (int round = 0; round < 100; ++round) {
    auto pids = readPids(dir);
    if (!pids) return pids.error();
    if (pids->empty()) break;
    for (pid_t pid : *pids) {
      auto w = writeControl(leaf + "/cgroup.procs", std::to_string(pid));
      // A process that exited meanwhile is fine; any other refusal is reported below.
      if (!w && !exists("/proc/" + std::to_string(pid))) continue;
      if (!w) return w;
    }
  }
  PYRUN_LOG(kInfo) << "moved the processes of " << dir << " into " << leaf
                   << " so that controllers can be enabled for pyrun's subtree";
  return writeControl(dir + "/cgroup.subtree_control", request);
}

// own: `dir` is the cgroup this process is in (its processes may be moved to a leaf).
Result<std::shared_ptr<CgroupBackend>> buildV2(const std::string& dir, const std::string& subtree,
                                               bool need_memory_and_pids, bool own) {
  auto available_text = readSmall(dir + "/cgroup.controllers");
  if (!available_text) return available_text.error();
  auto available = splitWords(trim(*available_text), ' ');
  if (need_memory_and_pids && (available.count("memory") == 0 || available.count("pids") == 0)) {
    return sandboxError("cgroup v2 at " + dir + " does not offer the memory and pids controllers "
                        "(available: '" + trim(*available_text) + "')");
  }
  std::set<std::string> wanted;
  for (const char* c : {"memory", "pids", "cpu"}) {
    if (available.count(c) != 0) wanted.insert(c);
  }
  if (auto r = enableControllers(dir, wanted, subtree, own); !r) return r.error();
  std::string base = dir + "/" + subtree;
  if (auto r = makeDir(base); !r) return r.error();
  if (auto r = enableControllers(base, wanted, subtree, false); !r) return r.error();
  auto backend = std::make_shared<CgroupBackend>();
  backend->version = CgroupVersion::kV2;
  backend->hierarchies.push_back({Controller::kUnified, base});
  backend->memory = wanted.count("memory") != 0;
  backend->pids = wanted.count("pids") != 0;
  backend->cpu = wanted.count("cpu") != 0;
  backend->description = "cgroup v2 at " + base;
  return backend;
}

Result<std::shared_ptr<CgroupBackend>> detectV2(const std::vector<Mount>& mounts,
                                                const std::map<std::string, std::string>& own,
                                                const std::string& subtree) {
  auto m = std::find_if(mounts.begin(), mounts.end(), [](const Mount& x) { return x.v2; });
  if (m == mounts.end()) return sandboxError("no cgroup2 file system is mounted");
  auto path = own.find("");
  if (path == own.end()) return sandboxError("this process has no cgroup v2 membership");
  auto dir = dirInMount(*m, path->second);
  std::string why;
  if (dir && (*dir == m->point || delegatedToUs(*dir))) {
    auto b = buildV2(*dir, subtree, true, true);
    if (b) return b;
    why = b.error().detail();
  } else {
    why = "our cgroup " + path->second + " was not delegated to us (systemd: Delegate=yes)";
  }
  // As root without delegation: pyrun's own subtree under the root of the mount.
  if (::geteuid() == 0 && (!dir || *dir != m->point)) {
    auto b = buildV2(m->point, subtree, true, false);
    if (b) return b;
    why += "; " + b.error().detail();
  }
  return sandboxError(why);
}

// ---- v1 ----

Result<std::shared_ptr<CgroupBackend>> detectV1(const std::vector<Mount>& mounts,
                                                const std::map<std::string, std::string>& own,
                                                const std::string& subtree) {
  auto backend = std::make_shared<CgroupBackend>();
  backend->version = CgroupVersion::kV1;
  const std::pair<const char*, Controller> wanted[] = {{"memory", Controller::kMemory},
                                                       {"pids", Controller::kPids},
                                                       {"cpu", Controller::kCpu},
                                                       {"freezer", Controller::kFreezer}};
  for (const auto& [name, controller] : wanted) {
    bool required = controller == Controller::kMemory || controller == Controller::kPids;
    auto m = std::find_if(mounts.begin(), mounts.end(), [&, n = std::string(name)](const Mount& x) {
      return !x.v2 && x.controllers.count(n) != 0;
    });
    auto path = own.find(name);
    std::optional<std::string> dir;
    if (m != mounts.end() && path != own.end()) dir = dirInMount(*m, path->second);
    std::string problem;
    if (m == mounts.end()) {
      problem = std::string("no cgroup v1 hierarchy has the ") + name + " controller";
    } else if (!dir) {
      problem = std::string("our ") + name + " cgroup is not visible under " + m->point;
    } else if (::access(dir->c_str(), W_OK) != 0) {
      problem = "cannot create cgroups in " + *dir + ": " + std::strerror(errno);
    }
    std::string base = dir ? *dir + "/" + subtree : std::string();
    if (problem.empty()) {
      if (auto r = makeDir(base); !r) problem = r.error().detail();
    }
    if (!problem.empty()) {
      if (required) return sandboxError(problem);
      PYRUN_LOG(kInfo) << "cgroup v1 " << name << " not used: " << problem;
      continue;
    }
    backend->hierarchies.push_back({controller, base});
    if (controller == Controller::kMemory) {
      backend->memory = true;
      backend->memsw = exists(*dir + "/memory.memsw.limit_in_bytes");
    }
    if (controller == Controller::kPids) backend->pids = true;
    if (controller == Controller::kCpu) backend->cpu = true;
    if (controller == Controller::kFreezer) backend->freezer = true;
  }
  backend->description = "cgroup v1 at";
  for (const auto& h : backend->hierarchies) backend->description += " " + h.base;
  return backend;
}

// ---- per-job operations ----

// paths[i] belongs to b.hierarchies[i]; empty when absent (a partial leftover).
std::string pathOf(const CgroupBackend& b, const std::vector<std::string>& paths, Controller c) {
  for (size_t i = 0; i < b.hierarchies.size() && i < paths.size(); ++i) {
    if (b.hierarchies[i].controller == c) return paths[i];
  }
  return {};
}

Result<void> setLimits(const CgroupBackend& b, const std::vector<std::string>& paths,
                       const CgroupLimits& limits) {
  if (limits.memory_bytes != 0 && !b.memory) return sandboxError("no memory controller to use");
  if (limits.processes != 0 && !b.pids) return sandboxError("no pids controller to use");
  if (limits.cpu_millicores != 0 && !b.cpu) return sandboxError("no cpu controller to use");
  std::string mem = std::to_string(limits.memory_bytes);
  uint64_t quota = std::max<uint64_t>(uint64_t{limits.cpu_millicores} * kCpuPeriodUs / 1000, 1000);
  if (b.version == CgroupVersion::kV2) {
    const std::string& dir = paths[0];
    if (limits.memory_bytes != 0) {
      if (auto r = writeControl(dir + "/memory.max", mem); !r) return r;
      // Absent when the kernel has no swap support: then there is no swap to escape into.
      if (exists(dir + "/memory.swap.max")) {
        if (auto r = writeControl(dir + "/memory.swap.max", "0"); !r) return r;
      }
      // The job is one unit: when the OOM killer picks one of its processes it takes them all,
      // instead of leaving a half-dead process pool running.
      if (exists(dir + "/memory.oom.group")) {
        if (auto r = writeControl(dir + "/memory.oom.group", "1"); !r) return r;
      }
    }
    if (limits.processes != 0) {
      if (auto r = writeControl(dir + "/pids.max", std::to_string(limits.processes)); !r) return r;
    }
    if (limits.cpu_millicores != 0) {
      std::string value = std::to_string(quota) + " " + std::to_string(kCpuPeriodUs);
      if (auto r = writeControl(dir + "/cpu.max", value); !r) return r;
    }
    return {};
  }
  if (limits.memory_bytes != 0) {
    std::string dir = pathOf(b, paths, Controller::kMemory);
    // memory.memsw.limit_in_bytes may never be below memory.limit_in_bytes: set the latter first.
    if (auto r = writeControl(dir + "/memory.limit_in_bytes", mem); !r) return r;
    if (b.memsw) {
      if (auto r = writeControl(dir + "/memory.memsw.limit_in_bytes", mem); !r) return r;
    } else {
      // Without swap accounting the limit covers resident memory only; swappiness 0 keeps the
      // job's anonymous memory out of swap so that the limit still binds.
      if (auto r = writeControl(dir + "/memory.swappiness", "0"); !r) return r;
    }
  }
  if (limits.processes != 0) {
    std::string dir = pathOf(b, paths, Controller::kPids);
    if (auto r = writeControl(dir + "/pids.max", std::to_string(limits.processes)); !r) return r;
  }
  if (limits.cpu_millicores != 0) {
    std::string dir = pathOf(b, paths, Controller::kCpu);
    if (auto r = writeControl(dir + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)); !r) {
      return r;
    }
    if (auto r = writeControl(dir + "/cpu.cfs_quota_us", std::to_string(quota)); !r) return r;
  }
  return {};
}

// The first existing directory of a job, to name it in messages.
std::string label(const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    if (!p.empty()) return p;
  }
  return "job cgroup";
}

Result<std::vector<pid_t>> pidsIn(const std::vector<std::string>& paths) {
  std::set<pid_t> all;
  for (const auto& p : paths) {
    if (p.empty()) continue;
    auto pids = readPids(p);
    if (!pids) return pids.error();
    all.insert(pids->begin(), pids->end());
  }
  return std::vector<pid_t>(all.begin(), all.end());
}

// Waits until `done` returns true (or an error), polling with a short, growing pause.
template <class Done>
Result<void> waitUntil(Done done, Clock::duration timeout, const std::string& what) {
  auto deadline = Clock::now() + timeout;
  Clock::duration step = std::chrono::milliseconds(1);
  for (;;) {
    Result<bool> d = done();
    if (!d) return d.error();
    if (*d) return {};
    if (Clock::now() > deadline) return sandboxError(what);
    pause(step);
  }
}

Result<void> setFrozen(const CgroupBackend& b, const std::vector<std::string>& paths, bool frozen) {
  if (b.version == CgroupVersion::kV2) {
    const std::string& dir = paths[0];
    if (auto r = writeControl(dir + "/cgroup.freeze", frozen ? "1" : "0"); !r) return r;
    if (!frozen) return {};
    return waitUntil(
        [&]() -> Result<bool> {
          auto ev = readSmall(dir + "/cgroup.events");
          if (!ev) return ev.error();
          return keyedValue(*ev, "frozen").value_or(0) == 1;
        },
        kDrainTimeout, dir + " did not freeze");
  }
  std::string dir = pathOf(b, paths, Controller::kFreezer);
  if (dir.empty()) return {};
  if (auto r = writeControl(dir + "/freezer.state", frozen ? "FROZEN" : "THAWED"); !r) return r;
  if (!frozen) return {};
  // FREEZING until every task has stopped; a task stuck in the kernel can keep it there.
  return waitUntil(
      [&]() -> Result<bool> {
        auto state = readSmall(dir + "/freezer.state");
        if (!state) return state.error();
        return trim(*state) == "FROZEN";
      },
      kDrainTimeout, dir + " did not freeze");
}

Result<void> killPaths(const CgroupBackend& b, const std::vector<std::string>& paths) {
  if (b.version == CgroupVersion::kV2 && b.use_cgroup_kill && exists(paths[0] + "/cgroup.kill")) {
    // cgroup.kill (Linux 5.14) kills every task atomically, forks in flight included.
    if (auto r = writeControl(paths[0] + "/cgroup.kill", "1"); !r) return r;
  } else {
    // No atomic kill: a frozen cgroup cannot fork, so one pass over its pids kills everything;
    // without a freezer the passes repeat until no process is left (pids.max bounds the race).
    // SIGKILL stays pending on frozen tasks and takes effect when they thaw.
    bool try_freezing = true;
    for (int pass = 0;; ++pass) {
      auto pids = pidsIn(paths);
      if (!pids) return pids.error();
      if (pids->empty()) break;
      // A task stuck in uninterruptible sleep can keep a cgroup FREEZING for ever: then kill
      // without freezing (the passes still converge) rather than wait again on every pass.
      if (try_freezing) {
        if (auto r = setFrozen(b, paths, true); !r) {
          PYRUN_LOG(kWarning) << "killing without freezing: " << r.error().detail();
          try_freezing = false;
        }
      }
      for (pid_t pid : *pids) ::kill(pid, SIGKILL);
      if (auto r = setFrozen(b, paths, false); !r) return r;
      if (pass > 1000) {
        return sandboxError(label(paths) + ": processes keep appearing after SIGKILL");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  return waitUntil(
      [&]() -> Result<bool> {
        auto pids = pidsIn(paths);
        if (!pids) return pids.error();
        return pids->empty();
      },
      kDrainTimeout, label(paths) + ": processes remain after SIGKILL");
}

Result<void> removePaths(const CgroupBackend& b, const std::vector<std::string>& paths) {
  if (auto r = killPaths(b, paths); !r) return r;
  for (const auto& p : paths) {
    if (p.empty()) continue;
    // rmdir fails with EBUSY for a moment after the last task left while the kernel lets go of it.
    auto r = waitUntil(
        [&]() -> Result<bool> {
          if (::rmdir(p.c_str()) == 0 || errno == ENOENT) return true;
          if (errno == EBUSY) return false;
          return sandboxErrno("rmdir " + p, errno);
        },
        kRemoveTimeout, "rmdir " + p + ": still busy");
    if (!r) return r;
  }
  return {};
}

}  // namespace

const char* cgroupVersionName(CgroupVersion version) noexcept {
  switch (version) {
    case CgroupVersion::kNone: return "none";
    case CgroupVersion::kV1: return "v1";
    case CgroupVersion::kV2: return "v2";
  }
  return "unknown";
}

int joinCgroup(const CgroupJoin& join) noexcept {
  for (int i = 0; i < join.count && i < CgroupJoin::kMaxFds; ++i) {
    // "0" is the writing process itself, on v1 and v2 alike, and in any pid namespace.
    ssize_t n;
    do {
      n = ::write(join.fds[i], "0", 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) return n < 0 ? errno : EIO;
  }
  return 0;
}

// ---- JobCgroup ----

JobCgroup::JobCgroup(std::shared_ptr<const CgroupBackend> backend, std::vector<std::string> paths,
                     std::vector<UniqueFd> procs)
    : backend_(std::move(backend)), paths_(std::move(paths)), procs_(std::move(procs)) {
  for (const auto& fd : procs_) join_.fds[join_.count++] = fd.get();
}

JobCgroup::JobCgroup(JobCgroup&& o) noexcept
    : backend_(std::move(o.backend_)),
      paths_(std::move(o.paths_)),
      procs_(std::move(o.procs_)),
      join_(o.join_),
      sampled_peak_(o.sampled_peak_),
      removed_(o.removed_) {
  o.join_ = {};
  o.removed_ = true;
}

JobCgroup& JobCgroup::operator=(JobCgroup&& o) noexcept {
  if (this != &o) {
    JobCgroup dying(std::move(*this));
    backend_ = std::move(o.backend_);
    paths_ = std::move(o.paths_);
    procs_ = std::move(o.procs_);
    join_ = o.join_;
    sampled_peak_ = o.sampled_peak_;
    removed_ = o.removed_;
    o.join_ = {};
    o.removed_ = true;
  }
  return *this;
}

JobCgroup::~JobCgroup() {
  if (removed_ || !backend_) return;
  if (auto r = remove(); !r) {
 PYRUN_LOG(kError) << "job cgroup " << label(paths_) << " left behind: " << r.error().detail();
  }
}

void JobCgroup::closeJoinFds() noexcept {
  procs_.clear();
  join_ = {};
}

Result<std::vector<pid_t>> JobCgroup::pids() const { return pidsIn(paths_); }

void JobCgroup::sampleMemory() {
  if (removed_ || !backend_->memory) return;
  std::string file =
      backend_->version == CgroupVersion::kV2
          ? paths_[0] + "/memory.current"
          : pathOf(*backend_, paths_, Controller::kMemory) + "/memory.usage_in_bytes";
  if (auto v = readNumber(file); v) sampled_peak_ = std::max(sampled_peak_, *v);
}

Result<void> JobCgroup::killAll() {
  if (removed_) return sandboxError("job cgroup already removed");
  return killPaths(*backend_, paths_);
}

Result<CgroupStats> JobCgroup::stats() {
  if (removed_) return sandboxError("job cgroup already removed");
  CgroupStats s;
  const CgroupBackend& b = *backend_;
  if (b.version == CgroupVersion::kV2) {
    const std::string& dir = paths_[0];
    if (b.memory) {
      if (exists(dir + "/memory.peak")) {  // Linux 5.19
        auto peak = readNumber(dir + "/memory.peak");
        if (!peak) return peak.error();
        s.peak_memory_bytes = *peak;
      } else {
        sampleMemory();
        s.peak_memory_bytes = sampled_peak_;
      }
      auto events = readSmall(dir + "/memory.events");
      if (!events) return events.error();
      s.oom_killed = keyedValue(*events, "oom_kill").value_or(0) > 0;
    }
    if (b.pids) {
      auto events = readSmall(dir + "/pids.events");
      if (!events) return events.error();
      s.pids_limit_hit = keyedValue(*events, "max").value_or(0) > 0;
    }
    return s;
  }
  if (b.memory) {
    std::string dir = pathOf(b, paths_, Controller::kMemory);
    auto peak = readNumber(dir + (b.memsw ? "/memory.memsw.max_usage_in_bytes"
                                          : "/memory.max_usage_in_bytes"));
    if (!peak) return peak.error();
    s.peak_memory_bytes = *peak;
    auto oom = readSmall(dir + "/memory.oom_control");
    if (!oom) return oom.error();
    s.oom_killed = keyedValue(*oom, "oom_kill").value_or(0) > 0;
  }
  if (b.pids) {
    auto events = readSmall(pathOf(b, paths_, Controller::kPids) + "/pids.events");
    if (!events) return events.error();
    s.pids_limit_hit = keyedValue(*events, "max").value_or(0) > 0;
  }
  return s;
}

Result<void> JobCgroup::remove() {
  if (removed_) return {};
  closeJoinFds();
  auto r = removePaths(*backend_, paths_);
  if (r) removed_ = true;
  return r;
}

// ---- Cgroups ----

Cgroups::Cgroups() : backend_(std::make_shared<CgroupBackend>()) {}
Cgroups::Cgroups(std::shared_ptr<const CgroupBackend> backend) : backend_(std::move(backend)) {}

CgroupVersion Cgroups::version() const noexcept { return backend_->version; }
const std::string& Cgroups::description() const noexcept { return backend_->description; }
bool Cgroups::hasMemory() const noexcept { return backend_->memory; }
bool Cgroups::hasPids() const noexcept { return backend_->pids; }
bool Cgroups::hasCpu() const noexcept { return backend_->cpu; }
std::vector<std::string> Cgroups::subtreeDirs() const {
  std::vector<std::string> dirs;
  for (const auto& h : backend_->hierarchies) dirs.push_back(h.base);
  return dirs;
}

Result<JobCgroup> Cgroups::createJob(uint64_t job_id, const CgroupLimits& limits) const {
  if (!usable()) return sandboxError("no usable cgroups: " + backend_->description);
  std::string name = "job-" + std::to_string(job_id);
  std::vector<std::string> made;
  auto undo = [&] {
    for (const auto& p : made) ::rmdir(p.c_str());
  };
  for (const auto& h : backend_->hierarchies) {
    std::string dir = h.base + "/" + name;
    // EEXIST is an error: another job of that id (or a leftover) would share our limits and kill.
    if (::mkdir(dir.c_str(), 0755) != 0) {
      int err = errno;
      undo();
      return sandboxErrno("create job cgroup " + dir, err);
    }
    made.push_back(dir);
  }
  if (auto r = setLimits(*backend_, made, limits); !r) {
    undo();
    return sandboxError("configure job cgroup: " + r.error().detail());
  }
  std::vector<UniqueFd> procs;
  for (const auto& dir : made) {
    std::string file = dir + "/cgroup.procs";
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
      int err = errno;
      undo();
      return sandboxErrno("open " + file, err);
    }
    procs.push_back(std::move(fd));
  }
  return JobCgroup(backend_, std::move(made), std::move(procs));
}

Result<int> Cgroups::removeLeftovers() const {
  if (!usable()) return 0;
  std::set<std::string> names;
  for (const auto& h : backend_->hierarchies) {
    auto entries = listDirectory(h.base);
    if (!entries) return Error(Errc::kSandbox, entries.error().detail());
    for (const auto& e : *entries) {
      if (e.type == DT_DIR && e.name.rfind("job-", 0) == 0) names.insert(e.name);
    }
  }
  int removed = 0;
  for (const auto& n : names) {
    std::vector<std::string> paths;
    for (const auto& h : backend_->hierarchies) {
      std::string p = h.base + "/" + n;
      paths.push_back(exists(p) ? p : std::string());
    }
    if (auto r = removePaths(*backend_, paths); !r) return r.error();
    PYRUN_LOG(kWarning) << "removed leftover job cgroup " << n << " of an earlier run";
    ++removed;
  }
  return removed;
}

Result<Cgroups> detectCgroups(const CgroupOptions& options) {
  if (options.subtree.empty() || options.subtree.find('/') != std::string::npos ||
      options.subtree == "." || options.subtree == "..") {
    return Error(Errc::kInvalidArgument, "cgroup subtree name '" + options.subtree +
                                             "' must be a single non-empty path component");
  }
  std::string why;
  if (options.prefer == CgroupVersion::kNone) {
    why = "cgroups are disabled in the configuration";
  } else {
    auto mounts = cgroupMounts();
    auto own = ownCgroups();
    CgroupVersion order[2] = {options.prefer, options.prefer == CgroupVersion::kV2
                                                  ? CgroupVersion::kV1
                                                  : CgroupVersion::kV2};
    for (CgroupVersion v : order) {
      auto b = v == CgroupVersion::kV2 ? detectV2(mounts, own, options.subtree)
                                       : detectV1(mounts, own, options.subtree);
      if (b) return Cgroups(std::move(*b));  // the caller logs description()
      why +=
          std::string(why.empty() ? "" : "; ") + cgroupVersionName(v) + ": " + b.error().detail();
    }
  }
  if (options.require) return sandboxError("cgroups are required but not usable: " + why);
  PYRUN_LOG(kWarning) << "no usable cgroups, so only rlimits confine the memory and process count "
                         "of jobs, and a job's escaped processes are found through its pid "
                         "namespace only: "
                      << why;
  auto none = std::make_shared<CgroupBackend>();
  none->description = why;
  return Cgroups(std::move(none));
}

Result<Cgroups> openCgroupV2At(const std::string& dir, const std::string& subtree,
                               bool use_cgroup_kill) {
  auto b = buildV2(dir, subtree, false, false);
  if (!b) return b.error();
  (*b)->use_cgroup_kill = use_cgroup_kill;
  return Cgroups(std::move(*b));
}

}  // namespace pyrun::sandbox
