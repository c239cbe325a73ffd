// pyrun-ca: the admin's tool for the pyrun PKI (CA, server and client bundles, revocation, CRL).
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ca/certificate_authority.h"
#include "common/error.h"
#include "common/file.h"
#include "common/version.h"

namespace {

using pyrun::Errc;
using pyrun::Error;
using pyrun::Result;
namespace ca = pyrun::ca;

// Exit codes (docs/pyrun-ca.md, "Exit codes").
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotFound = 3;
constexpr int kExitExists = 4;
constexpr int kExitPermission = 5;
constexpr int kExitBusy = 6;

int exitCodeFor(const Error& e) {
  if (e.is(Errc::kInvalidArgument)) return kExitUsage;
  if (e.is(Errc::kNotFound)) return kExitNotFound;
  if (e.is(Errc::kAlreadyExists)) return kExitExists;
  if (e.is(Errc::kPermission)) return kExitPermission;
  if (e.is(Errc::kBusy)) return kExitBusy;
  return kExitFailure;
}

struct Command {
  const char* name;
  const char* synopsis;
  const char* help;
  std::set<std::string> value_options;  // take an argument
  std::set<std::string> flags;          // take none
  size_t min_args;
  size_t max_args;
};

const char kMainHelp[] =
    "usage: pyrun-ca COMMAND [ARGS] [--dir DIR]\n"
    "\n"
    "Runs the certificate authority of a pyrun deployment: pyrund admits only clients\n"
    "holding a certificate from this CA that is not in its revocation list (CRL).\n"
    "\n"
    "commands:\n"
    "  init     create a new CA\n"
    "  server   issue a server certificate bundle (DNS names and IP addresses)\n"
    "  client   issue a client bundle (me.pem) for `pyrun --cert`\n"
    "  list     list issued certificates: serial, kind, expiry, status, name\n"
    "  show     summarise a certificate (file, name or serial) with its SPKI pin\n"
    "  revoke   revoke a certificate and rewrite crl.pem at once\n"
    "  crl      write a fresh CRL (refresh its next-update time)\n"
    "  renew    issue a new certificate for a name; the old one is superseded\n"
    "\n"
    "--dir defaults to $PYRUN_CA_DIR, else /etc/pyrun/ca.\n"
    "`pyrun-ca COMMAND --help` describes each command; `pyrun-ca --version` prints the version.\n"
    "Reference: docs/pyrun-ca.md\n"
    "exit codes: 0 ok, 1 failure, 2 bad arguments or input, 3 not found,\n"
    "4 already exists, 5 permission or loose file modes, 6 CA locked by another pyrun-ca\n";

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"init",
       "pyrun-ca init [--dir DIR] [--name NAME] [--days 3650] [--key-type p256|ed25519] "
       "[--crl-url URL]",
       "Creates a CA in DIR (made if missing): ca.pem, private/ca.key (0600), index.txt,\n"
       "issued/, crl.pem. An existing CA is never overwritten.\n"
       "  --name NAME        the CA's common name (default \"pyrun CA\")\n"
       "  --days N           CA validity in days (default 3650)\n"
       "  --key-type TYPE    p256 (ECDSA P-256, default) or ed25519; leaves use the same\n"
       "  --crl-url URL      http(s) URL of the CRL, put into server certificates\n",
       {"--dir", "--name", "--days", "--key-type", "--crl-url"},
       {},
       0,
       0},
      {"server",
       "pyrun-ca server NAME... [--dir DIR] [--days 90] [--out FILE] [--force]",
       "Issues a server certificate (serverAuth only) for the DNS names and IP addresses given\n"
       "(auto-typed subjectAltNames; the first NAME is the common name) and writes the bundle:\n"
       "certificate, CA certificate, private key, mode 0600.\n"
       "  --days N           validity in days (default 90)\n"
       "  --out FILE         bundle path (default ./server.pem)\n"
       "  --force            replace FILE if it exists\n"
       "  --not-before TIME  start of validity, YYYY-MM-DDTHH:MM:SSZ (for backdating, tests)\n"
       "  --not-after TIME   end of validity instead of --days (for tests)\n",
       {"--dir", "--days", "--out", "--not-before", "--not-after"},
       {"--force"},
       1,
       64},
      {"client",
       "pyrun-ca client NAME [--dir DIR] [--days 90] [--out FILE] [--force]",
       "Issues a client certificate (clientAuth only, CN = NAME) and writes the bundle that\n"
       "`pyrun --cert` takes: certificate, CA certificate, private key, mode 0600. NAME is the\n"
       "identity pyrund maps to a policy; one active certificate per name.\n"
       "  --days N           validity in days (default 90)\n"
       "  --out FILE         bundle path (default ./NAME.pem)\n"
       "  --force            replace FILE if it exists\n"
       "  --not-before TIME  start of validity, YYYY-MM-DDTHH:MM:SSZ (for backdating, tests)\n"
       "  --not-after TIME   end of validity instead of --days (for tests)\n",
       {"--dir", "--days", "--out", "--not-before", "--not-after"},
       {"--force"},
       1,
       1},
      {"list",
       "pyrun-ca list [--dir DIR] [--all]",
       "Lists active certificates: serial, kind, expiry, status, names.\n"
       "  --all              include expired, revoked and superseded certificates\n"
       "Warns when the CRL expires within 30 days.\n",
       {"--dir"},
       {"--all"},
       0,
       0},
      {"show",
       "pyrun-ca show FILE|NAME|SERIAL [--dir DIR]",
       "Summarises a certificate: subject, issuer, serial, kind, names, validity, key type,\n"
       "status in this CA, SHA-256 fingerprint and SPKI pin (for `pyrun --pin`). FILE may be\n"
       "a certificate or a bundle.\n",
       {"--dir"},
       {},
       1,
       1},
      {"revoke",
       "pyrun-ca revoke NAME|SERIAL [--dir DIR] [--reason REASON]",
       "Revokes a certificate and rewrites crl.pem at once (pyrund reloads it on SIGHUP).\n"
       "  --reason REASON    unspecified (default), keyCompromise, affiliationChanged,\n"
       "                     superseded, cessationOfOperation, privilegeWithdrawn\n",
       {"--dir", "--reason"},
       {},
       1,
       1},
      {"crl",
       "pyrun-ca crl [--dir DIR] [--days 365]",
       "Writes a fresh crl.pem valid for N days (default 365). An expired CRL makes pyrund\n"
       "refuse every client: run this well before it expires (list warns 30 days ahead).\n",
       {"--dir", "--days"},
       {},
       0,
       0},
      {"renew",
       "pyrun-ca renew NAME|SERIAL [--dir DIR] [--days 90] [--out FILE] [--force]",
       "Issues a new certificate with the same names and kind, and supersedes the old one:\n"
       "it goes into the CRL at once, so hand out the new bundle promptly.\n"
       "  --days N           validity in days (default 90)\n"
       "  --out FILE         bundle path (default ./NAME.pem or ./server.pem)\n"
       "  --force            replace FILE if it exists (usually needed: the old bundle)\n",
       {"--dir", "--days", "--out"},
       {"--force"},
       1,
       1},
  };
  return kCommands;
}

