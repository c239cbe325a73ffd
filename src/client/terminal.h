// pyrun -t: the local terminal in raw mode while the job runs, its size, the TERM sent to the
// job, and ssh's `~.` escape.
#pragma once

#include <termios.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "proto/messages.h"

namespace pyrun::client {

// The TERM for the job: term when it is one of proto::terminalNames(); "dumb" when term is unset or
// empty; otherwise "xterm-256color", which nearly every terminal emulator today understands. Never
// term itself: it reaches the job's environment and terminfo lookups.
std::string termForJob(const char* term);

// The size of the terminal on fd (TIOCGWINSZ), or nullopt when fd is not a terminal or reports
// no size (0 rows or columns); sizes above proto::kMaxWindowCells are cut to it.
std::optional<proto::WindowSize> terminalSize(int fd);

// Raw mode on a terminal (as cfmakeraw: no echo, no line editing, no signals from keys, no output
// processing), and the exact settings it had put back by restore() or the destructor.
class RawMode {
 public:
  RawMode() = default;
  ~RawMode() { restore(); }
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

  // Errors (kIo): fd is not a terminal, or tcsetattr failed (nothing changed then).
  Result<void> enter(int fd);
  // Idempotent; safe on every exit path.
  void restore() noexcept;
  bool active() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
  termios saved_{};
};

// ssh's escape in what the user types: `~.` at the start of a line (the first byte, or right after
// Enter: CR or LF) ends the session; `~~` there sends one `~`; a `~` followed by anything else is
// sent with it. A `~` at the start of a line is held until the next byte.
class EscapeScanner {
 public:
  // Appends the bytes to send to out. True when `~.` was typed: the bytes after it are dropped.
  bool scan(std::span<const uint8_t> in, std::vector<uint8_t>& out);

 private:
  bool line_start_ = true;
  bool tilde_ = false;
};

}  // namespace pyrun::client
