// Result files from the server (RESULT, RESULT_DATA), written under the -o directory. The server
// is untrusted here: nothing is written outside the directory or through a symlink, whatever the
// names say, and no more files or bytes than announced in GET are accepted (CVE-2019-6111 is what
// happens otherwise).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/error.h"
#include "common/fd.h"
#include "proto/messages.h"

namespace pyrun::client {

// What pyrun announces in GET: the most result files and bytes it accepts.
inline constexpr uint32_t kMaxResultFiles = 100000;
inline constexpr uint64_t kMaxResultBytes = 64ull << 30;

class ResultWriter {
 public:
  // dir_fd: the -o directory, opened O_DIRECTORY. Limits: what GET announced.
  ResultWriter(UniqueFd dir_fd, uint32_t max_files, uint64_t max_bytes);
  ~ResultWriter();  // removes a partly written temporary file
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;

  // RESULT: checks the name (proto::validateFileName: no "..", not absolute, no NUL or control
  // characters...) and the limits, creates the parents one component at a time (mkdirat, then
  // openat O_DIRECTORY|O_NOFOLLOW: a symlink on the way is refused) and a temporary file beside
  // the target (O_CREAT|O_EXCL|O_NOFOLLOW). Errors: kProtocol for what a server must not send
  // (a bad name, more than the limits, a RESULT while one is incomplete), kIo for local failures
  // (the message names the path).
  Result<void> begin(const proto::FileHeader& header);
  // RESULT_DATA. More bytes than announced is kProtocol. The last byte renames the temporary file
  // into place (renameat replaces a symlink there, never writes through it).
  Result<void> data(std::span<const uint8_t> bytes);
  // True while a file's bytes are owed (EXIT then is a protocol error).
  bool owed() const noexcept { return static_cast<bool>(file_); }
  uint64_t files() const noexcept { return files_; }
  uint64_t bytes() const noexcept { return bytes_; }

 private:
  Result<void> finish();

  UniqueFd dir_fd_;
  uint32_t max_files_;
  uint64_t max_bytes_;
  uint64_t files_ = 0;
  uint64_t bytes_ = 0;
  // The file being received.
  UniqueFd parent_;
  UniqueFd file_;
  std::string name_, leaf_, temp_;
  uint32_t mode_ = 0;
  uint64_t remaining_ = 0;
};

}  // namespace pyrun::client
