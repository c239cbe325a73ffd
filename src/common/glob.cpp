// Glob matching of relative paths (see glob.h).
#include "common/glob.h"

#include <fnmatch.h>

#include <string>
#include <vector>

namespace pyrun {
namespace {

std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  for (size_t begin = 0;;) {
    const size_t end = path.find('/', begin);
    out.push_back(path.substr(begin, end == std::string_view::npos ? end : end - begin));
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  return out;
}

// Pattern components p[pi..] against path components c[ci..]; a path that runs out while the
// pattern still has components does not match, one that goes on after the pattern ended does
// (everything below a matched directory).
bool matchFrom(const std::vector<std::string_view>& p, size_t pi,
               const std::vector<std::string_view>& c, size_t ci) {
  if (pi == p.size()) return true;
  if (p[pi] == "**") {
    for (size_t k = ci; k <= c.size(); ++k) {
      if (matchFrom(p, pi + 1, c, k)) return true;
    }
    return false;
  }
  if (ci == c.size()) return false;
  const std::string pattern(p[pi]), name(c[ci]);
  if (::fnmatch(pattern.c_str(), name.c_str(), FNM_PERIOD) != 0) return false;
  return matchFrom(p, pi + 1, c, ci + 1);
}

}  // namespace

bool pathMatches(std::string_view pattern, std::string_view path) {
  return matchFrom(components(pattern), 0, components(path), 0);
}

}  // namespace pyrun
