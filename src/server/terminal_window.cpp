// The window-size pipe of a job's terminal, and the policy's say on terminals.
#include "server/terminal_window.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace pyrun::server {

std::optional<proto::ErrorMessage> refuseTerminal(const policy::Policy& policy,
                                                  const std::string& policy_name) {
  if (policy.terminal) return std::nullopt;
  return proto::ErrorMessage{
      proto::ErrorCode::kUnauthorized,
      "policy \"" + policy_name + "\" does not allow a terminal (terminal: false); run without -t"};
}

sandbox::JobTerminal TerminalWindow::forJob() {
  sent_ = size_;
  return {true, size_.rows, size_.cols, term_};
}

void TerminalWindow::attach(UniqueFd pipe) {
  pipe_ = std::move(pipe);
  int flags = ::fcntl(pipe_.get(), F_GETFL);
  if (flags >= 0) ::fcntl(pipe_.get(), F_SETFL, flags | O_NONBLOCK);
  // The job started with the size of TERMINAL (sent_); a WINDOW that came while it was queued
  // goes now.
  send();
}

void TerminalWindow::resize(proto::WindowSize size) {
  size_ = size;
  send();
}

void TerminalWindow::send() {
  if (!pipe_ || size_ == sent_) return;
  uint16_t record[2] = {size_.rows, size_.cols};
  static_assert(sizeof record == sandbox::kWindowRecordSize);
  ssize_t n;
  do {
    n = ::write(pipe_.get(), record, sizeof record);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof record)) sent_ = size_;
}

}  // namespace pyrun::server
