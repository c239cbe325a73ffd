// pyrund configuration: YAML keys and flags share one table of names, so the two cannot drift.
#include "server/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdio>
#include <limits>
#include <thread>

#include "common/file.h"

namespace pyrun::server {
namespace {

std::string where(const std::string& name, const YAML::Mark& mark) {
  // yaml-cpp counts from 0; editors count from 1.
  return name + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ": ";
}

template <class T>
Result<T> parseUnsigned(const std::string& text, const std::string& what, uint64_t max) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return Error(Errc::kInvalidArgument, what + ": \"" + text + "\" is not a non-negative integer");
  }
  if (value > max) {
    return Error(Errc::kInvalidArgument,
                 what + ": " + text + " is larger than the maximum " + std::to_string(max));
  }
  return static_cast<T>(value);
}

Result<void> setU32(uint32_t& field, const std::string& value, const std::string& what) {
  auto v = parseUnsigned<uint32_t>(value, what, std::numeric_limits<uint32_t>::max());
  if (!v) return v.error();
  field = *v;
  return {};
}

Result<void> setBool(bool& field, const std::string& value, const std::string& what) {
  if (value == "true" || value == "yes" || value == "on") {
    field = true;
  } else if (value == "false" || value == "no" || value == "off") {
    field = false;
  } else {
    return Error(Errc::kInvalidArgument, what + ": \"" + value + "\" is not true or false");
  }
  return {};
}

// Sets one top-level key; `what` is how errors name it ("--port" or "pyrund.yaml:3:7: port").
Result<void> setKey(ServerConfig& c, const std::string& key, const std::string& value,
                    const std::string& what) {
  if (key == "listen") {
    c.listen = value;
  } else if (key == "port") {
    auto v = parseUnsigned<uint16_t>(value, what, 65535);
    if (!v) return v.error();
    c.port = *v;
  } else if (key == "port_file") {
    c.port_file = value;
  } else if (key == "cert") {
    c.cert = value;
  } else if (key == "ca") {
    c.ca = value;
  } else if (key == "crl") {
    c.crl = value;
  } else if (key == "max_jobs") {
    return setU32(c.max_jobs, value, what);
  } else if (key == "queue") {
    return setU32(c.queue, value, what);
  } else if (key == "user") {
    c.user = value;
  } else if (key == "jobs_dir") {
    c.jobs_dir = value;
  } else if (key == "handshake_timeout_seconds") {
    return setU32(c.handshake_timeout_seconds, value, what);
  } else if (key == "idle_timeout_seconds") {
    return setU32(c.idle_timeout_seconds, value, what);
  } else if (key == "write_stall_timeout_seconds") {
    return setU32(c.write_stall_timeout_seconds, value, what);
  } else if (key == "shutdown_grace_seconds") {
    return setU32(c.shutdown_grace_seconds, value, what);
  } else if (key == "max_connections") {
    return setU32(c.max_connections, value, what);
  } else if (key == "max_handshakes") {
    return setU32(c.max_handshakes, value, what);
  } else if (key == "max_handshakes_per_source") {
    return setU32(c.max_handshakes_per_source, value, what);
  } else if (key == "max_jobs_per_identity") {
    return setU32(c.max_jobs_per_identity, value, what);
  } else if (key == "job_starts_per_minute") {
    return setU32(c.job_starts_per_minute, value, what);
  } else if (key == "crl_check_seconds") {
    return setU32(c.crl_check_seconds, value, what);
  } else if (key == "kill_revoked_jobs") {
    return setBool(c.kill_revoked_jobs, value, what);
  } else if (key == "require_cgroups") {
    return setBool(c.require_cgroups, value, what);
  } else if (key == "cgroups") {
    if (value != "v2" && value != "v1" && value != "none") {
      return Error(Errc::kInvalidArgument, what + ": \"" + value + "\" is not one of v2, v1, none");
    }
    c.cgroups = value;
  } else if (key == "cgroup_subtree") {
    bool ok = !value.empty() && value.size() <= 64 && value[0] != '.';
    for (char ch : value) {
      ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.');
    }
    if (!ok) {
      return Error(Errc::kInvalidArgument,
                   what + ": \"" + value +
                       "\" must be a single directory name of letters, digits, "
                       "'-', '_' or '.'");
    }
    c.cgroup_subtree = value;
  } else if (key == "metrics_listen") {
    if (value.empty()) {
      c.metrics_listen.clear();
      return {};
    }
    auto parsed = parseListenAddress(value, what);
    if (!parsed) return parsed.error();
    c.metrics_listen = value;
    c.metrics_address = parsed->first;
    c.metrics_port = parsed->second;
  } else if (key == "audit_log") {
    c.audit_log = value;
  } else if (key == "log_level") {
    if (!log::parseLevel(value, c.log_level)) {
      return Error(Errc::kInvalidArgument,
                   what + ": \"" + value + "\" is not one of debug, info, warning, error");
    }
  } else {
    return Error(Errc::kNotFound, what + ": unknown key");
  }
  return {};
}