struct Parsed {
  std::vector<std::string> args;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
  std::string get(const std::string& key, const std::string& fallback) const {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  }
};

Error usage(const Command& c, const std::string& what) {
  return Error(Errc::kInvalidArgument,
               std::string(c.name) + ": " + what + " (see `pyrun-ca " + c.name + " --help`)");
}

Result<Parsed> parse(const Command& c, const std::vector<std::string>& argv) {
  Parsed p;
  bool options_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string a = argv[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      p.args.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    std::string value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      inline_value = true;
    }
    if (c.flags.count(a) != 0) {
      if (inline_value) return usage(c, "option " + a + " takes no value");
      p.flags.insert(a);
    } else if (c.value_options.count(a) != 0) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) return usage(c, "option " + a + " needs a value");
        value = argv[++i];
      }
      if (p.values.count(a) != 0) return usage(c, "option " + a + " is given twice");
      p.values[a] = value;
    } else {
      return usage(c, "unknown option '" + a + "'");
    }
  }
  if (p.args.size() < c.min_args) {
    return usage(c, c.min_args == 1 && c.max_args == 1 ? "expected one argument"
                                                       : "expected at least one name");
  }
  if (p.args.size() > c.max_args) {
    return usage(c, "unexpected argument '" + p.args[c.max_args] + "'");
  }
  return p;
}

Result<int> days(const Parsed& p, int fallback) {
  if (p.values.count("--days") == 0) return fallback;
  return ca::parseDays(p.values.at("--days"), "--days");
}

void printWarning(const ca::CertificateAuthority& authority) {
  auto w = authority.crlWarning(std::time(nullptr));
  if (!w) {
    std::cerr << "pyrun-ca: warning: " << w.error().detail() << "\n";
  } else if (!w->empty()) {
    std::cerr << "pyrun-ca: " << *w << "\n";
  }
}

