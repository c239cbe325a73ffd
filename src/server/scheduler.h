// Job slots and the waiting queue: at most max_jobs running, up to queue_capacity waiting in FIFO
// order with their positions kept current, "server busy" beyond that. Pure bookkeeping, no I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <string>

namespace pyrun::server {

class Scheduler {
 public:
  using Ticket = uint64_t;
  // Told to a waiting session: its new position (1 = next to start) when the queue moves, or 0 when
  // it has been given a slot (it then owns the slot and must start a job or call release()).
  using Notify = std::function<void(uint32_t position)>;

  enum class Admission { kRunning, kQueued, kBusy };
  struct Admitted {
    Admission admission = Admission::kBusy;
    Ticket ticket = 0;      // for withdraw(); 0 when kBusy or kRunning
    uint32_t position = 0;  // 1-based when kQueued
  };

  Scheduler(uint32_t max_jobs, uint32_t queue_capacity);

  // Takes a free slot (kRunning), or a place in the queue (kQueued, notify kept until the ticket
  // gets its slot or is withdrawn), or nothing (kBusy: the queue is full).
  Admitted admit(Notify notify);
  // Removes a waiting ticket (its session went away); the tickets behind it move up and are told.
  // No effect on a ticket that is not waiting.
  void withdraw(Ticket ticket);
  // A slot became free: the first waiting ticket gets it (notify(0)), the others move up.
  void release();

  uint32_t running() const noexcept { return running_; }
  uint32_t waiting() const noexcept { return static_cast<uint32_t>(queue_.size()); }
  uint32_t maxJobs() const noexcept { return max_jobs_; }
  uint32_t queueCapacity() const noexcept { return queue_capacity_; }

  // "server busy, 64 jobs queued"
  std::string busyMessage() const;

 private:
  struct Waiting {
    Ticket ticket;
    Notify notify;
  };
  void tellPositions();

  uint32_t max_jobs_;
  uint32_t queue_capacity_;
  uint32_t running_ = 0;
  Ticket next_ticket_ = 1;
  std::list<Waiting> queue_;
};

}  // namespace pyrun::server
