// Result files out of a job: its working directory /job is a tmpfs that exists only in the job's
// mount namespace, so the spawner holds a descriptor of it from the job's start and copies the
// files a client asked for out of it when the job has ended (docs/SANDBOX.md, "Results").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "sandbox/workdir.h"

namespace pyrun::sandbox {

// Opens the working directory of the running job whose init is init_pid, through the init's root
// (/proc/PID/root, then "job" without following any link), as an O_PATH descriptor. The
// descriptor keeps the tmpfs readable after the job's namespace is gone (like a lazy unmount).
Result<UniqueFd> openJobWorkdir(pid_t init_pid);

struct ResultsCopy {
  uint64_t files = 0;
  uint64_t bytes = 0;
  std::string detail;  // files left out (limits, odd names) or a failure; empty when none
};

// Copies every regular file below job_dir whose path matches one of `patterns` (pathMatches) into
// a new directory dest_parent/name (mode 0700; files with the job's permission bits plus owner
// read and write), everything owned by `owner` when set. Never follows a link: directories and
// files are opened one component at a time with O_NOFOLLOW relative to their parent, symlinks
// and special files are skipped, and so is anything on another file system than job_dir (a
// hardlink cannot reach outside a tmpfs). Stops at max_files files and max_bytes bytes (what does
// not fit is left out and said in `detail`). Errors: kIo when the destination cannot be made.
Result<ResultsCopy> copyResults(int job_dir, const std::vector<std::string>& patterns,
                                int dest_parent, const std::string& name, const Owner* owner,
                                uint64_t max_files, uint64_t max_bytes);

}  // namespace pyrun::sandbox
