// Log line formatting and output.
#include "common/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace pyrun::log {
namespace {

Level initialLevel() noexcept {
  Level l = Level::kInfo;
  if (const char* env = std::getenv("PYRUN_LOG_LEVEL")) parseLevel(env, l);
  return l;
}

std::atomic<Level> g_level{initialLevel()};
std::atomic<int> g_fd{2};
std::atomic<bool> g_journal{isJournalStream(std::getenv("JOURNAL_STREAM"), 2)};

const char* levelName(Level l) noexcept {
  switch (l) {
    case Level::kDebug:
      return "D";
    case Level::kInfo:
      return "I";
    case Level::kWarning:
      return "W";
    case Level::kError:
      return "E";
    case Level::kFatal:
      return "F";
  }
  return "?";
}

// sd-daemon.h's SD_* priorities, as the journal reads them from a "<N>" line prefix.
const char* journalPriority(Level l) noexcept {
  switch (l) {
    case Level::kDebug:
      return "<7>";
    case Level::kInfo:
      return "<6>";
    case Level::kWarning:
      return "<4>";
    case Level::kError:
      return "<3>";
    case Level::kFatal:
      return "<2>";
  }
  return "<6>";
}

}  // namespace

bool isJournalStream(const char* journal_stream, int fd) noexcept {
  // systemd sets JOURNAL_STREAM=DEV:INODE for the stream it connected to stdout/stderr; a
  // redirected stderr (2>file) keeps the variable but not the file, so both must match.
  if (journal_stream == nullptr || *journal_stream == '\0') return false;
  unsigned long long dev = 0, ino = 0;
  char extra = 0;
  if (std::sscanf(journal_stream, "%llu:%llu%c", &dev, &ino, &extra) != 2) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

void setJournal(bool on) noexcept { g_journal = on; }
bool journal() noexcept { return g_journal; }

void setLevel(Level l) noexcept { g_level = l; }
Level level() noexcept { return g_level; }
void setFd(int fd) noexcept { g_fd = fd; }

bool parseLevel(std::string_view text, Level& out) noexcept {
  if (text == "debug")
    out = Level::kDebug;
  else if (text == "info")
    out = Level::kInfo;
  else if (text == "warning")
    out = Level::kWarning;
  else if (text == "error")
    out = Level::kError;
  else
    return false;
  return true;
}

void write(Level l, const char* function, std::string_view message) noexcept {
  const bool to_journal = g_journal;
  char stamp[40];
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  gmtime_r(&ts.tv_sec, &utc);
  size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);
  try {
    std::string line;
    line.reserve(message.size() + 80);
    if (to_journal) line += journalPriority(l);
    line += "[";
    line += levelName(l);
    line += "][";
    if (!to_journal) {
      line += stamp;
      line += "][";
    }
    line += std::to_string(getpid());
    line += "] ";
    line += function;
    line += "(): ";
    line += message;
    line += '\n';
    // One write(2): lines from several processes sharing the fd do not interleave.
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t w = ::write(g_fd, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) break;
      p += w;
      left -= static_cast<size_t>(w);
    }
  } catch (...) {
    // Out of memory while logging: drop the line rather than fail the caller.
  }
}

Line::Line(Level l, const char* function, bool with_errno)
    : level_(l), function_(function), saved_errno_(errno), with_errno_(with_errno) {}

Line::~Line() {
  if (with_errno_) stream_ << ": " << std::strerror(saved_errno_);
  write(level_, function_, stream_.str());
}

}  // namespace pyrun::log
