// Logging: one line per message (level, time, pid, function, text), written with a single write(2).
// When stderr is the systemd journal (JOURNAL_STREAM names its device and inode), a line starts
// with the syslog priority instead ("<6>[I][1234] main(): ..."): the journal keeps its own
// timestamps.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace pyrun::log {

enum class Level { kDebug = 0, kInfo, kWarning, kError, kFatal };

// Messages below this level are dropped. Default kInfo; PYRUN_LOG_LEVEL=debug|info|warning|error.
void setLevel(Level level) noexcept;
Level level() noexcept;
// Where lines go; default stderr (fd 2). The fd is not owned.
void setFd(int fd) noexcept;
// Journal format on or off (see the top of this file); decided at start from JOURNAL_STREAM and
// fd 2, changed by tests.
void setJournal(bool on) noexcept;
bool journal() noexcept;
// True when `journal_stream` ("DEV:INODE", from $JOURNAL_STREAM) names the file open on `fd`.
bool isJournalStream(const char* journal_stream, int fd) noexcept;

// Parses "debug", "info", "warning", "error"; false if unknown.
bool parseLevel(std::string_view text, Level& out) noexcept;

void write(Level level, const char* function, std::string_view message) noexcept;

// Collects one message and writes it when destroyed.
class Line {
 public:
  Line(Level level, const char* function, bool with_errno);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;
  template <class T>
  Line& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  Level level_;
  const char* function_;
  int saved_errno_;
  bool with_errno_;
  std::ostringstream stream_;
};

}  // namespace pyrun::log

// PYRUN_LOG(kInfo) << "listening on " << addr;   PYRUN_PLOG(kError) << "open " << path;  (adds
// strerror)
#define PYRUN_LOG(lvl)                                    \
  if (::pyrun::log::Level::lvl < ::pyrun::log::level()) { \
  } else                                                  \
    ::pyrun::log::Line(::pyrun::log::Level::lvl, __func__, false)
#define PYRUN_PLOG(lvl)                                   \
  if (::pyrun::log::Level::lvl < ::pyrun::log::level()) { \
  } else                                                  \
    ::pyrun::log::Line(::pyrun::log::Level::lvl, __func__, true)
