// Job cgroups, the parts common to v1 and v2: detection, creation, kill, statistics, removal. The
// version-specific parts are in cgroup_v1.cpp and cgroup_v2.cpp.
#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
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
#include "sandbox/cgroup_backend.h"

namespace pyrun::sandbox {

std::string CgroupBackend::pathOf(const std::vector<std::string>& paths, Controller c) const {
  for (size_t i = 0; i < hierarchies.size() && i < paths.size(); ++i) {
    if (hierarchies[i].controller == c) return paths[i];
  }
  return {};
}

namespace cgroupfs {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Error sandboxError(std::string detail) { return Error(Errc::kSandbox, std::move(detail)); }

Error sandboxErrno(const std::string& what, int err) {
  return sandboxError(what + ": " + std::strerror(err));
}

Result<std::string> readSmall(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return sandboxErrno("open " + path, errno);
  auto text = readAll(fd.get(), path, 4u << 20);
  if (!text) return sandboxError(text.error().detail());
  return text;
}

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

}  // namespace cgroupfs

namespace {

using namespace cgroupfs;

// ---- the process's view: mounts and its own cgroups ----

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

// ---- per-job operations ----

// A setup without cgroups: Cgroups::usable() is false, so none of these is ever reached.
class NoCgroupBackend final : public CgroupBackend {
 public:
  Result<void> setLimits(const std::vector<std::string>&, const CgroupLimits&) const override {
    return sandboxError("no usable cgroups");
  }
  Result<void> setFrozen(const std::vector<std::string>&, bool) const override { return {}; }
  std::string memoryCurrentFile(const std::vector<std::string>&) const override { return {}; }
  Result<CgroupStats> stats(const std::vector<std::string>&, bool& peak_known) const override {
    peak_known = true;
    return CgroupStats{};
  }
};

Result<void> setLimits(const CgroupBackend& b, const std::vector<std::string>& paths,
                       const CgroupLimits& limits) {
  if (limits.memory_bytes != 0 && !b.memory) return sandboxError("no memory controller to use");
  if (limits.processes != 0 && !b.pids) return sandboxError("no pids controller to use");
  if (limits.cpu_millicores != 0 && !b.cpu) return sandboxError("no cpu controller to use");
  return b.setLimits(paths, limits);
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

Result<void> killPaths(const CgroupBackend& b, const std::vector<std::string>& paths) {
  auto at_once = b.killAtOnce(paths);
  if (!at_once) return at_once.error();
  if (!*at_once) {
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
        if (auto r = b.setFrozen(paths, true); !r) {
          PYRUN_LOG(kWarning) << "killing without freezing: " << r.error().detail();
          try_freezing = false;
        }
      }
      for (pid_t pid : *pids) ::kill(pid, SIGKILL);
      if (auto r = b.setFrozen(paths, false); !r) return r;
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
    case CgroupVersion::kNone:
      return "none";
    case CgroupVersion::kV1:
      return "v1";
    case CgroupVersion::kV2:
      return "v2";
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
                     std::vector<UniqueFd> procs, UniqueFd clone_into)
    : backend_(std::move(backend)),
      paths_(std::move(paths)),
      procs_(std::move(procs)),
      clone_into_(std::move(clone_into)) {
  for (const auto& fd : procs_) join_.fds[join_.count++] = fd.get();
}

JobCgroup::JobCgroup(JobCgroup&& o) noexcept
    : backend_(std::move(o.backend_)),
      paths_(std::move(o.paths_)),
      procs_(std::move(o.procs_)),
      join_(o.join_),
      clone_into_(std::move(o.clone_into_)),
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
    clone_into_ = std::move(o.clone_into_);
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
  clone_into_.reset();
}

Result<std::vector<pid_t>> JobCgroup::pids() const { return pidsIn(paths_); }

void JobCgroup::sampleMemory() {
  if (removed_ || !backend_->memory) return;
  if (auto v = readNumber(backend_->memoryCurrentFile(paths_)); v) {
    sampled_peak_ = std::max(sampled_peak_, *v);
  }
}

Result<void> JobCgroup::killAll() {
  if (removed_) return sandboxError("job cgroup already removed");
  return killPaths(*backend_, paths_);
}

Result<void> JobCgroup::setLimits(const CgroupLimits& limits) {
  if (removed_) return sandboxError("job cgroup already removed");
  return pyrun::sandbox::setLimits(*backend_, paths_, limits);
}

Result<CgroupStats> JobCgroup::stats() {
  if (removed_) return sandboxError("job cgroup already removed");
  bool peak_known = true;
  auto s = backend_->stats(paths_, peak_known);
  if (!s) return s;
  if (backend_->memory && !peak_known) {
    sampleMemory();
    s->peak_memory_bytes = sampled_peak_;
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

Cgroups::Cgroups() : backend_(std::make_shared<NoCgroupBackend>()) {}
Cgroups::Cgroups(std::shared_ptr<const CgroupBackend> backend) : backend_(std::move(backend)) {}

CgroupVersion Cgroups::version() const noexcept { return backend_->version; }
const std::string& Cgroups::description() const noexcept { return backend_->description; }
bool Cgroups::hasMemory() const noexcept { return backend_->memory; }
bool Cgroups::hasPids() const noexcept { return backend_->pids; }
bool Cgroups::hasCpu() const noexcept { return backend_->cpu; }
bool Cgroups::clonesIntoCgroup() const noexcept { return backend_->clone_into; }
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
  // O_PATH is enough for clone3, and gives nothing else: the descriptor can neither list nor
  // write the cgroup's files.
  UniqueFd clone_into;
  if (backend_->clone_into) {
    clone_into.reset(::open(made[0].c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!clone_into) {
      int err = errno;
      undo();
      return sandboxErrno("open " + made[0], err);
    }
  }
  return JobCgroup(backend_, std::move(made), std::move(procs), std::move(clone_into));
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
      auto b = v == CgroupVersion::kV2 ? detectCgroupV2(mounts, own, options.subtree)
                                       : detectCgroupV1(mounts, own, options.subtree);
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
  auto none = std::make_shared<NoCgroupBackend>();
  none->description = why;
  return Cgroups(std::move(none));
}

Result<Cgroups> openCgroupV2At(const std::string& dir, const std::string& subtree,
                               const CgroupV2TestOptions& options) {
  auto b = buildCgroupV2(dir, subtree, false, false, options);
  if (!b) return b.error();
  return Cgroups(std::move(*b));
}

}  // namespace pyrun::sandbox
