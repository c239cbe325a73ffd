// The policies pyrund serves with and which client identity runs under which: loaded together at
// start and on SIGHUP, replaced as a whole or not at all.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/error.h"
#include "policy/identities.h"
#include "policy/policy.h"
#include "server/config.h"

namespace pyrun::server {

struct PolicySet {
  // Keyed by the name in the config's `policies:` (what JobSpec.policy carries to the spawner).
  std::map<std::string, policy::Policy> policies;
  policy::IdentityMap identities;
  // Policy name -> file, as the config gave them (what the spawner is told to load).
  std::map<std::string, std::string> files;

  // The policy name for a certificate CN (its own mapping, else the default); empty when the
  // client has neither and must be refused.
  std::string policyNameFor(std::string_view common_name) const;
};

// Loads every policy file of config.policies and checks that config.identities names only those.
// Errors are kPolicy; the detail has one line per mistake, `file:line:col: message` for mistakes
// inside a policy file (every invalid policy is reported, not only the first).
// check, when given, runs before each policy file is read (pyrund's start passes StrictModes).
Result<PolicySet> loadPolicySet(const ServerConfig& config,
                                const policy::PolicyFileCheck& check = {});

// For SIGHUP: re-reads config_file and loads its `policies:` and `identities:` (other keys need a
// restart and are not looked at, but the file must still be a valid config). Errors as above, or
// the config file's own `file:line:col` error.
Result<PolicySet> reloadPolicySet(const std::string& config_file);

// For the root spawner's reload: the policy files config_file names (name -> file), after
// StrictModes accepted config_file. The policies themselves are not opened here: the spawner loads
// them, each checked with StrictModes before it is read, so that a policy file someone else could
// have written makes root open nothing it names. Errors: the StrictModes refusal (kPermission),
// the config file's read or `file:line:col` error.
Result<std::map<std::string, std::string>> policyFilesForSpawner(const std::string& config_file);

// For the same reload: each policy's warm pool size as config_file now says (poolSizesOf), after
// StrictModes accepted it. Errors as policyFilesForSpawner's.
Result<std::map<std::string, uint32_t>> poolSizesForSpawner(const std::string& config_file);

}  // namespace pyrun::server
