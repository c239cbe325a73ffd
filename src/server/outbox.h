// The frames a session owes its client, on one idiom: producers push (control frames never wait,
// data frames wait for room first), the session's one writer takes them in order. Each frame says
// its kind when it is pushed; nothing looks inside a frame to count it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pyrun::server {

class Outbox {
 public:
  enum class Kind { kControl, kData };

  // `max_data`: data frames queued before waitForRoom() waits.
  Outbox(const boost::asio::any_io_executor& executor, size_t max_data);

  // Queues a frame (dropped once the outbox is closed). Never waits: a data frame's producer calls
  // waitForRoom() first.
  void push(std::vector<uint8_t> frame, Kind kind);
  // Returns when a data frame may be pushed, or when the outbox is closed or no longer drained.
  boost::asio::awaitable<void> waitForRoom();
  bool full() const { return data_frames_ >= max_data_; }

  // The writer's side. Waits until a frame is queued or `until_ended` is set (ended() was called):
  // true when a frame is there.
  boost::asio::awaitable<bool> waitForFrame();
  // The next frame; precondition: !empty(). Frees room for a data frame.
  std::vector<uint8_t> pop();
  bool empty() const { return frames_.empty(); }
  // The first frame is a data frame; precondition: !empty().
  bool frontIsData() const { return frames_.front().kind == Kind::kData; }
  // The first frame's size; precondition: !empty().
  size_t frontSize() const { return frames_.front().frame.size(); }

  // No more frames will come: the writer sends those queued and then stops waiting.
  void end();
  // The client is gone: queued frames are dropped, later ones ignored, every waiter wakes.
  void close();
  // The writer stopped: producers waiting for room go on (and find the session over).
  void writerDone();
  bool closed() const { return closed_; }

 private:
  struct Entry {
    std::vector<uint8_t> frame;
    Kind kind;
  };
  static void wake(boost::asio::steady_timer& timer) { timer.cancel(); }

  // A vector, not a deque: a session holds few frames at a time (at most max_data data frames and
  // a handful of control frames), and an empty deque already costs an allocation of over 500 bytes
  // in every idle session.
  std::vector<Entry> frames_;
  size_t data_frames_ = 0;
  size_t max_data_;
  bool ended_ = false;
  bool closed_ = false;
  bool writer_done_ = false;
  // Timers used as events: cancel() wakes the one waiting.
  boost::asio::steady_timer frame_wake_;
  boost::asio::steady_timer room_wake_;
};

}  // namespace pyrun::server
