// The server config's `identities:` mapping: which policy a client certificate's CN runs under.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun::policy {

struct IdentityMap {
  // Policy for a CN that `clients` does not name; empty means such clients are refused.
  std::string default_policy;
  std::map<std::string, std::string, std::less<>> by_common_name;

  // The client's own mapping, else the default; nullopt when neither exists (refuse the client).
  std::optional<std::string> policyFor(std::string_view common_name) const;
};

// Parses the value of the `identities:` key:
//   identities:
//     default: default        # optional: policy for every other client
//     clients:                # optional: certificate CN -> policy name
//       alice: strict
// Policy names are letters, digits, '-' and '_'. When known_policies is not empty every name must
// be one of them. Errors are kPolicy with `file:line:col: message` lines.
Result<IdentityMap> parseIdentities(const YAML::Node& identities, const std::string& file,
                                    const std::vector<std::string>& known_policies = {});

// Parses a whole server config document and reads its top-level `identities` key (other keys
// belong to the server and are not looked at). A config without the key maps everyone to
// "default".
Result<IdentityMap> parseIdentitiesFromConfig(std::string_view yaml_text, const std::string& file,
                                              const std::vector<std::string>& known_policies = {});

}  // namespace pyrun::policy
