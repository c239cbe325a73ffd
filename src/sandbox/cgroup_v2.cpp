// cgroup v2: one unified hierarchy, controllers enabled per subtree, cgroup.kill and
// cgroup.freeze, jobs cloned into their cgroup (docs/CGROUPS.md).
#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fd.h"
#include "common/log.h"
#include "sandbox/cgroup_backend.h"
#include "sandbox/clone3.h"

namespace pyrun::sandbox {
namespace {

using namespace cgroupfs;

class CgroupV2Backend final : public CgroupBackend {
 public:
  explicit CgroupV2Backend(bool use_cgroup_kill) : use_cgroup_kill_(use_cgroup_kill) {
    version = CgroupVersion::kV2;
  }

  Result<void> setLimits(const std::vector<std::string>& paths,
                         const CgroupLimits& limits) const override {
    const std::string& dir = paths[0];
    if (limits.memory_bytes != 0) {
      if (auto r = writeControl(dir + "/memory.max", std::to_string(limits.memory_bytes)); !r) {
        return r;
      }
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
      uint64_t quota =
          std::max<uint64_t>(uint64_t{limits.cpu_millicores} * kCpuPeriodUs / 1000, 1000);
      std::string value = std::to_string(quota) + " " + std::to_string(kCpuPeriodUs);
      if (auto r = writeControl(dir + "/cpu.max", value); !r) return r;
    }
    return {};
  }

  Result<void> setFrozen(const std::vector<std::string>& paths, bool frozen) const override {
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

  Result<bool> killAtOnce(const std::vector<std::string>& paths) const override {
    // cgroup.kill (Linux 5.14) kills every task atomically, forks in flight included.
    if (!use_cgroup_kill_ || !exists(paths[0] + "/cgroup.kill")) return false;
    if (auto r = writeControl(paths[0] + "/cgroup.kill", "1"); !r) return r.error();
    return true;
  }

  std::string memoryCurrentFile(const std::vector<std::string>& paths) const override {
    return paths[0] + "/memory.current";
  }

  Result<CgroupStats> stats(const std::vector<std::string>& paths,
                            bool& peak_known) const override {
    CgroupStats s;
    const std::string& dir = paths[0];
    if (memory) {
      peak_known = exists(dir + "/memory.peak");  // Linux 5.19
      if (peak_known) {
        auto peak = readNumber(dir + "/memory.peak");
        if (!peak) return peak.error();
        s.peak_memory_bytes = *peak;
      }
      auto events = readSmall(dir + "/memory.events");
      if (!events) return events.error();
      s.oom_killed = keyedValue(*events, "oom_kill").value_or(0) > 0;
    }
    if (pids) {
      auto events = readSmall(dir + "/pids.events");
      if (!events) return events.error();
      s.pids_limit_hit = keyedValue(*events, "max").value_or(0) > 0;
    }
    return s;
  }

 private:
  bool use_cgroup_kill_;
};

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

}  // namespace

Result<std::shared_ptr<CgroupBackend>> buildCgroupV2(const std::string& dir,
                                                     const std::string& subtree,
                                                     bool need_memory_and_pids, bool own,
                                                     const CgroupV2TestOptions& options) {
  auto available_text = readSmall(dir + "/cgroup.controllers");
  if (!available_text) return available_text.error();
  auto available = splitWords(trim(*available_text), ' ');
  if (need_memory_and_pids && (available.count("memory") == 0 || available.count("pids") == 0)) {
    return sandboxError("cgroup v2 at " + dir +
                        " does not offer the memory and pids controllers "
                        "(available: '" +
                        trim(*available_text) + "')");
  }
  std::set<std::string> wanted;
  for (const char* c : {"memory", "pids", "cpu"}) {
    if (available.count(c) != 0) wanted.insert(c);
  }
  if (auto r = enableControllers(dir, wanted, subtree, own); !r) return r.error();
  std::string base = dir + "/" + subtree;
  if (auto r = makeDir(base); !r) return r.error();
  if (auto r = enableControllers(base, wanted, subtree, false); !r) return r.error();
  auto backend = std::make_shared<CgroupV2Backend>(options.use_cgroup_kill);
  backend->hierarchies.push_back({Controller::kUnified, base});
  backend->memory = wanted.count("memory") != 0;
  backend->pids = wanted.count("pids") != 0;
  backend->cpu = wanted.count("cpu") != 0;
  backend->description = "cgroup v2 at " + base;
  if (options.clone_into_cgroup) {
    // Decided once: a job never falls back to joining because its own clone failed (that job
    // fails instead), so the way a job enters its cgroup depends on the kernel alone.
    if (int err = cloneIntoCgroupSupport(); err != 0) {
      PYRUN_LOG(kInfo) << "this kernel cannot clone a process into a cgroup (clone3 with "
                          "CLONE_INTO_CGROUP, Linux 5.7+: "
                       << std::strerror(err)
                       << "), so each job's init joins its cgroup right after the clone";
    } else {
      backend->clone_into = true;
    }
  }
  return backend;
}

Result<std::shared_ptr<CgroupBackend>> detectCgroupV2(const std::vector<Mount>& mounts,
                                                      const std::map<std::string, std::string>& own,
                                                      const std::string& subtree) {
  auto m = std::find_if(mounts.begin(), mounts.end(), [](const Mount& x) { return x.v2; });
  if (m == mounts.end()) return sandboxError("no cgroup2 file system is mounted");
  auto path = own.find("");
  if (path == own.end()) return sandboxError("this process has no cgroup v2 membership");
  auto dir = dirInMount(*m, path->second);
  std::string why;
  if (dir && (*dir == m->point || delegatedToUs(*dir))) {
    auto b = buildCgroupV2(*dir, subtree, true, true, {});
    if (b) return b;
    why = b.error().detail();
  } else {
    why = "our cgroup " + path->second + " was not delegated to us (systemd: Delegate=yes)";
  }
  // As root without delegation: pyrun's own subtree under the root of the mount.
  if (::geteuid() == 0 && (!dir || *dir != m->point)) {
    auto b = buildCgroupV2(m->point, subtree, true, false, {});
    if (b) return b;
    why += "; " + b.error().detail();
  }
  return sandboxError(why);
}

}  // namespace pyrun::sandbox