bool isPolicyName(const std::string& name) {
  if (name.empty()) return false;
  for (char ch : name) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_';
    if (!ok) return false;
  }
  return true;
}

// The directory part of a config file name, for resolving the relative paths it contains.
std::string directoryOf(const std::string& file) {
  auto slash = file.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return file.substr(0, slash);
}

Result<void> applyPolicies(ServerConfig& config, const YAML::Node& value, const std::string& name) {
  if (!value.IsMap() || value.size() == 0) {
    return Error(Errc::kInvalidArgument,
                 where(name, value.Mark()) + "policies: expected a mapping of policy name to file");
  }
  std::map<std::string, std::string> out;
  for (const auto& item : value) {
    const std::string policy = item.first.Scalar();
    const std::string what = where(name, item.first.Mark()) + "policies." + policy;
    if (!isPolicyName(policy)) {
      return Error(Errc::kInvalidArgument,
                   what + ": a policy name must be letters, digits, '-' or '_'");
    }
    if (!item.second.IsScalar() || item.second.Scalar().empty()) {
      return Error(Errc::kInvalidArgument, what + ": expected the path of a policy file");
    }
    std::string path = item.second.Scalar();
    if (path.front() != '/') path = directoryOf(name) + "/" + path;
    if (!out.emplace(policy, path).second) {
      return Error(Errc::kInvalidArgument, what + ": defined twice");
    }
  }
  config.policies = std::move(out);
  return {};
}

// pool_size: one number for every policy, or a mapping of policy name to number.
Result<void> applyPoolSize(ServerConfig& config, const YAML::Node& value, const std::string& name) {
  if (value.IsScalar()) {
    uint32_t n = 0;
    if (auto r = setU32(n, value.Scalar(), where(name, value.Mark()) + "pool_size"); !r) return r;
    config.pool_size = n;
    return {};
  }
  if (!value.IsMap()) {
    return Error(Errc::kInvalidArgument,
                 where(name, value.Mark()) +
                     "pool_size: expected a number, or a mapping of policy name to number");
  }
  std::map<std::string, uint32_t> out;
  for (const auto& item : value) {
    const std::string policy = item.first.Scalar();
    const std::string what = where(name, item.first.Mark()) + "pool_size." + policy;
    if (!item.second.IsScalar()) return Error(Errc::kInvalidArgument, what + ": expected a number");
    uint32_t n = 0;
    if (auto r = setU32(n, item.second.Scalar(), what); !r) return r;
    if (!out.emplace(policy, n).second) {
      return Error(Errc::kInvalidArgument, what + ": defined twice");
    }
  }
  config.pool_sizes = std::move(out);
  return {};
}

