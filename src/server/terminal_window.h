// The front's side of a job's terminal (pyrun -t): whether the policy allows one, and the window
// sizes the client sends, passed to the job's init through the window-size pipe.
#pragma once

#include <optional>
#include <string>

#include "common/fd.h"
#include "policy/policy.h"
#include "proto/messages.h"
#include "sandbox/spawner.h"

namespace pyrun::server {

// The ERROR a TERMINAL gets under this policy, or nullopt when the policy allows terminals.
std::optional<proto::ErrorMessage> refuseTerminal(const policy::Policy& policy,
                                                  const std::string& policy_name);

// The latest window size of a job's terminal and the pipe it goes into. Sizes that come before the
// job has started are kept and written once the pipe is attached. Writes never block: a record is
// 4 bytes (atomic in a pipe), and when the pipe is full (an init that does not read, which only a
// broken job init could be) the size is dropped, as the init only ever applies the latest anyway.
class TerminalWindow {
 public:
  explicit TerminalWindow(proto::Terminal request)
      : term_(std::move(request.term)), size_(request.size), sent_(request.size) {}
  // What the job's spec says about its terminal: TERM and the latest size, which the job starts
  // with (so a size sent before the start is not sent again).
  sandbox::JobTerminal forJob();
  // Takes the window-size pipe's write end (JobStarted's third descriptor for a terminal job).
  void attach(UniqueFd pipe);
  // A WINDOW frame: remembered, and written when the pipe is attached and the size changed.
  void resize(proto::WindowSize size);
  proto::WindowSize size() const noexcept { return size_; }

 private:
  void send();
  std::string term_;
  proto::WindowSize size_;
  proto::WindowSize sent_;
  UniqueFd pipe_;
};

}  // namespace pyrun::server
