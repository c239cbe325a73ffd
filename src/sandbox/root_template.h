// The spawner's root templates: per policy, the part of a job's root that is the same for every job
// of it, built once and cloned by each job's init (docs/SANDBOX.md, "Root templates").
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "policy/policy.h"

namespace pyrun::sandbox {

// Where the templates are mounted: <jobs_dir>/.templates/<n>, the directory mode 0700 and root's.
inline constexpr const char* kTemplatesDir = ".templates";

// Gives the calling process (the spawner, as root) a mount namespace of its own, a copy of its
// current one that receives the host's later mounts but never passes its own back (MS_SLAVE):
// templates mounted there are invisible on the host and vanish with the spawner, however it ends.
// Errors: kSandbox (unshare or the propagation change refused).
Result<void> enterSpawnerMountNamespace();

class RootTemplates {
 public:
  RootTemplates() = default;
  RootTemplates(const RootTemplates&) = delete;
  RootTemplates& operator=(const RootTemplates&) = delete;
  ~RootTemplates();

  // Creates <jobs_dir>/.templates (jobs_dir_fd is the jobs directory, jobs_dir its path). Call in
  // the spawner's own mount namespace (enterSpawnerMountNamespace). Errors: kIo.
  Result<void> open(int jobs_dir_fd, const std::string& jobs_dir);

  // The path of the template for jobs of `policy` (with a terminal or not), as the job's init finds
  // it in its copy of our mount namespace. Built now when there is none for this load of the
  // policy (identity: the loaded policy's address), or when the one there is stale: a host file or
  // directory it binds was replaced, or a mount was added or removed in our namespace (the host's
  // propagate into it) since it was built. Errors: kPolicy (the plan), kSandbox naming the
  // template step that failed; nothing is left mounted then.
  Result<std::string> get(const policy::Policy& policy, const void* identity, bool terminal);

  // Unmounts every template (a policy reload; running jobs keep their clones).
  void clear();

  // How many templates are mounted (for logs and tests).
  size_t size() const { return templates_.size(); }

 private:
  struct Source {
    std::string path;
    dev_t dev = 0;  // 0 and 0: it did not exist
    ino_t ino = 0;
  };
  struct Template {
    std::string name;  // below .templates
    const void* identity = nullptr;
    std::vector<Source> sources;  // every host path it binds, as it was when bound
  };
  Result<Template> build(const policy::Policy& policy, const void* identity, bool terminal);
  // Unmounts a template; its directory goes later (removeRetired).
  void unmount(const std::string& name);
  // Removes the directories of unmounted templates once no job's init can still be about to clone
  // from its copy of them (all: every one, when the spawner ends).
  void removeRetired(bool all);
  bool stale(const Template& t) const;
  // Whether our namespace's mount table changed since the last call (the mountinfo file polls
  // POLLPRI once per change, and the poll itself re-arms it).
  bool mountsChanged();

  std::string dir_;
  UniqueFd dir_fd_;
  UniqueFd mountinfo_;
  uint64_t next_ = 0;
  struct Retired {
    std::string name;
    std::chrono::steady_clock::time_point removable;
  };
  std::vector<Retired> retired_;
  std::map<std::pair<std::string, bool>, Template> templates_;  // (policy name, terminal)
};

}  // namespace pyrun::sandbox
