// pyrund's configuration: defaults, the YAML file and command-line flags (flags override the file).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "policy/identities.h"
#include "policy/policy.h"
#include "server/proxy_protocol.h"

namespace pyrun::server {

struct ServerConfig {
  std::string listen = "0.0.0.0";  // IPv4 or IPv6 literal
  uint16_t port = 9091;            // 0 = a free port chosen by the kernel
  std::string port_file;           // written with the bound port after listening
  std::string cert;                // server bundle from `pyrun-ca server` (required)
  std::string ca;                  // CA for client certificates; empty = the CA in the bundle
  std::string crl;                 // empty = no revocation list
  uint32_t max_jobs = 0;           // 0 until resolved: the number of cores
  uint32_t queue = 64;             // sessions that may wait for a slot
  std::string user = "nobody";     // the front drops to this user when started as root
  std::string jobs_dir = "/var/lib/pyrun/jobs";
  log::Level log_level = log::Level::kInfo;
  // Policy name -> policy file; relative paths are relative to the config file's directory.
  std::map<std::string, std::string> policies = {{"default", "/etc/pyrun/policy/default.yaml"}};
  // The warm pool: interpreters kept parked, fully confined, per policy (docs/SANDBOX.md, "The
  // warm pool"). pool_size applies to every policy that pool_sizes does not name; unset, it is the
  // number of cores. 0 turns the pool off.
  std::optional<uint32_t> pool_size;
  std::map<std::string, uint32_t> pool_sizes;
  // Certificate CN -> policy name (identities: in the file); everyone else gets "default".
  policy::IdentityMap identities = defaultIdentities();
  // Deadlines (seconds): TLS handshake; READY to a complete RUN; running jobs after SIGTERM.
  uint32_t handshake_timeout_seconds = 10;
  uint32_t idle_timeout_seconds = 30;
  // A client that takes no byte of what the server sends it for this long is cut off (its job
  // killed). Long: a user paging the output (pyrun ... | less) stops reading for a while.
  uint32_t write_stall_timeout_seconds = 600;
  uint32_t shutdown_grace_seconds = 10;
  // Caps before authentication: open connections, TLS handshakes in progress (all, and per source
  // address). Over a cap, a new connection is closed before any TLS byte is read.
  uint32_t max_connections = 1024;
  uint32_t max_handshakes = 64;
  uint32_t max_handshakes_per_source = 8;
  // Per identity (certificate CN): jobs running or queued at once, and RUNs accepted per minute.
  uint32_t max_jobs_per_identity = 4;
  uint32_t job_starts_per_minute = 60;
  // On a CRL reload, kill the running jobs of certificates it now revokes.
  bool kill_revoked_jobs = true;
  // How often the CRL file is checked for a change (0 = only on SIGHUP).
  uint32_t crl_check_seconds = 5;
  // Job cgroups: this pyrund's own subtree (each pyrund on a host needs its own: the spawner
  // empties it at start), which version to try first ("v2", "v1") or "none", and whether a host
  // without usable cgroups is an error rather than rlimits alone.
  // Empty: derived from jobs_dir by cgroupSubtreeFor() (one jobs_dir, one subtree).
  std::string cgroup_subtree;
  std::string cgroups = "v2";
  bool require_cgroups = false;
  // Load balancers whose connections start with a PROXY protocol v2 header naming the real client
  // (HAProxy's send-proxy-v2). From these addresses the header is required; from any other it is
  // refused as bad TLS bytes. Empty: no proxy is trusted.
  std::vector<AddressRange> trusted_proxies;
  // metrics_listen: "ADDR:PORT" ("127.0.0.1:9100", "[::1]:9100") where plain HTTP serves
  // /metrics and /healthz; empty = off. Parsed into metrics_address and metrics_port.
  std::string metrics_listen;
  std::string metrics_address;
  uint16_t metrics_port = 0;
  // JSON-lines audit log; empty = none.
  std::string audit_log;
  // The file the configuration was read from (empty = none); SIGHUP re-reads its policies and
  // identities.
  std::string config_file;

  static policy::IdentityMap defaultIdentities() {
    policy::IdentityMap m;
    m.default_policy = "default";
    return m;
  }
};

inline constexpr const char* kDefaultConfigFile = "/etc/pyrun/pyrund.yaml";

// What the command line asked for.
struct CommandLine {
  bool help = false;
  bool version = false;
  std::optional<std::string> config_file;
  // Flags given, as (key, value) in config-file key names ("port", "max_jobs"), applied after the
  // file so that they win.
  std::vector<std::pair<std::string, std::string>> overrides;
};

// Parses argv[1..]. Errors (kInvalidArgument): unknown flag, missing value, stray argument.
Result<CommandLine> parseCommandLine(const std::vector<std::string>& args);

// Applies a YAML document to config. `name` prefixes errors, which carry file:line:col: unknown
// keys (kNotFound), wrong types, out-of-range numbers, a document that is not a mapping, a
// malformed `policies:` mapping, an `identities:` entry naming a policy that `policies:` does not
// define (kInvalidArgument).
// Relative policy paths are resolved against name's directory.
Result<void> applyConfigYaml(ServerConfig& config, const std::string& yaml,
                             const std::string& name);

// Applies one flag value (key in file names). Errors name the flag: "--port: 70000 is not a port"
// (kInvalidArgument; kNotFound for a key that does not exist).
Result<void> applyOverride(ServerConfig& config, const std::string& key, const std::string& value);

// Full resolution: defaults, then the file (command.config_file, else kDefaultConfigFile when it
// exists), then the flags; max_jobs 0 becomes the number of cores; then validate (cert given,
// max_jobs >= 1, limits > 0).
Result<ServerConfig> resolveConfig(const CommandLine& command);

// Checks the cross-field rules on a resolved config (including: the identities' default policy is
// defined).
Result<void> validateConfig(const ServerConfig& config);

// Each policy's pool size: pool_sizes' entry, else pool_size, else the number of cores.
std::map<std::string, uint32_t> poolSizesOf(const ServerConfig& config);

// The cgroup subtree this pyrund uses: cgroup_subtree when set; else "pyrun" for the default
// jobs_dir, and "pyrun-<hash of jobs_dir>" for any other. Two pyrund instances must not share a
// subtree (the spawner empties it at start), and two instances sharing a jobs_dir would already
// clash, so the jobs directory is the natural identity of an instance.
std::string cgroupSubtreeFor(const ServerConfig& config);

// Splits "ADDR:PORT" (IPv4 literal, or IPv6 literal in brackets) into address and port.
// Errors (kInvalidArgument) name `what`: no port, a port out of range, an address that is not an
// IP literal (host names are refused: the listener must not depend on DNS at start).
Result<std::pair<std::string, uint16_t>> parseListenAddress(const std::string& text,
                                                            const std::string& what);

// Text of --help.
std::string usage();

}  // namespace pyrun::server
