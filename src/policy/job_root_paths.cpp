// Following an interpreter's path through its symbolic links to check the job's root holds it all.
#include "policy/job_root_paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <deque>

namespace pyrun::policy {
namespace {

constexpr int kMaxLinks = 40;  // as the kernel's path walk (ELOOP)

bool isUnder(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir == "/" || path[dir.size()] == '/'));
}

bool inJobRoot(const std::string& path, const std::vector<std::string>& extra_paths) {
  for (const char* dir : kJobSystemPaths) {
    if (isUnder(path, dir)) return true;
  }
  for (const char* file : kJobEtcFiles) {
    if (isUnder(path, file)) return true;
  }
  for (const auto& dir : extra_paths) {
    if (isUnder(path, dir)) return true;
  }
  return false;
}

std::deque<std::string> components(const std::string& path) {
  std::deque<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string parentOf(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// The read_only entry to suggest for a missing path: a venv's or prefix's root for .../bin/NAME
// (its interpreter needs the lib/ next to bin/), else the directory holding it.
std::string suggestedEntry(const std::string& path) {
  std::string dir = parentOf(path);
  if (dir.size() > 4 && dir.compare(dir.size() - 4, 4, "/bin") == 0) return parentOf(dir);
  return dir;
}

std::string missing(const std::string& interpreter, const std::string& path,
                    const std::string& via) {
  std::string what = "interpreter " + interpreter;
  if (path != interpreter) {
    what += " leads to " + path + (via.empty() ? "" : " (through the link " + via + ")");
  }
  return what +
         ", which is not in the job's root (it holds /usr, /bin, /sbin, /lib*, a few /etc "
         "files and the policy's filesystem paths): add it, e.g. filesystem: {read_only: [" +
         suggestedEntry(path) + "]}";
}

}  // namespace

std::optional<std::string> interpreterOutsideJobRoot(const std::string& interpreter,
                                                     const std::vector<std::string>& extra_paths) {
  std::deque<std::string> rest = components(interpreter);
  std::string resolved;  // "" is the root
  std::string via;       // the last link followed
  int links = 0;
  while (!rest.empty()) {
    std::string part = std::move(rest.front());
    rest.pop_front();
    if (part == ".") continue;
    if (part == "..") {
      resolved = resolved.empty() ? "" : parentOf(resolved);
      if (resolved == "/") resolved.clear();
      continue;
    }
    std::string next = resolved + "/" + part;
    struct stat st {};
    if (::lstat(next.c_str(), &st) != 0) {
      // Not on this host: nothing more to follow; the path as written must still be in the root.
      for (const auto& p : rest) next += "/" + p;
      if (!inJobRoot(next, extra_paths)) return missing(interpreter, next, via);
      return std::nullopt;
    }
    if (!S_ISLNK(st.st_mode)) {
      resolved = std::move(next);
      continue;
    }
    // The link itself must be in the root, or the job cannot follow it.
    if (!inJobRoot(next, extra_paths)) return missing(interpreter, next, via);
    if (++links > kMaxLinks) return "interpreter " + interpreter + ": too many symbolic links";
    char target[4096];
    ssize_t n = ::readlink(next.c_str(), target, sizeof target - 1);
    if (n <= 0) return std::nullopt;  // vanished meanwhile: execve will say
    std::string to(target, static_cast<size_t>(n));
    auto more = components(to);
    rest.insert(rest.begin(), more.begin(), more.end());
    if (to.front() == '/') resolved.clear();
    via = next;
  }
  std::string final_path = resolved.empty() ? "/" : resolved;
  if (!inJobRoot(final_path, extra_paths)) return missing(interpreter, final_path, via);
  return std::nullopt;
}

}  // namespace pyrun::policy
