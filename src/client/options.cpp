// The pyrun command line.
#include "client/options.h"

#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <cstdlib>

namespace pyrun::client {
namespace {

Error usageError(std::string sentence) {
  return Error(Errc::kInvalidArgument, std::move(sentence));
}

Result<uint16_t> parsePort(std::string_view text, std::string_view what) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 ||
      value > 65535) {
    return usageError(std::string(what) + " \"" + std::string(text) +
                      "\" is not a port number (1-65535)");
  }
  return static_cast<uint16_t>(value);
}

Result<std::chrono::seconds> parseTimeout(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 ||
      value > 3600) {
    return usageError("--timeout \"" + std::string(text) +
                      "\" is not a number of seconds between 1 and 3600");
  }
  return std::chrono::seconds(value);
}

// Options that take a value, in their long and short spellings.
bool takesValue(std::string_view name) {
  return name == "--cert" || name == "--ca" || name == "-p" || name == "--port" || name == "-b" ||
         name == "--pin" || name == "--timeout" || name == "-f" || name == "--file" ||
         name == "--get" || name == "-o" || name == "--output";
}

}  // namespace

Result<Target> parseTarget(std::string_view text) {
  Target target;
  std::string_view port_text;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      return usageError("host \"" + std::string(text) + "\" has '[' without ']'");
    }
    target.host = std::string(text.substr(1, close - 1));
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return usageError("host \"" + std::string(text) +
                          "\" has text after ']' that is not :PORT");
      }
      port_text = rest.substr(1);
      has_port = true;
    }
  } else {
    auto colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) == std::string_view::npos) {
      target.host = std::string(text.substr(0, colon));
      port_text = text.substr(colon + 1);
      has_port = true;
    } else {
      // No colon, or several: a name or a bare IPv6 literal ("::1"), which cannot carry a port.
      target.host = std::string(text);
    }
  }
  if (target.host.empty()) return usageError("host \"" + std::string(text) + "\" has no host name");
  if (target.host.find_first_of("[]/ ") != std::string::npos) {
    return usageError("host \"" + std::string(text) + "\" is not a host name or IP address");
  }
  if (has_port) {
    auto port = parsePort(port_text, "port in \"" + std::string(text) + "\"");
    if (!port) return port.error();
    target.port = *port;
  }
  return target;
}

std::string formatEndpoint(std::string_view host, uint16_t port) {
  std::string out;
  if (host.find(':') != std::string_view::npos) {
    // Appended, not "[" + std::string(host): g++ 12 -O3 warns -Wrestrict on the latter (a
    // libstdc++ false positive, GCC PR 105329).
    out = "[";
    out.append(host);
    out += ']';
  } else {
    out = std::string(host);
  }
  return out + ":" + std::to_string(port);
}

Environment Environment::fromProcess() {
  Environment env;
  if (const char* c = std::getenv("PYRUN_CERT"); c != nullptr && *c != '\0') env.pyrun_cert = c;
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') env.home = h;
  return env;
}

Result<FileArg> parseFileArg(std::string_view text) {
  FileArg f;
  auto colon = text.rfind(':');
  f.path = std::string(text.substr(0, colon));
  if (colon != std::string_view::npos) f.dest = std::string(text.substr(colon + 1));
  while (f.path.size() > 1 && f.path.back() == '/') f.path.pop_back();
  if (f.path.empty()) return usageError("-f \"" + std::string(text) + "\" has no PATH");
  if (colon != std::string_view::npos && f.dest.empty()) {
    return usageError("-f \"" + std::string(text) + "\" has an empty DEST after ':'");
  }
  if (colon == std::string_view::npos) {
    auto slash = f.path.find_last_of('/');
    f.dest = slash == std::string::npos ? f.path : f.path.substr(slash + 1);
  }
  while (f.dest.size() > 1 && f.dest.back() == '/') f.dest.pop_back();
  return f;
}

