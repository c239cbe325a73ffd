// The pyrun command line: options, HOST[:PORT] targets, and the usage text.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace pyrun::client {

inline constexpr uint16_t kDefaultPort = 9091;
inline constexpr std::chrono::seconds kDefaultTimeout{10};

// A server address as typed: "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 literal.
struct Target {
  std::string host;  // without brackets
  std::optional<uint16_t> port;
  friend bool operator==(const Target&, const Target&) = default;
};

// Errors (kInvalidArgument): empty host, unbalanced brackets, a port that is not 1..65535.
Result<Target> parseTarget(std::string_view text);

// "host:port", or "[v6]:port" when host is an IPv6 literal: how messages name the server.
std::string formatEndpoint(std::string_view host, uint16_t port);

// One -f PATH[:DEST].
struct FileArg {
  std::string path;  // on this machine: a file or a directory (sent recursively)
  std::string dest;  // relative to the job's working directory; default the base name of path
  friend bool operator==(const FileArg&, const FileArg&) = default;
};

// Errors (kInvalidArgument): an empty PATH or DEST. The split is at the last ':' (a PATH holding
// ':' needs an explicit :DEST); DEST's name rules are checked when the upload is planned.
Result<FileArg> parseFileArg(std::string_view text);

struct Options {
  std::string cert;  // client bundle (me.pem)
  std::string ca;    // extra CA file; empty = the CA inside the bundle
  std::string pin;   // "sha256//..." or empty
  std::string host;
  uint16_t port = kDefaultPort;
  std::string bind_address;  // -b: the local IP address to connect from; empty = the kernel's pick
  std::chrono::seconds timeout = kDefaultTimeout;  // connect + TLS handshake + READY
  bool stats = false;
  bool timings = false;  // --timings: ask for the job's stage times and print them after it
  bool verbose = false;
  bool quiet = false;  // -q: no progress line
  // Send the *.py files and packages beside the script (--no-modules turns it off).
  bool modules = true;
  std::vector<FileArg> files;     // -f
  std::vector<std::string> gets;  // --get PATTERN: result files wanted back
  std::string output_dir = ".";   // -o DIR: where they land
  // -t: run the program on a pseudo-terminal (1), -tt: even without a local terminal (2).
  int terminal = 0;
  std::string script;  // path of the script on this machine
  std::vector<std::string> args;
};

// What the command line asks for: the usage text, or a run.
struct Command {
  bool help = false;
  Options options;
};

// The parts of the environment the command line depends on.
struct Environment {
  std::optional<std::string> pyrun_cert;  // $PYRUN_CERT
  std::optional<std::string> home;        // $HOME
  static Environment fromProcess();
};

// Parses argv[1..]. Options may come before HOST and between HOST and SCRIPT; everything after
// SCRIPT belongs to the script, even words starting with '-'. Errors (kInvalidArgument) are
// sentences without the "pyrun: " prefix, e.g. "unknown option --foo".
Result<Command> parseCommandLine(std::span<const std::string> args, const Environment& env);

// The text of `pyrun --help`.
std::string usage();

}  // namespace pyrun::client
