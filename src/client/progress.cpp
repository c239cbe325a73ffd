// The progress line (see progress.h).
#include "client/progress.h"

#include <unistd.h>

#include <cstdio>

#include "client/exit_status.h"
#include "client/stdio.h"

namespace pyrun::client {
namespace {

// Short transfers draw nothing; a drawn line is redrawn at most this often.
constexpr auto kFirstDraw = std::chrono::seconds(1);
constexpr auto kRedraw = std::chrono::milliseconds(250);

std::string clock(uint64_t seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llu:%02llu", static_cast<unsigned long long>(seconds / 60),
                static_cast<unsigned long long>(seconds % 60));
  return buf;
}

}  // namespace

Progress::Progress(bool enabled, std::string what, uint64_t total)
    : enabled_(enabled), what_(std::move(what)), total_(total), start_(Clock::now()) {}

Progress::~Progress() { done(); }

std::string Progress::line(const std::string& what, uint64_t done, uint64_t total,
                           Clock::duration elapsed) {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  std::string out = "pyrun: " + what + " " + formatBytes(done);
  if (total != 0) {
    out += " of " + formatBytes(total) + " (" +
           std::to_string(done >= total ? 100 : done * 100 / total) + "%)";
  }
  out += ", " + formatBytes(static_cast<uint64_t>(rate)) + "/s";
  if (total != 0 && rate > 0 && done < total) {
    out += ", " + clock(static_cast<uint64_t>(static_cast<double>(total - done) / rate)) + " left";
  }
  return out;
}

void Progress::advance(uint64_t bytes) {
  done_ += bytes;
  if (!enabled_) return;
  const auto now = Clock::now();
  if (now - start_ < kFirstDraw || now - last_draw_ < kRedraw) return;
  last_draw_ = now;
  drawn_ = true;
  // \r and erase-to-end-of-line: the line is redrawn in place.
  const std::string text = "\r" + line(what_, done_, total_, now - start_) + "\x1b[K";
  (void)writeFully(2, std::span<const char>(text.data(), text.size()));
}

void Progress::done() {
  if (!drawn_) return;
  drawn_ = false;
  const std::string erase = "\r\x1b[K";
  (void)writeFully(2, std::span<const char>(erase.data(), erase.size()));
}

}  // namespace pyrun::client