Result<void> applyTrustedProxies(ServerConfig& config, const YAML::Node& value,
                                 const std::string& name) {
  if (!value.IsSequence()) {
    return Error(Errc::kInvalidArgument,
                 where(name, value.Mark()) +
                     "trusted_proxies: expected a list of addresses or networks (CIDR)");
  }
  std::vector<AddressRange> out;
  for (const auto& item : value) {
    const std::string what = where(name, item.Mark()) + "trusted_proxies: ";
    if (!item.IsScalar()) {
      return Error(Errc::kInvalidArgument, what + "expected an address or network (CIDR)");
    }
    auto range = parseAddressRange(item.Scalar());
    if (!range) return Error(Errc::kInvalidArgument, what + range.error().detail());
    out.push_back(std::move(*range));
  }
  config.trusted_proxies = std::move(out);
  return {};
}

}  // namespace

namespace {

struct Flag {
  const char* flag;
  const char* key;
};
constexpr Flag kFlags[] = {
    {"--listen", "listen"},
    {"--port", "port"},
    {"--port-file", "port_file"},
    {"--cert", "cert"},
    {"--ca", "ca"},
    {"--crl", "crl"},
    {"--max-jobs", "max_jobs"},
    {"--queue", "queue"},
    {"--user", "user"},
    {"--jobs-dir", "jobs_dir"},
    {"--log-level", "log_level"},
    {"--audit-log", "audit_log"},
    {"--metrics-listen", "metrics_listen"},
};

std::string flagOf(const std::string& key) {
  for (const auto& f : kFlags) {
    if (key == f.key) return f.flag;
  }
  return "--" + key;
}

}  // namespace

Result<CommandLine> parseCommandLine(const std::vector<std::string>& args) {
  CommandLine out;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "--help" || arg == "-h") {
      out.help = true;
      continue;
    }
    if (arg == "--version") {
      out.version = true;
      continue;
    }
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    const char* key = nullptr;
    if (arg == "--config") {
      key = "config";
    } else {
      for (const auto& f : kFlags) {
        if (arg == f.flag) key = f.key;
      }
    }
    if (key == nullptr) {
      if (arg.rfind("-", 0) == 0) {
        return Error(Errc::kInvalidArgument, "unknown option " + arg + " (see pyrund --help)");
      }
      return Error(Errc::kInvalidArgument,
                   "unexpected argument \"" + arg + "\" (see pyrund --help)");
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return Error(Errc::kInvalidArgument, arg + " needs a value");
      }
      value = args[++i];
    }
    if (std::string_view(key) == "config") {
      out.config_file = value;
    } else {
      out.overrides.emplace_back(key, value);
    }
  }
  return out;
}

Result<void> applyConfigYaml(ServerConfig& config, const std::string& yaml,
                             const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return Error(Errc::kInvalidArgument, where(name, e.mark) + e.msg);
  }
  if (root.IsNull()) return {};  // an empty file configures nothing
  if (!root.IsMap()) {
    return Error(Errc::kInvalidArgument,
                 where(name, root.Mark()) + "the file must be a mapping of keys");
  }
  YAML::Node identities;
  bool has_identities = false;
  for (const auto& item : root) {
    const std::string key = item.first.Scalar();
    const YAML::Node& value = item.second;
    const std::string what = where(name, item.first.Mark()) + key;
    if (key == "limits") {
      return Error(Errc::kInvalidArgument,
                   what +
                       ": job limits now come from the policy files (see policies: in "
                       "docs/pyrund.md and policy/README.md)");
    }
    if (key == "policies") {
      if (auto r = applyPolicies(config, value, name); !r) return r.error();
      continue;
    }
    if (key == "pool_size") {
      if (auto r = applyPoolSize(config, value, name); !r) return r.error();
      continue;
    }
    if (key == "trusted_proxies") {
      if (auto r = applyTrustedProxies(config, value, name); !r) return r.error();
      continue;
    }
    if (key == "identities") {
      identities = value;  // parsed last: it may name any policy of the file
      has_identities = true;
      continue;
    }
    if (!value.IsScalar()) {
      // A misspelt key is reported as unknown whatever its value looks like.
      ServerConfig scratch;
      if (auto probe = setKey(scratch, key, "0", what); !probe) {
        if (probe.error().is(Errc::kNotFound)) return probe.error();
      }
      return Error(Errc::kInvalidArgument, what + ": expected a single value");
    }
    if (auto r = setKey(config, key, value.Scalar(), what); !r) return r.error();
  }
  if (has_identities) {
    std::vector<std::string> known;
    for (const auto& [policy, file] : config.policies) known.push_back(policy);
    auto map = policy::parseIdentities(identities, name, known);
    if (!map) return Error(Errc::kInvalidArgument, map.error().detail());
    config.identities = std::move(*map);
  }
  return {};
}

