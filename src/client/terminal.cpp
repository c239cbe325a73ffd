// The local side of pyrun -t.
#include "client/terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "client/stdio.h"

namespace pyrun::client {

std::string termForJob(const char* term) {
  if (term == nullptr || *term == '\0') return "dumb";
  if (proto::isKnownTerminalName(term)) return term;
  return "xterm-256color";
}

std::optional<proto::WindowSize> terminalSize(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return std::nullopt;
  return proto::WindowSize{std::min<uint16_t>(ws.ws_row, proto::kMaxWindowCells),
                           std::min<uint16_t>(ws.ws_col, proto::kMaxWindowCells)};
}

Result<void> RawMode::enter(int fd) {
  if (active()) return {};
  termios t{};
  if (::tcgetattr(fd, &t) != 0) return errnoError("cannot read the terminal's settings", errno);
  saved_ = t;
  ::cfmakeraw(&t);
  // Reads return as soon as one byte is there.
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  // TCSADRAIN: what pyrun printed before goes out with the old settings.
  int rc;
  do {
    rc = ::tcsetattr(fd, TCSADRAIN, &t);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return errnoError("cannot put the terminal in raw mode", errno);
  fd_ = fd;
  setRawLineEndings(true);
  return {};
}

void RawMode::restore() noexcept {
  if (fd_ < 0) return;
  int rc;
  do {
    rc = ::tcsetattr(fd_, TCSADRAIN, &saved_);
  } while (rc != 0 && errno == EINTR);
  fd_ = -1;
  setRawLineEndings(false);
}

bool EscapeScanner::scan(std::span<const uint8_t> in, std::vector<uint8_t>& out) {
  for (uint8_t c : in) {
    if (tilde_) {
      tilde_ = false;
      if (c == '.') return true;
      out.push_back('~');
      if (c == '~') {
        line_start_ = false;
        continue;
      }
    } else if (line_start_ && c == '~') {
      tilde_ = true;
      continue;
    }
    out.push_back(c);
    line_start_ = c == '\r' || c == '\n';
  }
  return false;
}

}  // namespace pyrun::client
