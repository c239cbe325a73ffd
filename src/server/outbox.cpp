#include "server/outbox.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace pyrun::server {

namespace asio = boost::asio;

Outbox::Outbox(const asio::any_io_executor& executor, size_t max_data)
    : max_data_(max_data),
      frame_wake_(executor, asio::steady_timer::time_point::max()),
      room_wake_(executor, asio::steady_timer::time_point::max()) {}

void Outbox::push(std::vector<uint8_t> frame, Kind kind) {
  if (closed_) return;
  if (kind == Kind::kData) ++data_frames_;
  frames_.push_back(Entry{std::move(frame), kind});
  wake(frame_wake_);
}

asio::awaitable<void> Outbox::waitForRoom() {
  while (full() && !closed_ && !writer_done_) {
    room_wake_.expires_at(asio::steady_timer::time_point::max());
    co_await room_wake_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<bool> Outbox::waitForFrame() {
  while (frames_.empty() && !ended_ && !closed_) {
    frame_wake_.expires_at(asio::steady_timer::time_point::max());
    co_await frame_wake_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return !closed_ && !frames_.empty();
}

std::vector<uint8_t> Outbox::pop() {
  Entry e = std::move(frames_.front());
  frames_.erase(frames_.begin());
  if (e.kind == Kind::kData) {
    --data_frames_;
    wake(room_wake_);
  }
  return std::move(e.frame);
}

void Outbox::end() {
  ended_ = true;
  wake(frame_wake_);
  wake(room_wake_);
}

void Outbox::close() {
  closed_ = true;
  std::vector<Entry>().swap(frames_);
  data_frames_ = 0;
  wake(frame_wake_);
  wake(room_wake_);
}

void Outbox::writerDone() {
  writer_done_ = true;
  wake(room_wake_);
}

}  // namespace pyrun::server
