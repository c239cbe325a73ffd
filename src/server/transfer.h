// Files a client streams in FILE frames before RUN: staged on disk as they arrive, within the
// policy's working-directory quota, and handed to the spawner as one directory (docs/PROTOCOL.md,
// "FILE"; docs/SANDBOX.md, "Uploads").
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "proto/messages.h"

namespace pyrun::server {

// The bounds of a job's working directory (the policy's workdir and workdir_files).
struct UploadQuota {
  uint64_t bytes = 0;
  uint64_t files = 0;  // files and directories together (the tmpfs's inodes)
  std::string policy;  // named in the error a client gets
};

// One job's upload. Files are written with write(2) as each FILE_DATA frame arrives, so memory
// stays at one frame and the session reads the connection no faster than the disk takes it.
// Everything is created below <jobs_dir>/.uploads/<random> with mkdirat and
// openat(O_CREAT|O_EXCL|O_NOFOLLOW) relative to directory descriptors opened with O_NOFOLLOW:
// nothing is reached through a link. Unless released, the destructor removes what was staged
// (a refused, failed or abandoned upload leaves nothing).
class Upload {
 public:
  Upload(std::string jobs_dir, UploadQuota quota);
  ~Upload();
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;

  // Starts a file (its name already passed proto::validateFileName). Errors: kLimit when it would
  // take the working directory past the quota (the message names the limit and the policy),
  // kInvalidArgument for a name given twice or a file/directory clash, kIo when staging fails.
  Result<void> begin(const proto::FileHeader& header);
  // The next bytes of the current file. Errors: kInvalidArgument for bytes beyond its announced
  // size or with no file announced; kIo when the disk write fails (ENOSPC...).
  Result<void> data(std::span<const uint8_t> bytes);
  // True while the current file's bytes are still owed.
  bool owed() const noexcept { return remaining_ > 0; }
  bool empty() const noexcept { return names_.size() == 0; }
  uint64_t bytes() const noexcept { return bytes_; }

  // RUN arrived: its script and files must not clash with the uploaded names, and together they
  // must fit the quota. Errors as begin().
  Result<void> checkRun(const proto::RunRequest& run);
  // The staged directory's name inside .uploads, for JobSpec::upload; the spawner owns it from
  // now on (it moves it into place or removes it), so this object no longer removes it.
  std::string release();

 private:
  Result<void> open();
  Result<void> overQuota(const std::string& what, uint64_t bytes, uint64_t files) const;
  void finishFile();

  std::string jobs_dir_;
  UploadQuota quota_;
  UniqueFd uploads_fd_;  // <jobs_dir>/.uploads
  UniqueFd top_fd_;      // <jobs_dir>/.uploads/<name_>
  std::string name_;
  bool released_ = false;
  proto::FileNameSet names_;
  uint64_t bytes_ = 0;  // announced sizes so far
  // The file being received.
  UniqueFd file_fd_;
  std::string file_name_;
  uint32_t file_mode_ = 0;
  uint64_t remaining_ = 0;
};

// The result files the spawner copied for a job (JobEnded::results), one at a time, then removed.
// The directory belongs to the front; it is read without following links (O_NOFOLLOW relative
// to directory descriptors) although only the spawner wrote it.
class ResultFiles {
 public:
  ResultFiles(std::string jobs_dir, std::string name);
  ~ResultFiles();  // removes the directory
  ResultFiles(const ResultFiles&) = delete;
  ResultFiles& operator=(const ResultFiles&) = delete;

  struct Next {
    proto::FileHeader header;  // name relative to the working directory, mode, size
    UniqueFd fd;
  };
  // The next file in name order, or nullopt at the end. Errors: kIo.
  Result<std::optional<Next>> next();

 private:
  Result<void> list(int dir, const std::string& rel, int depth);

  std::string jobs_dir_;
  std::string name_;
  UniqueFd uploads_fd_;
  std::vector<std::string> files_;  // relative paths, sorted
  size_t at_ = 0;
  bool listed_ = false;
  UniqueFd top_fd_;
};

// "1.5 GiB", "64 MiB", "12 bytes": sizes in messages to the client.
std::string formatSize(uint64_t bytes);

}  // namespace pyrun::server
