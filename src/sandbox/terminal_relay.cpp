// The init's relay between the job's pseudo-terminal and the front's pipes.
#include "sandbox/terminal_relay.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sandbox/spawner.h"

namespace pyrun::sandbox {
namespace {

void setNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

ssize_t readRetry(int fd, void* buf, size_t n) {
  ssize_t r;
  do {
    r = ::read(fd, buf, n);
  } while (r < 0 && errno == EINTR);
  return r;
}

ssize_t writeRetry(int fd, const void* buf, size_t n) {
  ssize_t r;
  do {
    r = ::write(fd, buf, n);
  } while (r < 0 && errno == EINTR);
  return r;
}

enum Slot : size_t { kInput = 0, kMaster = 1, kOutput = 2, kWindow = 3 };

}  // namespace

TerminalRelay::TerminalRelay(int master, int input, int output, int window) noexcept
    : master_(master), input_(input), output_(output), window_(window) {
  setNonBlocking(master_);
  setNonBlocking(input_);
  setNonBlocking(output_);
  setNonBlocking(window_);
}

void TerminalRelay::prepare(pollfd* slots) noexcept {
  for (size_t i = 0; i < kPollSlots; ++i) slots[i] = {-1, 0, 0};
  if (input_open_ && in_len_ == 0) slots[kInput] = {input_, POLLIN, 0};
  short master_events = 0;
  if (terminal_open_ && out_len_ == 0) master_events |= POLLIN;
  if (terminal_open_ && in_len_ > 0) master_events |= POLLOUT;
  if (master_events != 0) slots[kMaster] = {master_, master_events, 0};
  if (out_len_ > 0) slots[kOutput] = {output_, POLLOUT, 0};
  if (window_open_) slots[kWindow] = {window_, POLLIN, 0};
}

void TerminalRelay::transfer(const pollfd* slots) noexcept {
  if (slots[kWindow].revents != 0) readWindow();
  if (slots[kInput].revents != 0) readInput();
  if (slots[kMaster].revents & (POLLOUT | POLLERR | POLLHUP)) writeInput();
  if (slots[kMaster].revents & (POLLIN | POLLERR | POLLHUP)) readOutput();
  if (slots[kOutput].revents != 0) writeOutput();
}

void TerminalRelay::readInput() noexcept {
  ssize_t n = readRetry(input_, in_, sizeof in_);
  if (n > 0) {
    in_len_ = static_cast<size_t>(n);
    in_off_ = 0;
  } else if (n == 0 || errno != EAGAIN) {
    // STDIN_END or the front gone: the terminal stays open (Ctrl-D is a byte on a terminal), the
    // job just gets no more input.
    input_open_ = false;
  }
}

void TerminalRelay::writeInput() noexcept {
  if (in_len_ == 0) return;
  ssize_t n = writeRetry(master_, in_ + in_off_, in_len_ - in_off_);
  if (n > 0) {
    in_off_ += static_cast<size_t>(n);
    if (in_off_ == in_len_) in_len_ = in_off_ = 0;
  } else if (n < 0 && errno != EAGAIN) {
    in_len_ = in_off_ = 0;  // the terminal is gone: nobody will read this input
  }
}

void TerminalRelay::readOutput() noexcept {
  if (out_len_ != 0) return;
  ssize_t n = readRetry(master_, out_, sizeof out_);
  if (n > 0) {
    out_len_ = static_cast<size_t>(n);
    out_off_ = 0;
    if (!output_open_) out_len_ = 0;  // nobody reads: discard, so that the job is not stuck
  } else if (n == 0 || errno != EAGAIN) {
    // EIO: no process holds the terminal's other side any more (the job closed it, or ended).
    // Polling on would spin on POLLHUP; a job that closed its terminal and opens /dev/tty again
    // gets no more output through, which only stalls that job until its wall-clock limit.
    terminal_open_ = false;
  }
}

void TerminalRelay::writeOutput() noexcept {
  if (out_len_ == 0) return;
  ssize_t n = writeRetry(output_, out_ + out_off_, out_len_ - out_off_);
  if (n > 0) {
    out_off_ += static_cast<size_t>(n);
    if (out_off_ == out_len_) out_len_ = out_off_ = 0;
  } else if (n < 0 && errno != EAGAIN) {
    // EPIPE: the front stopped reading (output cap, or the job is being killed).
    output_open_ = false;
    out_len_ = out_off_ = 0;
  }
}

void TerminalRelay::readWindow() noexcept {
  // Only the latest size matters; records are written whole (4 bytes < PIPE_BUF).
  char buf[kWindowRecordSize * 16];
  ssize_t n = readRetry(window_, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN)) {
    window_open_ = false;
    return;
  }
  if (n < static_cast<ssize_t>(kWindowRecordSize)) return;
  size_t last = (static_cast<size_t>(n) / kWindowRecordSize - 1) * kWindowRecordSize;
  uint16_t size[2];
  std::memcpy(size, buf + last, sizeof size);
  if (size[0] == 0 || size[1] == 0) return;
  winsize ws{};
  ws.ws_row = size[0];
  ws.ws_col = size[1];
  // The kernel sends SIGWINCH to the terminal's foreground process group when the size changes.
  ::ioctl(master_, TIOCSWINSZ, &ws);
}

void TerminalRelay::drain() noexcept {
  for (;;) {
    while (out_len_ > 0 && output_open_) {
      pollfd p{output_, POLLOUT, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) return;
      writeOutput();
    }
    if (!terminal_open_) return;
    // Every process that held the terminal is gone: the master reads what is left, then EIO.
    // The wait bounds a kernel that would answer neither.
    pollfd p{master_, POLLIN, 0};
    int r = ::poll(&p, 1, 1000);
    if (r == 0) return;
    if (r < 0 && errno != EINTR) return;
    readOutput();
  }
}

}  // namespace pyrun::sandbox
