// The clone3 call that starts a job's init: a new process in new namespaces, with a pidfd, and on
// cgroup v2 born inside the job's cgroup (CLONE_INTO_CGROUP). The spawner and the tests share it.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace pyrun::sandbox {

struct CloneRequest {
  uint64_t namespaces = 0;  // CLONE_NEW* flags for the child
  int* pidfd = nullptr;     // set: CLONE_PIDFD, the child's pidfd is stored here
  // >= 0: CLONE_INTO_CGROUP, the child is born in this cgroup v2 directory (a descriptor opened
  // O_PATH or O_RDONLY with O_DIRECTORY); -1: in the caller's cgroups.
  int cgroup_fd = -1;
};

// Like fork(): the child's pid in the caller, 0 in the child (which has a copy of the caller's
// memory and no other thread, and exits with SIGCHLD to the caller), or -1 with errno. With a
// cgroup_fd the child exists only inside that cgroup: when the kernel cannot put it there (EBADF:
// not a cgroup v2 directory; ENOENT or ENODEV: a removed cgroup; EBUSY: a cgroup with controllers
// enabled for its children; EOPNOTSUPP: a threaded one; E2BIG or EINVAL: a kernel before 5.7) there
// is no child at all. Where clone3 answers ENOSYS (a kernel before 5.3, or systemd's
// RestrictNamespaces= filter), a request without a cgroup_fd is made with clone instead. No
// allocation: callable in a process that must not allocate.
pid_t cloneProcess(const CloneRequest& request) noexcept;

// Whether this kernel takes CLONE_INTO_CGROUP (Linux 5.7): 0 when it does, else the errno of
// clone3 that shows it does not (E2BIG or EINVAL: an older kernel; ENOSYS: no clone3, or a seccomp
// filter around us that hides it). Probed once per process, without creating a process: the probe
// names a descriptor that is not a cgroup, which a kernel that knows the flag refuses with EBADF.
int cloneIntoCgroupSupport() noexcept;

}  // namespace pyrun::sandbox
