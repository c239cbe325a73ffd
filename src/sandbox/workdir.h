// A job's private working directory: created under the jobs directory, filled with the job's files
// without following links, and removed without following any link the job planted.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/error.h"
#include "common/fd.h"
#include "sandbox/spawner.h"

namespace pyrun::sandbox {

// The directory below the jobs directory where the front stages uploaded files, one directory
// per upload (docs/SANDBOX.md, "Uploads").
inline constexpr const char* kUploadsDir = ".uploads";

// 16 random hex digits, for names that must not be guessed or collide.
std::string randomSuffix();

// Creates <jobs_dir>/.uploads mode 0700 (owned by owner when set) if missing and opens it without
// following links. Errors name the path.
struct Owner;
Result<UniqueFd> openUploadsDir(int jobs_dir_fd, const std::string& jobs_dir, const Owner* owner);

// Opens (creating it 0711 if missing) the parent of the jobs' working directories. Errors name the
// path; a symbolic link or a non-directory there is refused.
Result<UniqueFd> openJobsDir(const std::string& path);

// Fails with kInvalidArgument when name is not a safe relative path: empty, absolute, with an
// empty, "." or ".." component, a NUL byte, or too long. Only such names reach the file system.
Result<void> checkRelativePath(std::string_view name);

struct WorkDir {
  std::string name;  // "<job_id>-<random>", inside the jobs directory
  std::string path;  // jobs_dir + "/" + name
  UniqueFd fd;       // O_DIRECTORY, opened without following links
};

// Creates <jobs_dir>/<job_id>-<random> mode 0700, owned by uid:gid when owner is set, and writes
// the script and files into it. With spec.upload set, the directory is instead the upload staged
// at <uploads_fd>/<spec.upload>, moved into place (rename: no copy, and out of the front's reach
// when the jobs directory's owner differs from the front's); the script and files are then
// written into it beside the uploaded ones (a name already there is an error). Every file is
// created with O_EXCL|O_NOFOLLOW relative to its directory's descriptor, subdirectories with
// mkdirat; nothing is ever reached through a link. On error nothing is left behind.
struct Owner {
  uid_t uid;
  gid_t gid;
};
Result<WorkDir> createWorkDir(int jobs_dir_fd, const std::string& jobs_dir, const JobSpec& spec,
                              const Owner* owner, int uploads_fd = -1);

// Removes the entry `name` of the directory parent_fd and everything below it. Never follows a
// symbolic link (a link is removed, not its target) and never opens a non-directory, so a link to a
// host file only loses the link. Directories the job made unreadable or unwritable are made 0700
// first (we are root, or their owner). Errors name the first entry that could not be removed.
Result<void> removeTree(int parent_fd, const std::string& name);

}  // namespace pyrun::sandbox
