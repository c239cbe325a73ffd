// A temporary directory for one test, removed (without following links) when the test ends.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace pyrun::test {

class TempDir {
 public:
  // Creates /tmp/pyrun-test-<prefix>-XXXXXX (mode 0700).
  explicit TempDir(const std::string& prefix = "t");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes a file (mode applied exactly); aborts the test binary on failure.
void writeFile(const std::string& path, const std::string& data, unsigned mode = 0644);
std::string readFileOrEmpty(const std::string& path);
// Lines of text (a log) that contain every one of the needles.
size_t countLines(const std::string& text, const std::vector<std::string>& needles);

}  // namespace pyrun::test
