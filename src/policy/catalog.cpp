// The built-in vocabulary of policies: syscall names, groups, errno names and argument constants.
#include "policy/catalog.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

namespace pyrun::policy {
namespace {

constexpr std::string_view kSyscallNames[] = {
#include "policy/syscall_names.inc"
};

// What CPython needs to start, import modules, and run single-threaded code that reads and writes
// files, measured with `strace -f -c python3 -I -B -u` over ordinary scripts.
constexpr std::string_view kPythonStartup[] = {
    "access",
    "arch_prctl",
    "brk",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "dup",
    "dup2",
    "dup3",
    "execve",
    "exit",
    "exit_group",
    "faccessat",
    "fadvise64",
    "fcntl",
    "fstat",
    "fstatfs",
    "futex",
    "getcwd",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "gettid",
    "gettimeofday",
    "getuid",
    "kill",
    "lseek",
    "lstat",
    "madvise",
    "mmap",
    "mprotect",
    "mremap",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "pread64",
    "preadv",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "pwritev",
    "read",
    "readlink",
    "readlinkat",
    "readv",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "sched_getaffinity",
    "sched_yield",
    "select",
    "set_robust_list",
    "set_tid_address",
    "sigaltstack",
    "stat",
    "statfs",
    "statx",
    "sysinfo",
    "tgkill",
    "time",
    "times",
    "tkill",
    "umask",
    "uname",
    "write",
    "writev",
};

// Creating, renaming and removing files inside the job's writable directories (tempfile, shutil,
// sqlite3's journal). Landlock and the mount layout decide where; this only permits the calls.
constexpr std::string_view kPythonFiles[] = {
    "chdir",     "chmod",    "copy_file_range", "fchdir",    "fchmod",    "fchmodat", "fchown",
    "fdatasync", "flock",    "fsync",           "ftruncate", "link",      "linkat",   "mkdir",
    "mkdirat",   "rename",   "renameat",        "renameat2", "rmdir",     "sendfile", "symlink",
    "symlinkat", "truncate", "unlink",          "unlinkat",  "utimensat",
};

// Threads (the `clone` with CLONE_THREAD itself is a rule of the policy: it needs a condition).
constexpr std::string_view kPythonThreads[] = {
    "futex", "get_robust_list",   "gettid",      "madvise",         "membarrier", "mprotect",
    "rseq",  "sched_getaffinity", "sched_yield", "set_robust_list", "tgkill",
};

// Child processes: subprocess (vfork + execve), os.fork, multiprocessing's fork start method.
constexpr std::string_view kPythonSubprocess[] = {
    "execve", "fork", "setpgid", "setsid", "vfork", "wait4", "waitid",
};

// Event loops: asyncio, selectors, multiprocessing's connection wait.
constexpr std::string_view kPythonAsync[] = {
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait", "eventfd2",
};

// Using Unix sockets once created (asyncio's self-pipe, multiprocessing managers). The `socket`
// and `socketpair` calls themselves are rules of the policy, conditioned on the address family.
constexpr std::string_view kUnixSockets[] = {
    "accept",     "accept4", "bind",       "connect",  "getpeername", "getsockname",
    "getsockopt", "listen",  "recvfrom",   "recvmmsg", "recvmsg",     "sendmmsg",
    "sendmsg",    "sendto",  "setsockopt", "shutdown",
};
// socketpair is not here: it creates sockets of any family it is given (AF_TIPC implements it),
// which reaches kernel protocol code the `socket` rule keeps out. Policies allow it by a rule on
// its family, like `socket`.

// Every socket call, for policies with `network: loopback`.
constexpr std::string_view kNetwork[] = {
    "accept",     "accept4", "bind",       "connect",  "getpeername", "getsockname",
    "getsockopt", "listen",  "recvfrom",   "recvmmsg", "recvmsg",     "sendmmsg",
    "sendmsg",    "sendto",  "setsockopt", "shutdown", "socket",      "socketpair",
};

// io_uring performs reads, writes, opens and connects that seccomp never sees.
constexpr std::string_view kIoUring[] = {"io_uring_enter", "io_uring_register", "io_uring_setup"};

constexpr SyscallGroup kGroups[] = {
    {"@python-startup", "start the interpreter, import, read and write open files, time, signals",
     kPythonStartup},
    {"@python-files", "create, rename, link and remove files and directories", kPythonFiles},
    {"@python-threads", "threading and concurrent.futures.ThreadPoolExecutor", kPythonThreads},
    {"@python-subprocess", "subprocess, os.fork, multiprocessing (fork)", kPythonSubprocess},
    {"@python-async", "asyncio, selectors and multiprocessing's waits (epoll, eventfd)",
     kPythonAsync},
    {"@unix-sockets", "use Unix sockets once created (connect, send, receive)", kUnixSockets},
    {"@network", "every socket call (pair with `network: loopback`)", kNetwork},
    {"@io-uring", "io_uring (bypasses seccomp for the operations it performs)", kIoUring},
};

// glibc and CPython try these first and fall back on ENOSYS: clone3 (pthread_create, spawn; its
// flags live in memory the filter cannot read), faccessat2, openat2, epoll_pwait2, fchmodat2 (new
// fchmodat flags), futex_waitv, pidfd_* (subprocess on newer CPython), preadv2/pwritev2.
constexpr std::string_view kEnosys[] = {
    "clone3",         "epoll_pwait2",      "faccessat2",     "fchmodat2", "futex_waitv",
    "io_uring_enter", "io_uring_register", "io_uring_setup", "openat2",   "pidfd_getfd",
    "pidfd_open",     "pidfd_send_signal", "preadv2",        "pwritev2",
};

struct NamedValue {
  std::string_view name;
  uint64_t value;
};

#define E(name) NamedValue{#name, name},
constexpr NamedValue kErrnos[] = {
#include "policy/errno_names.inc"
};
#undef E

constexpr uint64_t u(long long v) { return static_cast<uint64_t>(v); }
#define C(name) NamedValue{#name, u(name)},
const NamedValue kConstants[] = {
    // socket(2) domains and types
    C(AF_UNSPEC) C(AF_UNIX) C(AF_LOCAL) C(AF_INET) C(AF_INET6) C(AF_NETLINK) C(AF_PACKET)
        C(AF_BLUETOOTH) C(AF_ALG) C(AF_VSOCK) C(AF_KEY) C(AF_XDP) C(AF_CAN) C(AF_TIPC)
            C(SOCK_STREAM) C(SOCK_DGRAM) C(SOCK_RAW) C(SOCK_SEQPACKET) C(SOCK_NONBLOCK)
                C(SOCK_CLOEXEC)
    // open(2) flags
    C(O_RDONLY) C(O_WRONLY) C(O_RDWR) C(O_ACCMODE) C(O_CREAT) C(O_EXCL) C(O_TRUNC) C(O_APPEND)
        C(O_NONBLOCK) C(O_CLOEXEC) C(O_DIRECTORY) C(O_NOFOLLOW) C(O_PATH) C(O_TMPFILE) C(O_SYNC)
            C(O_DSYNC) C(O_NOCTTY) C(O_DIRECT) C(O_NOATIME) C(O_LARGEFILE) C(AT_FDCWD)
    // clone(2) flags
    C(CSIGNAL) C(CLONE_VM) C(CLONE_FS) C(CLONE_FILES) C(CLONE_SIGHAND) C(CLONE_PIDFD)
        C(CLONE_PTRACE) C(CLONE_VFORK) C(CLONE_PARENT) C(CLONE_THREAD) C(CLONE_NEWNS)
            C(CLONE_SYSVSEM) C(CLONE_SETTLS) C(CLONE_PARENT_SETTID) C(CLONE_CHILD_CLEARTID)
                C(CLONE_UNTRACED) C(CLONE_CHILD_SETTID) C(CLONE_NEWCGROUP) C(CLONE_NEWUTS)
                    C(CLONE_NEWIPC) C(CLONE_NEWUSER) C(CLONE_NEWPID) C(CLONE_NEWNET) C(CLONE_IO)
                        C(CLONE_NEWTIME)
    // mmap(2) and mprotect(2)
    C(PROT_NONE) C(PROT_READ) C(PROT_WRITE) C(PROT_EXEC) C(MAP_SHARED) C(MAP_PRIVATE)
        C(MAP_ANONYMOUS) C(MAP_FIXED) C(MAP_NORESERVE) C(MAP_STACK)
    // fcntl(2) commands
    C(F_DUPFD) C(F_DUPFD_CLOEXEC) C(F_GETFD) C(F_SETFD) C(F_GETFL) C(F_SETFL) C(F_GETLK) C(F_SETLK)
        C(F_SETLKW) C(F_OFD_GETLK) C(F_OFD_SETLK) C(F_OFD_SETLKW) C(F_SETOWN) C(F_GETOWN)
            C(F_SETSIG) C(F_SETLEASE) C(F_NOTIFY) C(F_SETPIPE_SZ) C(F_GETPIPE_SZ) C(F_ADD_SEALS)
                C(F_GET_SEALS) C(FD_CLOEXEC)
    // ioctl(2) requests
    C(TCGETS) C(TCSETS) C(TCSETSW) C(TCSETSF) C(TIOCGWINSZ) C(TIOCSWINSZ) C(TIOCSTI) C(TIOCLINUX)
        C(TIOCGPGRP) C(TIOCSPGRP) C(TIOCSCTTY) C(TIOCNOTTY) C(TIOCGPTN) C(TIOCSPTLCK) C(TIOCGPTPEER)
            C(FIONREAD) C(FIONBIO) C(FIOCLEX) C(FIONCLEX) C(FIOASYNC)
    // prctl(2) options
    C(PR_SET_NAME) C(PR_GET_NAME) C(PR_SET_PDEATHSIG) C(PR_GET_PDEATHSIG) C(PR_SET_DUMPABLE)
        C(PR_GET_DUMPABLE) C(PR_SET_NO_NEW_PRIVS) C(PR_GET_NO_NEW_PRIVS) C(PR_SET_SECCOMP)
            C(PR_GET_SECCOMP) C(PR_CAPBSET_READ) C(PR_SET_PTRACER) C(PR_SET_VMA)
    // signals
    C(SIGHUP) C(SIGINT) C(SIGQUIT) C(SIGILL) C(SIGTRAP) C(SIGABRT) C(SIGBUS) C(SIGFPE) C(SIGKILL)
        C(SIGUSR1) C(SIGSEGV) C(SIGUSR2) C(SIGPIPE) C(SIGALRM) C(SIGTERM) C(SIGCHLD) C(SIGCONT)
            C(SIGSTOP) C(SIGTSTP) C(SIGTTIN) C(SIGTTOU) C(SIGURG) C(SIGXCPU) C(SIGXFSZ) C(SIGVTALRM)
                C(SIGPROF) C(SIGWINCH) C(SIGIO) C(SIGSYS)};
#undef C

struct Arg32 {
  std::string_view syscall;
  std::array<bool, 6> is_32bit;
};
// Arguments the kernel declares as int or unsigned int: only their low 32 bits mean anything.
constexpr Arg32 kArgs32[] = {
    {"socket", {true, true, true, false, false, false}},
    {"socketpair", {true, true, true, false, false, false}},
    {"open", {false, true, true, false, false, false}},
    {"openat", {true, false, true, true, false, false}},
    {"fcntl", {true, true, false, false, false, false}},
    {"ioctl", {true, true, false, false, false, false}},
    {"prctl", {true, false, false, false, false, false}},
    {"kill", {true, true, false, false, false, false}},
    {"tkill", {true, true, false, false, false, false}},
    {"tgkill", {true, true, true, false, false, false}},
    {"mmap", {false, false, true, true, true, false}},
    {"mprotect", {false, false, true, false, false, false}},
    {"madvise", {false, false, true, false, false, false}},
    {"setsockopt", {true, true, true, false, true, false}},
    {"getsockopt", {true, true, true, false, false, false}},
    {"personality", {true, false, false, false, false, false}},
    {"dup3", {true, true, true, false, false, false}},
    {"pipe2", {false, true, false, false, false, false}},
    {"accept4", {true, false, false, true, false, false}},
    {"eventfd2", {true, true, false, false, false, false}},
    {"epoll_create1", {true, false, false, false, false, false}},
    {"futex", {false, true, true, false, false, true}},
    {"unshare", {true, false, false, false, false, false}},
    {"setns", {true, true, false, false, false, false}},
};

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Levenshtein distance, except that one swap of adjacent letters ("sokcet") counts as a single
// typo: the mistake admins make most.
size_t typoDistance(std::string_view a, std::string_view b) {
  size_t best = editDistance(a, b);
  if (a.size() == b.size()) {
    for (size_t i = 0; i + 1 < a.size(); ++i) {
      if (a[i] != b[i] && a[i] == b[i + 1] && a[i + 1] == b[i] &&
          a.substr(i + 2) == b.substr(i + 2) && a.substr(0, i) == b.substr(0, i)) {
        best = std::min<size_t>(best, 1);
      }
    }
  }
  return best;
}

}  // namespace

bool isKnownSyscall(std::string_view name) {
  return std::binary_search(std::begin(kSyscallNames), std::end(kSyscallNames), name);
}

std::optional<std::string> suggestSyscall(std::string_view name) {
  std::string_view best;
  size_t best_distance = 3;
  for (std::string_view candidate : kSyscallNames) {
    // The distance is at least the difference in length. Skipping on it keeps a long unknown name
    // (found by tests/fuzz/policy_fuzz: a few KiB took seconds, 1 MiB would take minutes) from
    // costing name length x every syscall name.
    const size_t gap = name.size() > candidate.size() ? name.size() - candidate.size()
                                                      : candidate.size() - name.size();
    if (gap >= best_distance) continue;
    size_t d = typoDistance(name, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  if (best.empty()) return std::nullopt;
  return std::string(best);
}

// termios2 requests (glibc 2.42 and later use them for tcgetattr/tcsetattr): struct termios2 is
// 44 bytes on every architecture with the generic ioctl numbering; <asm/termbits.h> would clash
// with glibc's termios definitions, so the numbers are composed here.
constexpr uint64_t kTermios2Size = 44;
constexpr uint64_t kTcgets2 = _IOC(_IOC_READ, 'T', 0x2A, kTermios2Size);
constexpr uint64_t kTcsets2 = _IOC(_IOC_WRITE, 'T', 0x2B, kTermios2Size);
constexpr uint64_t kTcsetsw2 = _IOC(_IOC_WRITE, 'T', 0x2C, kTermios2Size);
constexpr uint64_t kTcsetsf2 = _IOC(_IOC_WRITE, 'T', 0x2D, kTermios2Size);

#define R(name) GroupRule{"ioctl", #name, 1, u(name), 0},
// What programs do with a terminal (termios, tcsetpgrp, window size, pty.openpty) and with any
// descriptor (FIONBIO: os.set_blocking; FIOCLEX: os.set_inheritable; FIONREAD). Injecting input
// (TIOCSTI) and the Linux console's requests (TIOCLINUX) fail with EPERM whatever the terminal.
const GroupRule kStartupRules[] = {
    R(TCGETS) R(TCSETS) R(TCSETSW) R(TCSETSF) R(TCFLSH) R(TCXONC) R(TCSBRK) R(TCSBRKP) R(TIOCGWINSZ)
        R(TIOCSWINSZ) R(TIOCGPGRP) R(TIOCSPGRP) R(TIOCGSID) R(TIOCOUTQ) R(TIOCSCTTY) R(TIOCNOTTY)
            R(TIOCGPTN) R(TIOCSPTLCK) R(TIOCGPTPEER) R(TIOCGPTLCK) R(TIOCGETD) R(TIOCEXCL)
                R(TIOCNXCL) R(TIOCGEXCL) R(TIOCMGET) R(FIONREAD) R(FIONBIO) R(FIOCLEX) R(FIONCLEX)
                    R(FIOASYNC) GroupRule{"ioctl", "TCGETS2", 1, kTcgets2, 0},
    GroupRule{"ioctl", "TCSETS2", 1, kTcsets2, 0},
    GroupRule{"ioctl", "TCSETSW2", 1, kTcsetsw2, 0},
    GroupRule{"ioctl", "TCSETSF2", 1, kTcsetsf2, 0},
    GroupRule{"ioctl", "TIOCSTI", 1, u(TIOCSTI), EPERM},
    GroupRule{"ioctl", "TIOCLINUX", 1, u(TIOCLINUX), EPERM},
};
#undef R

std::span<const GroupRule> groupRules(std::string_view group) {
  if (group == "@python-startup") return kStartupRules;
  return {};
}

std::span<const SyscallGroup> syscallGroups() { return kGroups; }

const SyscallGroup* findGroup(std::string_view name) {
  for (const SyscallGroup& g : kGroups) {
    if (g.name == name) return &g;
  }
  return nullptr;
}

std::span<const std::string_view> enosysByDefault() { return kEnosys; }

std::optional<int> errnoByName(std::string_view name) {
  for (const NamedValue& e : kErrnos) {
    if (e.name == name) return static_cast<int>(e.value);
  }
  return std::nullopt;
}

std::string_view errnoName(int value) {
  for (const NamedValue& e : kErrnos) {
    if (e.value == static_cast<uint64_t>(value)) return e.name;
  }
  return "E?";
}

std::optional<uint64_t> constantByName(std::string_view name) {
  for (const NamedValue& c : kConstants) {
    if (c.name == name) return c.value;
  }
  return std::nullopt;
}

bool isArgument32Bit(std::string_view syscall, unsigned index) {
  if (index >= 6) return false;
  for (const Arg32& a : kArgs32) {
    if (a.syscall == syscall) return a.is_32bit[index];
  }
  return false;
}

}  // namespace pyrun::policy
