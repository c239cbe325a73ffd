// The network front's own confinement, applied once start-up is over (the way sshd confines its
// pre-auth child): whatever a bug in TLS or protocol parsing lets an attacker do, it cannot start
// a program or a process, trace anything, or reach kernel interfaces the front never uses. In the
// sandbox layer with the other seccomp code, so that libseccomp is used in this layer alone.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"

namespace pyrun::sandbox {

// Sets PR_SET_NO_NEW_PRIVS and loads a seccomp filter (native architecture only; system calls of
// any other ABI kill the process) that answers EPERM to: execve, execveat, fork, vfork, clone
// without CLONE_THREAD, ptrace, process_vm_readv/writev, kcmp, pidfd_getfd, mount and namespace
// calls, module and kexec calls, bpf, perf_event_open, userfaultfd, keyctl/add_key/request_key,
// io_uring_*, setuid-family calls, chroot, pivot_root, reboot, swapon/swapoff, acct, personality;
// and ENOSYS to clone3 (its flags are behind a pointer seccomp cannot read; glibc then falls back
// to clone, which the filter can inspect). Everything else is allowed.
// Must run after every descriptor and the TLS context exist and after the privilege drop; applies
// to the calling thread and every thread it creates later (call it while single-threaded).
// Errors: kPermission/kIo naming the step.
Result<void> confineFront();

// The system calls confineFront() denies outright (for docs and tests).
std::vector<std::string> frontDeniedSyscalls();

}  // namespace pyrun::sandbox
