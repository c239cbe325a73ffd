// pyrund's configuration: defaults, the YAML file and command-line flags (flags override the file).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/log.h"

namespace pyrun::server {

// Limits every job runs under (the sandbox issue moves them into policies mapped by certificate CN).
struct ServerLimits {
  uint32_t cpu_seconds = 10;
  uint32_t wall_seconds = 60;
  uint64_t memory_bytes = 512ull << 20;
  uint64_t output_bytes = 64ull << 20;  // stdout + stderr together
  uint64_t file_size_bytes = 64ull << 20;
  uint32_t open_files = 256;
  uint32_t processes = 64;
};

struct ServerConfig {
  std::string listen = "0.0.0.0";  // IPv4 or IPv6 literal
  uint16_t port = 9091;             // 0 = a free port chosen by the kernel
  std::string port_file;            // written with the bound port after listening
  std::string cert;                 // server bundle from `pyrun-ca server` (required)
  std::string ca;                   // CA for client certificates; empty = the CA in the bundle
  std::string crl;                  // empty = no revocation list
  uint32_t max_jobs = 0;            // 0 until resolved: the number of cores
  uint32_t queue = 64;              // sessions that may wait for a slot
  std::string user = "nobody";      // the front drops to this user when started as root
  std::string jobs_dir = "/var/lib/pyrun/jobs";
  log::Level log_level = log::Level::kInfo;
  ServerLimits limits;
  // Not configurable from the file: deadlines of the session before a job exists.
  uint32_t handshake_timeout_seconds = 10;
  uint32_t request_timeout_seconds = 30;
};

inline constexpr const char* kDefaultConfigFile = "/etc/pyrun/pyrund.yaml";

// What the command line asked for.
struct CommandLine {
  bool help = false;
  std::optional<std::string> config_file;
  // Flags given, as (key, value) in config-file key names ("port", "max_jobs"), applied after the
  // file so that they win.
  std::vector<std::pair<std::string, std::string>> overrides;
};

// Parses argv[1..]. Errors (kInvalidArgument): unknown flag, missing value, stray argument.
Result<CommandLine> parseCommandLine(const std::vector<std::string>& args);

// Applies a YAML document to config. `name` prefixes errors, which carry file:line:col: unknown
// keys, wrong types, out-of-range numbers, a document that is not a mapping.
Result<void> applyConfigYaml(ServerConfig& config, const std::string& yaml, const std::string& name);

// Applies one flag value (key in file names). Errors name the flag: "--port: 70000 is not a port".
Result<void> applyOverride(ServerConfig& config, const std::string& key, const std::string& value);

// Full resolution: defaults, then the file (command.config_file, else kDefaultConfigFile when it
// exists), then the flags; max_jobs 0 becomes the number of cores; then validate (cert given,
// max_jobs >= 1, limits > 0).
Result<ServerConfig> resolveConfig(const CommandLine& command);

// Checks the cross-field rules on a resolved config.
Result<void> validateConfig(const ServerConfig& config);

// Text of --help.
std::string usage();

}  // namespace pyrun::server
