// cgroup v1: one hierarchy per controller (memory, pids, cpu, freezer), each with pyrun's subtree
// (docs/CGROUPS.md).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "sandbox/cgroup_backend.h"

namespace pyrun::sandbox {
namespace {

using namespace cgroupfs;

class CgroupV1Backend final : public CgroupBackend {
 public:
  CgroupV1Backend() { version = CgroupVersion::kV1; }

  bool memsw = false;    // memory.memsw.* exists (swap accounting on)
  bool freezer = false;  // a freezer hierarchy is among the hierarchies

  Result<void> setLimits(const std::vector<std::string>& paths,
                         const CgroupLimits& limits) const override {
    if (limits.memory_bytes != 0) {
      std::string dir = pathOf(paths, Controller::kMemory);
      std::string mem = std::to_string(limits.memory_bytes);
      // memory.memsw.limit_in_bytes may never be below memory.limit_in_bytes: set the latter
      // first.
      if (auto r = writeControl(dir + "/memory.limit_in_bytes", mem); !r) return r;
      if (memsw) {
        if (auto r = writeControl(dir + "/memory.memsw.limit_in_bytes", mem); !r) return r;
      } else {
        // Without swap accounting the limit covers resident memory only; swappiness 0 keeps the
        // job's anonymous memory out of swap so that the limit still binds.
        if (auto r = writeControl(dir + "/memory.swappiness", "0"); !r) return r;
      }
    }
    if (limits.processes != 0) {
      std::string dir = pathOf(paths, Controller::kPids);
      if (auto r = writeControl(dir + "/pids.max", std::to_string(limits.processes)); !r) return r;
    }
    if (limits.cpu_millicores != 0) {
      std::string dir = pathOf(paths, Controller::kCpu);
      uint64_t quota =
          std::max<uint64_t>(uint64_t{limits.cpu_millicores} * kCpuPeriodUs / 1000, 1000);
      if (auto r = writeControl(dir + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUs)); !r) {
        return r;
      }
      if (auto r = writeControl(dir + "/cpu.cfs_quota_us", std::to_string(quota)); !r) return r;
    }
    return {};
  }

  Result<void> setFrozen(const std::vector<std::string>& paths, bool frozen) const override {
    std::string dir = pathOf(paths, Controller::kFreezer);
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

  std::string memoryCurrentFile(const std::vector<std::string>& paths) const override {
    return pathOf(paths, Controller::kMemory) + "/memory.usage_in_bytes";
  }

  Result<CgroupStats> stats(const std::vector<std::string>& paths,
                            bool& peak_known) const override {
    CgroupStats s;
    peak_known = true;
    if (memory) {
      std::string dir = pathOf(paths, Controller::kMemory);
      auto peak = readNumber(
          dir + (memsw ? "/memory.memsw.max_usage_in_bytes" : "/memory.max_usage_in_bytes"));
      if (!peak) return peak.error();
      s.peak_memory_bytes = *peak;
      auto oom = readSmall(dir + "/memory.oom_control");
      if (!oom) return oom.error();
      s.oom_killed = keyedValue(*oom, "oom_kill").value_or(0) > 0;
    }
    if (pids) {
      auto events = readSmall(pathOf(paths, Controller::kPids) + "/pids.events");
      if (!events) return events.error();
      s.pids_limit_hit = keyedValue(*events, "max").value_or(0) > 0;
    }
    return s;
  }
};

}  // namespace

Result<std::shared_ptr<CgroupBackend>> detectCgroupV1(const std::vector<Mount>& mounts,
                                                      const std::map<std::string, std::string>& own,
                                                      const std::string& subtree) {
  auto backend = std::make_shared<CgroupV1Backend>();
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

}  // namespace pyrun::sandbox
