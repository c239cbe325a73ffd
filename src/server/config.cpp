// pyrund configuration: YAML keys and flags share one table of names, so the two cannot drift.
#include "server/config.h"

#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
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

Result<void> setU64(uint64_t& field, const std::string& value, const std::string& what) {
  auto v = parseUnsigned<uint64_t>(value, what, std::numeric_limits<uint64_t>::max());
  if (!v) return v.error();
  field = *v;
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
  } else if (key == "log_level") {
    if (!log::parseLevel(value, c.log_level)) {
      return Error(Errc::kInvalidArgument,
                   what + ": \"" + value + "\" is not one of debug, info, warning, error");
    }
  } else {
    return Error(Errc::kInvalidArgument, what + ": unknown key");
  }
  return {};
}

Result<void> setLimit(ServerLimits& l, const std::string& key, const std::string& value,
                      const std::string& what) {
  if (key == "cpu_seconds") return setU32(l.cpu_seconds, value, what);
  if (key == "wall_seconds") return setU32(l.wall_seconds, value, what);
  if (key == "memory_bytes") return setU64(l.memory_bytes, value, what);
  if (key == "output_bytes") return setU64(l.output_bytes, value, what);
  if (key == "file_size_bytes") return setU64(l.file_size_bytes, value, what);
  if (key == "open_files") return setU32(l.open_files, value, what);
  if (key == "processes") return setU32(l.processes, value, what);
  return Error(Errc::kInvalidArgument, what + ": unknown key");
}

struct Flag {
  const char* flag;
  const char* key;
};
constexpr Flag kFlags[] = {
    {"--listen", "listen"},     {"--port", "port"},         {"--port-file", "port_file"},
    {"--cert", "cert"},         {"--ca", "ca"},             {"--crl", "crl"},
    {"--max-jobs", "max_jobs"}, {"--queue", "queue"},       {"--user", "user"},
    {"--jobs-dir", "jobs_dir"}, {"--log-level", "log_level"},
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
      return Error(Errc::kInvalidArgument, "unexpected argument \"" + arg + "\" (see pyrund --help)");
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

Result<void> applyConfigYaml(ServerConfig& config, const std::string& yaml, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return Error(Errc::kInvalidArgument, where(name, e.mark) + e.msg);
  }
  if (root.IsNull()) return {};  // an empty file configures nothing
  if (!root.IsMap()) {
    return Error(Errc::kInvalidArgument, where(name, root.Mark()) + "the file must be a mapping of keys");
  }
  for (const auto& item : root) {
    const std::string key = item.first.Scalar();
    const YAML::Node& value = item.second;
    const std::string what = where(name, item.first.Mark()) + key;
    if (key == "limits") {
      if (!value.IsMap()) {
        return Error(Errc::kInvalidArgument,
                     where(name, value.Mark()) + "limits: expected a mapping of limit names");
      }
      for (const auto& limit : value) {
        const std::string lkey = limit.first.Scalar();
        const std::string lwhat = where(name, limit.first.Mark()) + "limits." + lkey;
        if (!limit.second.IsScalar()) {
          return Error(Errc::kInvalidArgument, lwhat + ": expected a number");
        }
        if (auto r = setLimit(config.limits, lkey, limit.second.Scalar(), lwhat); !r) {
          return r.error();
        }
      }
      continue;
    }
    if (!value.IsScalar()) {
      // A misspelt key is reported as unknown whatever its value looks like.
      ServerConfig scratch;
      if (auto probe = setKey(scratch, key, "0", what); !probe) {
        if (probe.error().detail().find("unknown key") != std::string::npos) return probe.error();
      }
      return Error(Errc::kInvalidArgument, what + ": expected a single value");
    }
    if (auto r = setKey(config, key, value.Scalar(), what); !r) return r.error();
  }
  return {};
}

Result<void> applyOverride(ServerConfig& config, const std::string& key, const std::string& value) {
  return setKey(config, key, value, flagOf(key));
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
    return Error(Errc::kInvalidArgument, "jobs_dir: \"" + c.jobs_dir + "\" is not an absolute path");
  }
  const ServerLimits& l = c.limits;
  if (l.cpu_seconds == 0 || l.wall_seconds == 0 || l.memory_bytes == 0 || l.output_bytes == 0 ||
      l.file_size_bytes == 0 || l.open_files == 0 || l.processes == 0) {
    return Error(Errc::kInvalidArgument, "limits: every limit must be greater than 0");
  }
  if (l.open_files < 16) {
    return Error(Errc::kInvalidArgument,
                 "limits.open_files: " + std::to_string(l.open_files) +
                     " is too low for Python to start (at least 16)");
  }
  return {};
}

Result<ServerConfig> resolveConfig(const CommandLine& command) {
  ServerConfig config;
  std::string file;
  if (command.config_file) {
    file = *command.config_file;
  } else {
    struct stat st{};
    if (::stat(kDefaultConfigFile, &st) == 0) file = kDefaultConfigFile;
  }
  if (!file.empty()) {
    auto text = readFile(file, 1u << 20);
    if (!text) return text.error();
    if (auto r = applyConfigYaml(config, *text, file); !r) return r.error();
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

std::string usage() {
  return R"(usage: pyrund [--config FILE] [--listen ADDR] [--port 9091] [--port-file FILE]
              [--cert FILE] [--ca FILE] [--crl FILE] [--max-jobs N] [--queue N]
              [--user NAME] [--jobs-dir DIR] [--log-level LEVEL]

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
  --help            this text

Exit status: 0 stopped by SIGTERM/SIGINT, 1 runtime failure, 2 usage or configuration error.
See docs/pyrund.md.
)";
}

}  // namespace pyrun::server
