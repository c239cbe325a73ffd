// The session's outbox: control frames never wait, data frames wait for room; the writer takes
// frames in order; end() lets it drain what is queued, close() drops everything and wakes all.
#include "server/outbox.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

namespace pyrun::server {
namespace {

namespace asio = boost::asio;

std::vector<uint8_t> frame(uint8_t tag) { return {tag, 0, 0, 0, 0}; }

TEST(Outbox, DataFramesWaitForRoomControlFramesDoNot) {
  asio::io_context io;
  Outbox box(io.get_executor(), 2);
  box.push(frame(1), Outbox::Kind::kData);
  box.push(frame(2), Outbox::Kind::kData);
  EXPECT_TRUE(box.full());
  box.push(frame(3), Outbox::Kind::kControl);  // never waits, never counts
  bool room = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await box.waitForRoom();
        room = true;
      },
      asio::detached);
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(room);
  io.restart();
  EXPECT_EQ(box.pop()[0], 1);  // in order; frees room for one data frame
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(room);
  EXPECT_EQ(box.pop()[0], 2);
  EXPECT_EQ(box.pop()[0], 3);
  EXPECT_TRUE(box.empty());
}

TEST(Outbox, TheWriterDrainsAfterEndAndStops) {
  asio::io_context io;
  Outbox box(io.get_executor(), 4);
  std::vector<uint8_t> taken;
  bool stopped = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        while (co_await box.waitForFrame()) taken.push_back(box.pop()[0]);
        stopped = true;
      },
      asio::detached);
  io.run_for(std::chrono::milliseconds(20));
  io.restart();
  box.push(frame(7), Outbox::Kind::kData);
  box.push(frame(8), Outbox::Kind::kControl);
  box.end();
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(taken, (std::vector<uint8_t>{7, 8}));
  EXPECT_TRUE(stopped);
}

TEST(Outbox, CloseDropsFramesAndWakesEveryone) {
  asio::io_context io;
  Outbox box(io.get_executor(), 1);
  box.push(frame(1), Outbox::Kind::kData);
  bool room = false, writer_stopped = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await box.waitForRoom();
        room = true;
      },
      asio::detached);
  io.run_for(std::chrono::milliseconds(20));
  io.restart();
  box.close();
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { writer_stopped = !co_await box.waitForFrame(); },
      asio::detached);
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(room);
  EXPECT_TRUE(writer_stopped);
  EXPECT_TRUE(box.empty());
  box.push(frame(2), Outbox::Kind::kControl);  // ignored once closed
  EXPECT_TRUE(box.empty());
}

}  // namespace
}  // namespace pyrun::server
