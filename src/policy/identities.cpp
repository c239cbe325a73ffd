// Client identity -> policy name, from the server config.
#include "policy/identities.h"

#include <algorithm>
#include <set>

namespace pyrun::policy {
namespace {

std::string where(const std::string& file, const YAML::Node& node) {
  return file + ":" + std::to_string(node.Mark().line + 1) + ":" +
         std::to_string(node.Mark().column + 1) + ": ";
}

bool isPolicyName(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

class Parser {
 public:
  Parser(const std::string& file, const std::vector<std::string>& known)
      : file_(file), known_(known) {}

  Result<IdentityMap> parse(const YAML::Node& node) {
    if (!node.IsMap()) {
      fail(node, "identities must be a mapping with default and clients");
    } else {
      std::set<std::string> seen;
      for (auto it = node.begin(); it != node.end(); ++it) {
        YAML::Node key = it->first;  // a copy: it-> yields a short-lived proxy
        std::string name = key.IsScalar() ? key.Scalar() : "";
        if (name != "default" && name != "clients") {
          fail(key, "unknown key \"" + name + "\" in identities (known: default, clients)");
        } else if (!seen.insert(name).second) {
          fail(key, "duplicate key \"" + name + "\" in identities");
        } else if (name == "default") {
          if (auto p = policyName(it->second)) map_.default_policy = *p;
        } else {
          parseClients(it->second);
        }
      }
    }
    if (!errors_.empty()) return Error(Errc::kPolicy, errors_);
    return map_;
  }

 private:
  void fail(const YAML::Node& node, const std::string& message) {
    if (!errors_.empty()) errors_ += "\n";
    errors_ += where(file_, node) + message;
  }

  std::optional<std::string> policyName(const YAML::Node& node) {
    if (!node.IsScalar() || !isPolicyName(node.Scalar())) {
      fail(node, "a policy name must be letters, digits, '-' or '_'");
      return std::nullopt;
    }
    if (!known_.empty() && std::find(known_.begin(), known_.end(), node.Scalar()) == known_.end()) {
      fail(node, "unknown policy \"" + node.Scalar() + "\"");
      return std::nullopt;
    }
    return node.Scalar();
  }

  void parseClients(const YAML::Node& node) {
    if (!node.IsMap()) {
      fail(node, "identities.clients must map certificate common names to policy names");
      return;
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar() || it->first.Scalar().empty()) {
        fail(it->first, "a client must be named by its certificate's common name");
        continue;
      }
      auto policy = policyName(it->second);
      if (!policy) continue;
      if (!map_.by_common_name.emplace(it->first.Scalar(), *policy).second) {
        fail(it->first, "client \"" + it->first.Scalar() + "\" is listed twice");
      }
    }
  }

  const std::string& file_;
  const std::vector<std::string>& known_;
  IdentityMap map_;
  std::string errors_;
};

}  // namespace

std::optional<std::string> IdentityMap::policyFor(std::string_view common_name) const {
  auto it = by_common_name.find(common_name);
  if (it != by_common_name.end()) return it->second;
  if (!default_policy.empty()) return default_policy;
  return std::nullopt;
}

Result<IdentityMap> parseIdentities(const YAML::Node& identities, const std::string& file,
                                    const std::vector<std::string>& known_policies) {
  return Parser(file, known_policies).parse(identities);
}

Result<IdentityMap> parseIdentitiesFromConfig(std::string_view yaml_text, const std::string& file,
                                              const std::vector<std::string>& known_policies) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return Error(Errc::kPolicy, file + ":" + std::to_string(e.mark.line + 1) + ":" +
                                    std::to_string(e.mark.column + 1) + ": YAML syntax: " + e.msg);
  }
  if (root.IsMap()) {
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "identities") {
        return parseIdentities(it->second, file, known_policies);
      }
    }
  } else if (!root.IsNull()) {
    return Error(Errc::kPolicy, where(file, root) + "the server config must be a mapping");
  }
  IdentityMap everyone;
  everyone.default_policy = "default";
  return everyone;
}

}  // namespace pyrun::policy
