// The spawner's policy set: loading and compiling the policies, and reloading them on request.
#include <utility>

#include "common/log.h"
#include "common/strict_modes.h"
#include "sandbox/spawner_process.h"

namespace pyrun::sandbox::detail {

Result<PolicySet> loadPolicySet(const std::map<std::string, std::string>& files) {
  PolicySet set;
  std::string errors;
  for (const auto& [name, file] : files) {
    // Root acts on these files: like sshd's StrictModes, none of them (the includes too) may be
    // one that the front's user or anyone else but root could have written. Checked before each
    // is opened: a file refused after reading would already have made root open what it names.
    auto loaded =
        policy::loadPolicy(file, [](const std::string& path) { return checkStrictModes(path); });
    if (!loaded) {
      errors += (errors.empty() ? "" : "\n") + loaded.error().detail();
      continue;
    }
    auto program = compileSeccompFilter(loaded->seccomp);
    if (!program) {
      errors += (errors.empty() ? "" : "\n") + file + ": " + program.error().detail();
      continue;
    }
    set.emplace(name, std::make_shared<const CompiledPolicy>(
                          CompiledPolicy{std::move(*loaded), std::move(*program)}));
  }
  if (!errors.empty()) return Error(Errc::kPolicy, errors);
  return set;
}

void Spawner::reloadPolicies() {
  // The files come from our own configuration, never from the front (see SpawnerConfig).
  Result<std::map<std::string, std::string>> files = config_.policy_files;
  if (config_.reload_policy_files) files = config_.reload_policy_files();
  if (!files) {
    PYRUN_LOG(kError) << "policy reload failed, keeping the " << policies_.size()
                      << " policies in use: " << files.error().detail();
    send(PoliciesReloaded{false, files.error().detail()});
    return;
  }
  auto loaded = loadPolicySet(*files);
  if (!loaded) {
    PYRUN_LOG(kError) << "policy reload failed, keeping the " << policies_.size()
                      << " policies in use: " << loaded.error().detail();
    send(PoliciesReloaded{false, loaded.error().detail()});
    return;
  }
  policies_ = std::move(*loaded);
  // The pool is rebuilt under the new set: no parked job of the old one is ever handed a job.
  if (config_.reload_pool_sizes) {
    if (auto sizes = config_.reload_pool_sizes(); sizes) {
      pool_sizes_ = std::move(*sizes);
    } else {
      PYRUN_LOG(kError) << "pool sizes unchanged: " << sizes.error().detail();
    }
  }
  drainPool("the policies were reloaded");
  // Jobs already running keep the clones they made; new ones clone the new policies' templates.
  buildRootTemplates();
  std::string names;
  for (const auto& [name, p] : policies_) names += (names.empty() ? "" : ", ") + name;
  PYRUN_LOG(kInfo) << "reloaded " << policies_.size() << " policies: " << names;
  send(
      PoliciesReloaded{true, "loaded " + std::to_string(policies_.size()) + " policies: " + names});
}
}  // namespace pyrun::sandbox::detail