Result<ca::IssueOptions> issueOptions(const Command& c, const Parsed& p, ca::Kind kind) {
  ca::IssueOptions o;
  o.kind = kind;
  o.names = p.args;
  auto d = days(p, 90);
  if (!d) return d.error();
  o.days = *d;
  o.out = p.get("--out", "");
  o.force = p.flags.count("--force") != 0;
  if (p.values.count("--days") != 0 && p.values.count("--not-after") != 0) {
    return usage(c, "give either --days or --not-after, not both");
  }
  if (p.values.count("--not-before") != 0) {
    auto t = ca::parseTime(p.values.at("--not-before"), "--not-before");
    if (!t) return t.error();
    o.not_before = *t;
  }
  if (p.values.count("--not-after") != 0) {
    auto t = ca::parseTime(p.values.at("--not-after"), "--not-after");
    if (!t) return t.error();
    o.not_after = *t;
  }
  return o;
}

void printIssued(const ca::Issued& issued) {
  std::cout << "wrote " << issued.bundle_path << ": " << ca::kindName(issued.entry.kind)
            << " certificate for '" << issued.entry.name() << "'";
  if (issued.entry.names.size() > 1) {
    std::cout << " (also";
    for (size_t i = 1; i < issued.entry.names.size(); ++i)
      std::cout << " " << issued.entry.names[i];
    std::cout << ")";
  }
  std::cout << ", serial " << issued.entry.serial << ", valid until "
            << ca::formatTime(issued.entry.not_after) << "\n";
}

Result<void> runInit(const Parsed& p, const std::string& dir) {
  ca::InitOptions o;
  o.dir = dir;
  o.name = p.get("--name", o.name);
  auto d = days(p, 3650);
  if (!d) return d.error();
  o.days = *d;
  if (p.values.count("--key-type") != 0) {
    auto k = ca::parseKeyType(p.values.at("--key-type"));
    if (!k) return k.error();
    o.key_type = *k;
  }
  o.crl_url = p.get("--crl-url", "");
  if (auto r = ca::initCa(o); !r) return r;
  std::cout << "created CA '" << o.name << "' in " << dir << ": " << dir << "/ca.pem (valid "
            << o.days << " days), key in " << dir << "/private/ca.key, CRL " << dir << "/crl.pem\n";
  return {};
}

Result<void> runList(const Parsed& p, const std::string& dir) {
  auto authority = ca::CertificateAuthority::open(dir, false);
  if (!authority) return authority.error();
  bool all = p.flags.count("--all") != 0;
  std::time_t now = std::time(nullptr);
  std::vector<ca::IndexEntry> rows;
  for (const auto& e : authority->entries()) {
    if (all || e.active(now)) rows.push_back(e);
  }
  std::printf("%-32s  %-6s  %-20s  %-10s  %s\n", "SERIAL", "KIND", "EXPIRES", "STATUS", "NAME");
  for (const auto& e : rows) {
    std::string names;
    for (const auto& n : e.names) names += (names.empty() ? "" : ",") + n;
    std::printf("%-32s  %-6s  %-20s  %-10s  %s\n", e.serial.c_str(), ca::kindName(e.kind).c_str(),
                ca::formatTime(e.not_after).c_str(), e.describeStatus(now).c_str(), names.c_str());
  }
  std::fflush(stdout);
  printWarning(*authority);
  return {};
}

