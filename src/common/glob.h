// Matching of relative paths against glob patterns with "**" (the --get patterns of pyrun).
#pragma once

#include <string_view>

namespace pyrun {

// True when the relative path matches the pattern: components are matched one by one with
// fnmatch(3) and FNM_PERIOD (a leading '.' only matches explicitly), and a "**" component matches
// any number of components, none included. A pattern matching a directory matches everything
// below it ("out" matches "out/a.png").
bool pathMatches(std::string_view pattern, std::string_view path);

}  // namespace pyrun