Result<Command> parseCommandLine(std::span<const std::string> args, const Environment& env) {
  Command command;
  Options& o = command.options;
  std::optional<std::string> cert;
  std::optional<uint16_t> flag_port;
  std::optional<std::string> target_text;
  bool options_done = false;

  size_t i = 0;
  for (; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (!options_done && arg == "--") {
      options_done = true;
      continue;
    }
    if (options_done || arg.empty() || arg.front() != '-' || arg == "-") {
      if (!target_text) {
        target_text = std::string(arg);
        continue;
      }
      break;  // SCRIPT: it and everything after it belong to the script
    }
    std::string name(arg);
    std::optional<std::string> value;
    if (arg.starts_with("--")) {
      if (auto eq = arg.find('='); eq != std::string_view::npos) {
        name = std::string(arg.substr(0, eq));
        value = std::string(arg.substr(eq + 1));
      }
    } else if (arg.size() > 2 && arg.starts_with("-p")) {
      name = "-p";
      value = std::string(arg.substr(2));
    }
    if (name == "-h" || name == "--help") {
      command.help = true;
      return command;
    }
    if (name == "-q" || name == "--quiet") {
      if (value) return usageError("option " + name + " takes no value");
      o.quiet = true;
      continue;
    }
    if (name == "-t" || name == "-tt" || name == "--tty") {
      if (value) return usageError("option " + name + " takes no value");
      o.terminal += name == "-tt" ? 2 : 1;
      continue;
    }
    if (name == "--no-modules") {
      if (value) return usageError("option " + name + " takes no value");
      o.modules = false;
      continue;
    }
    if (name == "-v" || name == "--verbose" || name == "--stats" || name == "--timings") {
      if (value) return usageError("option " + name + " takes no value");
      (name == "--stats" ? o.stats : name == "--timings" ? o.timings : o.verbose) = true;
      continue;
    }
    if (!takesValue(name)) return usageError("unknown option " + name + " (see pyrun --help)");
    if (!value) {
      if (i + 1 >= args.size()) return usageError("option " + name + " needs a value");
      value = args[++i];
    }
    if (name == "--cert") {
      if (value->empty()) return usageError("--cert needs a file name");
      cert = *value;
    } else if (name == "--ca") {
      if (value->empty()) return usageError("--ca needs a file name");
      o.ca = *value;
    } else if (name == "-p" || name == "--port") {
      auto port = parsePort(*value, name);
      if (!port) return port.error();
      flag_port = *port;
    } else if (name == "-b") {
      boost::system::error_code ec;
      (void)boost::asio::ip::make_address(*value, ec);
      if (ec) return usageError("-b \"" + *value + "\" is not an IPv4 or IPv6 address");
      o.bind_address = *value;
    } else if (name == "--pin") {
      if (!value->starts_with("sha256//") || value->size() == 8) {
        return usageError("--pin \"" + *value + "\" is not of the form sha256//BASE64");
      }
      o.pin = *value;
    } else if (name == "-f" || name == "--file") {
      auto f = parseFileArg(*value);
      if (!f) return f.error();
      o.files.push_back(std::move(*f));
    } else if (name == "--get") {
      if (value->empty()) return usageError("--get needs a pattern");
      o.gets.push_back(*value);
    } else if (name == "-o" || name == "--output") {
      if (value->empty()) return usageError(name + " needs a directory");
      o.output_dir = *value;
    } else if (name == "--timeout") {
      auto t = parseTimeout(*value);
      if (!t) return t.error();
      o.timeout = *t;
    }
  }
  if (!target_text) return usageError("missing HOST and SCRIPT (see pyrun --help)");
  if (i >= args.size()) return usageError("missing SCRIPT after " + *target_text);
  o.script = args[i];
  if (o.script.empty()) return usageError("SCRIPT is an empty file name");
  o.args.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());

  auto target = parseTarget(*target_text);
  if (!target) return target.error();
  o.host = target->host;
  if (target->port && flag_port && *target->port != *flag_port) {
    return usageError("two different ports: -p " + std::to_string(*flag_port) + " and " +
                      *target_text);
  }
  o.port = target->port ? *target->port : flag_port.value_or(kDefaultPort);

  if (cert) {
    o.cert = *cert;
  } else if (env.pyrun_cert) {
    o.cert = *env.pyrun_cert;
  } else if (env.home) {
    o.cert = *env.home + "/.config/pyrun/me.pem";
  } else {
    return usageError(
        "no client certificate: give --cert FILE or set PYRUN_CERT (HOME is not set)");
  }
  return command;
}

std::string usage() {
  return R"(usage: pyrun [OPTIONS] HOST[:PORT] SCRIPT [ARGS...]

Runs the Python program SCRIPT on the pyrund server HOST over mutual TLS: its output streams back
live, stdin and Ctrl-C are forwarded, and pyrun exits with the program's exit status.

options (before SCRIPT; everything after SCRIPT goes to the program):
  --cert FILE        client bundle (certificate, CA, key) from `pyrun-ca client`;
                     default $PYRUN_CERT, else ~/.config/pyrun/me.pem
  --ca FILE          trust this CA for the server instead of the one inside the bundle
  -p, --port PORT    server port (default 9091; HOST:PORT and [IPv6]:PORT also work)
  -b ADDR            connect from this local address (on hosts with several)
  --pin sha256//KEY  also require this SHA-256 pin of the server's public key
  --timeout SECONDS  limit for connecting, the TLS handshake and the server's greeting (default 10)
  -f, --file PATH[:DEST]
                     also send PATH (a file, or a directory recursively) into the job's
                     working directory as DEST (default: its base name); repeatable
  --no-modules       do not send the *.py files and packages beside SCRIPT
  --get PATTERN      bring back the files matching PATTERN (relative to the job's working
                     directory: out/*.png, report.csv, results/**) when the program ends;
                     repeatable
  -o, --output DIR   where --get files land, under their relative paths (default: .)
  -t, --tty          run the program on a terminal (prompts, pdb, getpass, curses), as ssh -t:
                     this terminal is in raw mode while the program runs, Ctrl-C and
                     Ctrl-D are keys for the program, `~.` at the start of a line ends the
                     session; stdout and stderr arrive merged and \n as \r\n. Needs a
                     terminal on stdin; -tt forces it without one
  --stats            print CPU time, wall time, peak memory, output and transfer bytes
  --timings          after the job, print when it reached each stage (the server's from
                     its accept, pyrun's own from its connect), in ms
  -v, --verbose      say what happens (connection, files, queue, job id)
  -q, --quiet        no progress line for transfers on a terminal
  -h, --help         print this text
  --version          print pyrun's version (alone: `pyrun --version`)

exit status: the program's; 128+N when it died of signal N; 255 when pyrun itself failed
(one line on stderr starting with "pyrun: "). See docs/pyrun.md.
)";
}

}  // namespace pyrun::client
