// Job slots, queue positions and "server busy".
#include "server/scheduler.h"

#include <gtest/gtest.h>

#include <map>

namespace pyrun::server {
namespace {

// Records what each waiting session was told.
struct Recorder {
  std::map<int, std::vector<uint32_t>> told;
  Scheduler::Notify forSession(int id) {
    return [this, id](uint32_t position) { told[id].push_back(position); };
  }
};

TEST(Scheduler, RunsUpToMaxJobsThenQueuesThenRefuses) {
  Recorder r;
  Scheduler s(2, 2);
  EXPECT_EQ(s.admit(r.forSession(1)).admission, Scheduler::Admission::kRunning);
  EXPECT_EQ(s.admit(r.forSession(2)).admission, Scheduler::Admission::kRunning);
  auto third = s.admit(r.forSession(3));
  EXPECT_EQ(third.admission, Scheduler::Admission::kQueued);
  EXPECT_EQ(third.position, 1u);
  auto fourth = s.admit(r.forSession(4));
  EXPECT_EQ(fourth.admission, Scheduler::Admission::kQueued);
  EXPECT_EQ(fourth.position, 2u);
  auto fifth = s.admit(r.forSession(5));
  EXPECT_EQ(fifth.admission, Scheduler::Admission::kBusy);
  EXPECT_EQ(s.busyMessage(), "server busy, 2 jobs queued");
  EXPECT_EQ(s.running(), 2u);
  EXPECT_EQ(s.waiting(), 2u);
}

TEST(Scheduler, ReleaseGivesTheSlotToTheHeadAndMovesTheOthersUp) {
  Recorder r;
  Scheduler s(1, 3);
  s.admit(r.forSession(1));
  s.admit(r.forSession(2));
  s.admit(r.forSession(3));
  s.admit(r.forSession(4));
  s.release();
  EXPECT_EQ(r.told[2], std::vector<uint32_t>{0});
  EXPECT_EQ(r.told[3], std::vector<uint32_t>{1});
  EXPECT_EQ(r.told[4], std::vector<uint32_t>{2});
  EXPECT_EQ(s.running(), 1u);
  EXPECT_EQ(s.waiting(), 2u);
}

TEST(Scheduler, WithdrawRemovesATicketAndTellsTheOnesBehind) {
  Recorder r;
  Scheduler s(1, 3);
  s.admit(r.forSession(1));
  auto second = s.admit(r.forSession(2));
  s.admit(r.forSession(3));
  s.withdraw(second.ticket);
  EXPECT_EQ(r.told[3], std::vector<uint32_t>{1});
  EXPECT_TRUE(r.told[2].empty());
  EXPECT_EQ(s.waiting(), 1u);
  s.release();
  EXPECT_EQ(r.told[3], (std::vector<uint32_t>{1, 0}));
  EXPECT_TRUE(r.told[2].empty());  // the withdrawn session is never given the slot
}

TEST(Scheduler, WithdrawOfUnknownTicketChangesNothing) {
  Recorder r;
  Scheduler s(1, 1);
  s.admit(r.forSession(1));
  s.admit(r.forSession(2));
  s.withdraw(12345);
  EXPECT_EQ(s.waiting(), 1u);
}

TEST(Scheduler, NewcomerDoesNotOvertakeTheQueue) {
  Recorder r;
  Scheduler s(1, 4);
  s.admit(r.forSession(1));
  s.admit(r.forSession(2));
  // Session 2 holds the slot once session 1 ends; a newcomer after that waits behind nobody
  // but still finds no free slot.
  s.release();
  EXPECT_EQ(r.told[2], std::vector<uint32_t>{0});
  auto third = s.admit(r.forSession(3));
  EXPECT_EQ(third.admission, Scheduler::Admission::kQueued);
}

TEST(Scheduler, FreedSlotsAreReusedWhenNobodyWaits) {
  Recorder r;
  Scheduler s(1, 0);
  EXPECT_EQ(s.admit(r.forSession(1)).admission, Scheduler::Admission::kRunning);
  EXPECT_EQ(s.admit(r.forSession(2)).admission, Scheduler::Admission::kBusy);
  EXPECT_EQ(s.busyMessage(), "server busy, 0 jobs queued");
  s.release();
  EXPECT_EQ(s.running(), 0u);
  EXPECT_EQ(s.admit(r.forSession(3)).admission, Scheduler::Admission::kRunning);
}

TEST(Scheduler, CallbackMayReenterTheScheduler) {
  Scheduler s(1, 2);
  s.admit([](uint32_t) {});
  Scheduler::Ticket other = 0;
  bool granted = false;
  s.admit([&](uint32_t position) {
    if (position == 0) {
      granted = true;
      s.withdraw(other);  // re-entrant call from inside release()
    }
  });
  other = s.admit([](uint32_t) {}).ticket;
  s.release();
  EXPECT_TRUE(granted);
  EXPECT_EQ(s.waiting(), 0u);
}

}  // namespace
}  // namespace pyrun::server
