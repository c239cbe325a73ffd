// index.txt and ca.conf: plain text so an admin can read (and grep) them.
#include "ca/index.h"

#include <cctype>
#include <sstream>

#include "ca/openssl_util.h"

namespace pyrun::ca {
namespace {

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = text.find(sep, start);
    out.emplace_back(text.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

bool isHex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) ||
        std::isupper(static_cast<unsigned char>(c)))
      return false;
  }
  return true;
}

}  // namespace

std::string kindName(Kind kind) { return kind == Kind::kServer ? "server" : "client"; }

std::string statusName(Status status) {
  switch (status) {
    case Status::kValid:
      return "valid";
    case Status::kRevoked:
      return "revoked";
    case Status::kSuperseded:
      return "superseded";
  }
  return "valid";
}

std::string IndexEntry::describeStatus(std::time_t now) const {
  if (status == Status::kValid && not_after <= now) return "expired";
  return statusName(status);
}

Result<std::vector<IndexEntry>> parseIndex(std::string_view text, const std::string& path) {
  std::vector<IndexEntry> entries;
  size_t line_no = 0;
  for (const auto& line : split(text, '\n')) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    auto bad = [&](const std::string& why) {
      return Error(Errc::kInvalidArgument,
                   path + ":" + std::to_string(line_no) + ": " + why + " (the index is damaged)");
    };
    auto f = split(line, '\t');
    if (f.size() != 8) return bad("expected 8 tab-separated fields");
    IndexEntry e;
    if (!isHex(f[0])) return bad("serial '" + f[0] + "' is not lower-case hex");
    e.serial = f[0];
    if (f[1] == "server")
      e.kind = Kind::kServer;
    else if (f[1] == "client")
      e.kind = Kind::kClient;
    else
      return bad("unknown kind '" + f[1] + "'");
    if (f[2] == "valid")
      e.status = Status::kValid;
    else if (f[2] == "revoked")
      e.status = Status::kRevoked;
    else if (f[2] == "superseded")
      e.status = Status::kSuperseded;
    else
      return bad("unknown status '" + f[2] + "'");
    auto nb = parseTime(f[3], "not_before");
    auto na = parseTime(f[4], "not_after");
    if (!nb) return bad(nb.error().detail());
    if (!na) return bad(na.error().detail());
    e.not_before = *nb;
    e.not_after = *na;
    if (f[5] != "-") {
      auto ra = parseTime(f[5], "revoked_at");
      if (!ra) return bad(ra.error().detail());
      e.revoked_at = *ra;
    }
    if (f[6] != "-") {
      auto r = parseReason(f[6]);
      if (!r) return bad(r.error().detail());
      e.reason = *r;
    }
    if (e.inCrl() && e.revoked_at == 0) return bad("a revoked certificate has no revocation time");
    e.names = split(f[7], ',');
    for (const auto& n : e.names) {
      if (n.empty()) return bad("empty name");
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

std::string formatIndex(const std::vector<IndexEntry>& entries) {
  std::ostringstream out;
  out << "# pyrun-ca index: serial kind status not_before not_after revoked_at reason names\n";
  for (const auto& e : entries) {
    out << e.serial << '\t' << kindName(e.kind) << '\t' << statusName(e.status) << '\t'
        << formatTime(e.not_before) << '\t' << formatTime(e.not_after) << '\t'
        << (e.revoked_at != 0 ? formatTime(e.revoked_at) : "-") << '\t'
        << (e.inCrl() ? reasonName(e.reason) : "-") << '\t';
    for (size_t i = 0; i < e.names.size(); ++i) out << (i ? "," : "") << e.names[i];
    out << '\n';
  }
  return out.str();
}

Result<CaConfig> parseConfig(std::string_view text, const std::string& path) {
  CaConfig c;
  size_t line_no = 0;
  for (const auto& raw : split(text, '\n')) {
    ++line_no;
    std::string line = trim(raw);
    if (line.empty() || line[0] == '#') continue;
    auto where = path + ":" + std::to_string(line_no) + ": ";
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return Error(Errc::kInvalidArgument, where + "expected 'key = value'");
    }
    std::string key = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    if (key == "crl_url") {
      c.crl_url = value;
    } else if (key == "crl_days") {
      auto d = parseDays(value, "crl_days");
      if (!d) return Error(Errc::kInvalidArgument, where + d.error().detail());
      c.crl_days = *d;
    } else if (key == "crl_number") {
      try {
        size_t used = 0;
        c.crl_number = std::stoll(value, &used);
        if (used != value.size() || c.crl_number < 0) throw std::invalid_argument(value);
      } catch (const std::exception&) {
        return Error(Errc::kInvalidArgument, where + "crl_number must be a whole number");
      }
    } else {
      return Error(Errc::kInvalidArgument, where + "unknown setting '" + key + "'");
    }
  }
  return c;
}

std::string formatConfig(const CaConfig& c) {
  std::ostringstream out;
  out << "# pyrun-ca settings for this CA (see docs/pyrun-ca.md)\n"
      << "crl_url = " << c.crl_url << "\n"
      << "crl_days = " << c.crl_days << "\n"
      << "crl_number = " << c.crl_number << "\n";
  return out.str();
}

}  // namespace pyrun::ca