Result<void> applyOverride(ServerConfig& config, const std::string& key, const std::string& value) {
  return setKey(config, key, value, flagOf(key));
}

std::map<std::string, uint32_t> poolSizesOf(const ServerConfig& config) {
  unsigned cores = std::thread::hardware_concurrency();
  std::map<std::string, uint32_t> out;
  for (const auto& [policy, file] : config.policies) {
    auto it = config.pool_sizes.find(policy);
    out[policy] = it != config.pool_sizes.end() ? it->second
                                                : config.pool_size.value_or(cores == 0 ? 1 : cores);
  }
  return out;
}

std::string cgroupSubtreeFor(const ServerConfig& config) {
  if (!config.cgroup_subtree.empty()) return config.cgroup_subtree;
  if (config.jobs_dir == ServerConfig{}.jobs_dir) return "pyrun";
  // FNV-1a: stable across runs and hosts, so a restarted pyrund finds its leftovers again.
  uint32_t hash = 2166136261u;
  for (char ch : config.jobs_dir) hash = (hash ^ static_cast<unsigned char>(ch)) * 16777619u;
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", hash);
  return std::string("pyrun-") + hex;
}

Result<void> validateConfig(const ServerConfig& c) {
  if (c.cert.empty()) {
    return Error(Errc::kInvalidArgument,
                 "no server certificate: give --cert FILE (a bundle from `pyrun-ca server`) or "
                 "cert: in the config file");
  }
  if (c.max_jobs == 0) return Error(Errc::kInvalidArgument, "max_jobs must be at least 1");
  if (c.listen.empty()) return Error(Errc::kInvalidArgument, "listen: the address is empty");
  if (c.user.empty()) return Error(Errc::kInvalidArgument, "user: the user name is empty");
  if (c.jobs_dir.empty() || c.jobs_dir.front() != '/') {
    return Error(Errc::kInvalidArgument,
                 "jobs_dir: \"" + c.jobs_dir + "\" is not an absolute path");
  }
  if (!c.identities.default_policy.empty() && !c.policies.count(c.identities.default_policy)) {
    return Error(Errc::kInvalidArgument, "identities: the default policy \"" +
                                             c.identities.default_policy +
                                             "\" is not defined under policies:");
  }
  for (const auto& [cn, policy] : c.identities.by_common_name) {
    if (!c.policies.count(policy)) {
      return Error(Errc::kInvalidArgument, "identities: client \"" + cn + "\" maps to policy \"" +
                                               policy + "\", which is not defined under policies:");
    }
  }
  for (const auto& [policy, size] : c.pool_sizes) {
    if (!c.policies.count(policy)) {
      return Error(Errc::kInvalidArgument,
                   "pool_size: policy \"" + policy + "\" is not defined under policies:");
    }
  }
  if (c.handshake_timeout_seconds == 0 || c.idle_timeout_seconds == 0 ||
      c.write_stall_timeout_seconds == 0) {
    return Error(Errc::kInvalidArgument,
                 "handshake_timeout_seconds, idle_timeout_seconds and "
                 "write_stall_timeout_seconds must be at least 1");
  }
  if (c.max_connections == 0 || c.max_handshakes == 0 || c.max_handshakes_per_source == 0) {
    return Error(
        Errc::kInvalidArgument,
        "max_connections, max_handshakes and max_handshakes_per_source must be at least 1");
  }
  if (c.max_jobs_per_identity == 0 || c.job_starts_per_minute == 0) {
    return Error(Errc::kInvalidArgument,
                 "max_jobs_per_identity and job_starts_per_minute must be at least 1");
  }
  return {};
}

