// The names a policy may use: system calls, syscall groups, errno names and argument constants.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pyrun::policy {

// True for any system call name of any architecture libseccomp knows.
bool isKnownSyscall(std::string_view name);

// The known syscall name closest to `name` (edit distance at most 2, or a unique prefix), if any.
std::optional<std::string> suggestSyscall(std::string_view name);

struct SyscallGroup {
  std::string_view name;  // "@python-threads"
  std::string_view purpose;
  std::span<const std::string_view> syscalls;
};
// Every built-in group, in documentation order.
std::span<const SyscallGroup> syscallGroups();
const SyscallGroup* findGroup(std::string_view name);

// A rule a group brings in beside its unconditional members: `syscall` when argument `index`
// (a 32-bit int, compared on its low 32 bits) equals `value` is allowed, or fails with errno_value
// when that is not 0. @python-startup allows ioctl this way, by request: the terminal's (TCGETS,
// TIOCGWINSZ, ...) and the descriptor ones CPython uses (FIONBIO, FIOCLEX), while TIOCSTI and
// TIOCLINUX fail with EPERM; any other request gets the policy's default action.
struct GroupRule {
  std::string_view syscall;
  std::string_view value_name;  // "TCGETS", for messages
  unsigned index = 0;
  uint64_t value = 0;
  int errno_value = 0;
};
std::span<const GroupRule> groupRules(std::string_view group);

// Syscalls that glibc or Python call to probe for a newer feature and fall back from on ENOSYS
// (clone3, faccessat2, ...), plus io_uring_*: a policy that does not mention them gets ENOSYS.
std::span<const std::string_view> enosysByDefault();

// "EPERM" -> 1. Only the names of <errno.h>.
std::optional<int> errnoByName(std::string_view name);
std::string_view errnoName(int value);

// "AF_UNIX" -> 1: the argument constants a rule may name (socket families and types, open flags,
// clone flags, mmap/mprotect bits, fcntl commands, ioctl requests, prctl options, signals).
std::optional<uint64_t> constantByName(std::string_view name);

// Whether argument `index` of `syscall` is a 32-bit int for the kernel (socket's domain, open's
// flags, ...): conditions on it compare only the low 32 bits.
bool isArgument32Bit(std::string_view syscall, unsigned index);

}  // namespace pyrun::policy
