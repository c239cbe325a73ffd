// Loading the policy set (see policy_set.h).
#include "server/policy_set.h"

#include "common/file.h"
#include "common/strict_modes.h"

namespace pyrun::server {

std::string PolicySet::policyNameFor(std::string_view common_name) const {
  auto name = identities.policyFor(common_name);
  if (!name || !policies.count(*name)) return "";
  return *name;
}

Result<PolicySet> loadPolicySet(const ServerConfig& config, const policy::PolicyFileCheck& check) {
  PolicySet set;
  std::string errors;
  auto add = [&errors](const std::string& line) {
    if (!errors.empty()) errors += "\n";
    errors += line;
  };
  for (const auto& [name, file] : config.policies) {
    auto outcome = check ? policy::loadPolicyWithDiagnostics(file, check)
                         : policy::loadPolicyWithDiagnostics(file);
    if (!outcome.policy || !outcome.diagnostics.empty()) {
      for (const auto& d : outcome.diagnostics) add(policy::toString(d));
      if (outcome.diagnostics.empty()) add(file + ": policy \"" + name + "\" could not be loaded");
      continue;
    }
    set.policies.emplace(name, std::move(*outcome.policy));
  }
  // Identities were checked against the names when the config was read; the check is repeated
  // here so that a set is never built with a mapping to nothing.
  set.identities = config.identities;
  set.files = config.policies;
  if (!set.identities.default_policy.empty() &&
      !config.policies.count(set.identities.default_policy)) {
    add("identities: the default policy \"" + set.identities.default_policy +
        "\" is not defined under policies:");
  }
  for (const auto& [cn, policy] : set.identities.by_common_name) {
    if (!config.policies.count(policy)) {
      add("identities: client \"" + cn + "\" maps to policy \"" + policy +
          "\", which is not defined under policies:");
    }
  }
  if (!errors.empty()) return Error(Errc::kPolicy, errors);
  return set;
}

namespace {

// The config file read again (on SIGHUP, or by the spawner), its errors as kPolicy. `strict`: the
// file and the directories above it pass StrictModes first (what root reads).
Result<ServerConfig> rereadConfig(const std::string& config_file, bool strict) {
  if (strict) {
    if (auto safe = checkStrictModes(config_file); !safe) return safe.error();
  }
  ServerConfig fresh;
  auto text = readFile(config_file, 1u << 20);
  if (!text) return text.error();
  if (auto r = applyConfigYaml(fresh, *text, config_file); !r) {
    return Error(Errc::kPolicy, r.error().detail());
  }
  return fresh;
}

}  // namespace

Result<PolicySet> reloadPolicySet(const std::string& config_file) {
  auto fresh = rereadConfig(config_file, false);
  if (!fresh) return fresh.error();
  return loadPolicySet(*fresh);
}

Result<std::map<std::string, std::string>> policyFilesForSpawner(const std::string& config_file) {
  auto fresh = rereadConfig(config_file, true);
  if (!fresh) return fresh.error();
  return fresh->policies;
}

Result<std::map<std::string, uint32_t>> poolSizesForSpawner(const std::string& config_file) {
  auto fresh = rereadConfig(config_file, true);
  if (!fresh) return fresh.error();
  return poolSizesOf(*fresh);
}

}  // namespace pyrun::server