Result<void> runShow(const Parsed& p, const std::string& dir) {
  const std::string& arg = p.args[0];
  std::time_t now = std::time(nullptr);
  struct stat st {};
  if (::stat(arg.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    auto pem = pyrun::readFile(arg);
    if (!pem) return pem.error();
    auto cert = ca::parseCertificatePem(*pem, arg);
    if (!cert) return cert.error();
    // The CA's status is shown when the file comes from this CA; a file is shown without one.
    const ca::IndexEntry* entry = nullptr;
    auto authority = ca::CertificateAuthority::open(dir, false);
    if (authority && X509_check_issued(authority->certificate(), cert->get()) == X509_V_OK) {
      auto serial = ca::serialHex(X509_get0_serialNumber(cert->get()));
      if (serial) entry = authority->bySerial(*serial);
    }
    auto text = ca::describeCertificate(cert->get(), entry, now);
    if (!text) return text.error();
    std::cout << *text;
    return {};
  }
  auto authority = ca::CertificateAuthority::open(dir, false);
  if (!authority) return authority.error();
  auto entry = authority->find(arg);
  if (!entry) return entry.error();
  auto cert = authority->load(*entry);
  if (!cert) return cert.error();
  auto text = ca::describeCertificate(cert->get(), &*entry, now);
  if (!text) return text.error();
  std::cout << *text;
  return {};
}

Result<void> runRevoke(const Parsed& p, const std::string& dir) {
  ca::Reason reason = ca::Reason::kUnspecified;
  if (p.values.count("--reason") != 0) {
    auto r = ca::parseReason(p.values.at("--reason"));
    if (!r) return r.error();
    reason = *r;
  }
  auto authority = ca::CertificateAuthority::open(dir, true);
  if (!authority) return authority.error();
  auto revoked = authority->revoke(p.args[0], reason);
  if (!revoked) return revoked.error();
  std::cout << "revoked " << ca::kindName(revoked->kind) << " certificate '" << revoked->name()
            << "' (serial " << revoked->serial << ", " << ca::reasonName(reason) << "); wrote "
            << dir << "/crl.pem: reload pyrund (SIGHUP) to apply it\n";
  printWarning(*authority);
  return {};
}

Result<void> runCrl(const Parsed& p, const std::string& dir) {
  auto d = days(p, 365);
  if (!d) return d.error();
  auto authority = ca::CertificateAuthority::open(dir, true);
  if (!authority) return authority.error();
  auto next = authority->refreshCrl(*d);
  if (!next) return next.error();
  std::cout << "wrote " << dir << "/crl.pem, valid until " << ca::formatTime(*next) << "\n";
  std::cout.flush();
  printWarning(*authority);
  return {};
}

Result<void> runIssue(const Command& c, const Parsed& p, const std::string& dir, ca::Kind kind) {
  auto o = issueOptions(c, p, kind);
  if (!o) return o.error();
  auto authority = ca::CertificateAuthority::open(dir, true);
  if (!authority) return authority.error();
  auto issued = authority->issue(*o);
  if (!issued) return issued.error();
  printIssued(*issued);
  return {};
}

Result<void> runRenew(const Command& c, const Parsed& p, const std::string& dir) {
  auto o = issueOptions(c, p, ca::Kind::kClient);
  if (!o) return o.error();
  auto authority = ca::CertificateAuthority::open(dir, true);
  if (!authority) return authority.error();
  auto old = authority->find(p.args[0]);
  if (!old) return old.error();
  auto issued = authority->renew(old->serial, *o);
  if (!issued) return issued.error();
  printIssued(*issued);
  std::cout << "superseded serial " << old->serial << ": it is in " << dir
            << "/crl.pem from now on\n";
  std::cout.flush();
  printWarning(*authority);
  return {};
}

int runMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kMainHelp;
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kMainHelp;
    return kExitOk;
  }
  if (args[0] == "--version") {
    std::cout << "pyrun-ca " << pyrun::kVersion << "\n";
    return kExitOk;
  }
  const Command* command = nullptr;
  for (const auto& c : commands()) {
    if (args[0] == c.name) command = &c;
  }
  if (command == nullptr) {
    std::cerr << "pyrun-ca: unknown command '" << args[0]
              << "' (commands: init, server, client, list, show, revoke, crl, renew; see "
                 "`pyrun-ca --help`)\n";
    return kExitUsage;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  for (const auto& a : rest) {
    if (a == "--") break;
    if (a == "--help" || a == "-h") {
      std::cout << "usage: " << command->synopsis << "\n\n"
                << command->help
                << "  --dir DIR          the CA directory (default $PYRUN_CA_DIR, else "
                   "/etc/pyrun/ca)\n";
      return kExitOk;
    }
  }
  auto parsed = parse(*command, rest);
  Result<void> result;
  if (parsed) {
    std::string dir = parsed->get("--dir", ca::defaultDir());
    std::string name = command->name;
    if (name == "init")
      result = runInit(*parsed, dir);
    else if (name == "server")
      result = runIssue(*command, *parsed, dir, ca::Kind::kServer);
    else if (name == "client")
      result = runIssue(*command, *parsed, dir, ca::Kind::kClient);
    else if (name == "list")
      result = runList(*parsed, dir);
    else if (name == "show")
      result = runShow(*parsed, dir);
    else if (name == "revoke")
      result = runRevoke(*parsed, dir);
    else if (name == "crl")
      result = runCrl(*parsed, dir);
    else
      result = runRenew(*command, *parsed, dir);
  } else {
    result = parsed.error();
  }
  if (!result) {
    std::cout.flush();
    std::cerr << "pyrun-ca: " << result.error().detail() << "\n";
    return exitCodeFor(result.error());
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return runMain(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "pyrun-ca: internal error: " << e.what() << "\n";
    return kExitFailure;
  }
}
