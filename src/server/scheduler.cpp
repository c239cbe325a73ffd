// Job slots and the waiting queue.
#include "server/scheduler.h"

#include <vector>

namespace pyrun::server {

Scheduler::Scheduler(uint32_t max_jobs, uint32_t queue_capacity)
    : max_jobs_(max_jobs), queue_capacity_(queue_capacity) {}

Scheduler::Admitted Scheduler::admit(Notify notify) {
  // A free slot goes to a newcomer only when nobody waits: otherwise it would overtake the queue.
  if (running_ < max_jobs_ && queue_.empty()) {
    ++running_;
    return {Admission::kRunning, 0, 0};
  }
  if (queue_.size() >= queue_capacity_) return {Admission::kBusy, 0, 0};
  Ticket ticket = next_ticket_++;
  queue_.push_back({ticket, std::move(notify)});
  return {Admission::kQueued, ticket, static_cast<uint32_t>(queue_.size())};
}

void Scheduler::withdraw(Ticket ticket) {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->ticket == ticket) {
      queue_.erase(it);
      tellPositions();
      return;
    }
  }
}

void Scheduler::release() {
  if (running_ > 0) --running_;
  if (running_ >= max_jobs_ || queue_.empty()) return;
  // Detach the head before calling out: the callback may admit, withdraw or release re-entrantly.
  Waiting head = std::move(queue_.front());
  queue_.pop_front();
  ++running_;
  tellPositions();
  head.notify(0);
}

void Scheduler::tellPositions() {
  // Copies the callbacks first for the same re-entrancy reason as in release().
  std::vector<Notify> calls;
  calls.reserve(queue_.size());
  for (const auto& w : queue_) calls.push_back(w.notify);
  uint32_t position = 1;
  for (auto& call : calls) call(position++);
}

std::string Scheduler::busyMessage() const {
  return "server busy, " + std::to_string(queue_.size()) + " jobs queued";
}

}  // namespace pyrun::server