Result<ServerConfig> resolveConfig(const CommandLine& command) {
  ServerConfig config;
  std::string file;
  if (command.config_file) {
    file = *command.config_file;
  } else {
    struct stat st {};
    if (::stat(kDefaultConfigFile, &st) == 0) file = kDefaultConfigFile;
  }
  if (!file.empty()) {
    auto text = readFile(file, 1u << 20);
    if (!text) return text.error();
    if (auto r = applyConfigYaml(config, *text, file); !r) return r.error();
    config.config_file = file;
  }
  for (const auto& [key, value] : command.overrides) {
    if (auto r = applyOverride(config, key, value); !r) return r.error();
  }
  if (config.max_jobs == 0) {
    unsigned cores = std::thread::hardware_concurrency();
    config.max_jobs = cores == 0 ? 1 : cores;
  }
  if (auto r = validateConfig(config); !r) return r.error();
  return config;
}

Result<std::pair<std::string, uint16_t>> parseListenAddress(const std::string& text,
                                                            const std::string& what) {
  const auto bad = [&](const std::string& why) {
    return Error(Errc::kInvalidArgument,
                 what + ": \"" + text + "\" " + why +
                     " (expected ADDR:PORT, e.g. 127.0.0.1:9464 or [::1]:9464)");
  };
  std::string address;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("has no port");
    }
    address = text.substr(1, close - 1);
    port = text.substr(close + 2);
    in6_addr a6{};
    if (::inet_pton(AF_INET6, address.c_str(), &a6) != 1) return bad("is not an IPv6 address");
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return bad("has no port");
    address = text.substr(0, colon);
    port = text.substr(colon + 1);
    in_addr a4{};
    if (address.find(':') != std::string::npos) return bad("needs brackets around an IPv6 address");
    if (::inet_pton(AF_INET, address.c_str(), &a4) != 1) return bad("is not an IPv4 address");
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    return bad("has no valid port");
  }
  return std::make_pair(address, static_cast<uint16_t>(std::stoul(port)));
}

std::string usage() {
  return R"(usage: pyrund [--config FILE] [--listen ADDR] [--port 9091] [--port-file FILE]
              [--cert FILE] [--ca FILE] [--crl FILE] [--max-jobs N] [--queue N]
              [--user NAME] [--jobs-dir DIR] [--log-level LEVEL] [--audit-log FILE]
              [--metrics-listen ADDR:PORT] [--version]

Runs Python programs sent by pyrun clients over mutual TLS (protocol pyrun/1).

  --config FILE     YAML configuration (default /etc/pyrun/pyrund.yaml when it exists);
                    the flags below override it
  --listen ADDR     address to listen on, IPv4 or IPv6 literal (default 0.0.0.0)
  --port N          TCP port (default 9091; 0 = a free port)
  --port-file FILE  write the bound port to FILE once listening
  --cert FILE       server bundle written by `pyrun-ca server` (required)
  --ca FILE         CA that issues client certificates (default: the CA in the bundle)
  --crl FILE        certificate revocation list checked on every connection
  --max-jobs N      jobs running at once (default: number of cores)
  --queue N         sessions waiting for a slot before "server busy" (default 64)
  --user NAME       unprivileged user the network front runs as when started as root
                    (default nobody)
  --jobs-dir DIR    parent of the jobs' private working directories
                    (default /var/lib/pyrun/jobs)
  --log-level L     debug, info, warning or error (default info)
  --audit-log FILE  append one JSON line per connection, job and reload to FILE
  --metrics-listen ADDR:PORT
                    serve Prometheus /metrics and /healthz over plain HTTP there
                    (default off; bind it to a loopback or admin address)

Policies (policies:, identities:), deadlines, caps and quotas are set in the file only.
  --help            this text
  --version         print the version and exit

Signals: SIGTERM/SIGINT stop (running jobs get shutdown_grace_seconds), SIGHUP reloads the
policies, the identities, the CRL and reopens the audit log.
Exit status: 0 stopped by SIGTERM/SIGINT, 1 runtime failure, 2 usage or configuration error
(including an invalid policy).
See docs/pyrund.md.
)";
}

}  // namespace pyrun::server
