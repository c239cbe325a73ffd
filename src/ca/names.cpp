// Name, number and reason parsing for pyrun-ca.
#include "ca/names.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

namespace pyrun::ca {
namespace {

bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

std::string normalise(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '-' || c == '_') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

constexpr std::array<std::pair<Reason, const char*>, 6> kReasons = {{
    {Reason::kUnspecified, "unspecified"},
    {Reason::kKeyCompromise, "keyCompromise"},
    {Reason::kAffiliationChanged, "affiliationChanged"},
    {Reason::kSuperseded, "superseded"},
    {Reason::kCessationOfOperation, "cessationOfOperation"},
    {Reason::kPrivilegeWithdrawn, "privilegeWithdrawn"},
}};

}  // namespace

Result<SubjectName> parseServerName(std::string_view name) {
  std::string s(name);
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
    inet_ntop(AF_INET, buf, text, sizeof text);
    return SubjectName{SubjectName::Type::kIp, text};
  }
  if (inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    inet_ntop(AF_INET6, buf, text, sizeof text);
    return SubjectName{SubjectName::Type::kIp, text};
  }
  auto bad = [&](const std::string& why) {
    return Error(Errc::kInvalidArgument,
                 "'" + s + "' is not a valid DNS name or IP address: " + why);
  };
  if (s.empty()) return bad("it is empty");
  if (s.size() > 253) return bad("it is longer than 253 characters");
  std::string lower;
  size_t start = 0;
  std::string last_label;
  while (true) {
    size_t dot = s.find('.', start);
    std::string label = s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool wildcard = start == 0 && label == "*" && dot != std::string::npos;
    if (!wildcard) {
      if (label.empty()) return bad("it has an empty label");
      if (label.size() > 63) return bad("a label is longer than 63 characters");
      for (char c : label) {
        if (!isAlnum(c) && c != '-') return bad(std::string("it contains '") + c + "'");
      }
      if (label.front() == '-' || label.back() == '-') {
        return bad("a label starts or ends with '-'");
      }
    }
    last_label = label;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // "999.1.1.1" passes the label rules but is a mistyped address, not a name: no top-level domain
  // is all digits.
  if (std::all_of(last_label.begin(), last_label.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
    return bad("it looks like an IP address but is not one");
  }
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return SubjectName{SubjectName::Type::kDns, lower};
}

Result<void> checkClientName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && isAlnum(name.front()) &&
            std::all_of(name.begin(), name.end(), [](char c) {
              return isAlnum(c) || c == '.' || c == '_' || c == '@' || c == '-';
            });
  if (!ok) {
    return Error(Errc::kInvalidArgument,
                 "client name '" + std::string(name) +
                     "' must be 1-64 letters, digits, '.', '_', '@' or '-', starting with a "
                     "letter or digit");
  }
  return {};
}

Result<int> parseDays(std::string_view text, std::string_view option) {
  auto bad = [&] {
    return Error(Errc::kInvalidArgument, std::string(option) + " must be a whole number of days " +
                                             "from 1 to 36500, not '" + std::string(text) + "'");
  };
  if (text.empty() || text.size() > 5) return bad();
  int v = 0;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return bad();
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > 36500) return bad();
  return v;
}

Result<Reason> parseReason(std::string_view text) {
  std::string want = normalise(text);
  std::string all;
  for (const auto& [reason, name] : kReasons) {
    if (normalise(name) == want) return reason;
    all += all.empty() ? "" : ", ";
    all += name;
  }
  return Error(Errc::kInvalidArgument,
               "unknown revocation reason '" + std::string(text) + "': use one of " + all);
}

std::string reasonName(Reason reason) {
  for (const auto& [r, name] : kReasons) {
    if (r == reason) return name;
  }
  return "unspecified";
}

std::vector<std::string> closeMatches(std::string_view name,
                                      const std::vector<std::string>& known) {
  std::string want = normalise(name);
  // Typos of one or two characters; longer names tolerate a bit more.
  size_t limit = std::max<size_t>(2, want.size() / 4);
  std::vector<std::pair<size_t, std::string>> scored;
  std::set<std::string> seen;
  for (const auto& k : known) {
    if (!seen.insert(k).second) continue;
    size_t d = editDistance(want, normalise(k));
    if (d <= limit) scored.emplace_back(d, k);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < 3; ++i) out.push_back(scored[i].second);
  return out;
}

}  // namespace pyrun::ca
