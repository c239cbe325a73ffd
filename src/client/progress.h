// The transfer progress line on a terminal, as scp draws it: bytes, rate and time left, redrawn in
// place on stderr and erased when the transfer is done.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace pyrun::client {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  // enabled: stderr is a terminal and -q was not given. total: bytes expected (0: unknown).
  Progress(bool enabled, std::string what, uint64_t total);
  ~Progress();  // erases the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(uint64_t bytes);
  void addTotal(uint64_t bytes) { total_ += bytes; }
  // Erases the line (if one was drawn).
  void done();

  // The line for `done` bytes of `total` after `elapsed` (no terminal codes): for tests.
  static std::string line(const std::string& what, uint64_t done, uint64_t total,
                          Clock::duration elapsed);

 private:
  bool enabled_;
  std::string what_;
  uint64_t total_;
  uint64_t done_ = 0;
  Clock::time_point start_;
  Clock::time_point last_draw_{};
  bool drawn_ = false;
};

}  // namespace pyrun::client
