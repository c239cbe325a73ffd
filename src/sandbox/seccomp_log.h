// The kernel's seccomp audit records (type 1326 = AUDIT_SECCOMP): naming the system call that the
// filter killed a job for (the spawner), and collecting the calls a job made under a "log" policy
// (pyrun-policy learn).
//
// Where the records are read from, best first:
//  - the audit netlink socket's read-only multicast group (AUDIT_NLGRP_READLOG, needs
//    CAP_AUDIT_READ, so root). Every record reaches it, whether or not auditd runs: the kernel
//    makes the logging task wait rather than drop when its queue is full.
//  - /dev/kmsg, when the netlink socket cannot be had. Without auditd the kernel prints records
//    there only through printk_ratelimit() (10 per 5 s by default: "kauditd_printk_skb: N
//    callbacks suppressed"), so under load a kill may go unnamed. The verdict then says so.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/fd.h"

namespace pyrun::sandbox {

struct SeccompRecord {
  pid_t pid = 0;      // host pid (thread group id) of the process that made the call
  uint32_t uid = 0;   // its uid, as the host sees it
  uint32_t arch = 0;  // AUDIT_ARCH_* of the call
  int syscall = -1;
  int signal = 0;     // SIGSYS for a kill, 0 for SECCOMP_RET_LOG and the other non-fatal actions
  uint32_t code = 0;  // the filter's SECCOMP_RET_* action
};

// Parses the fields of an AUDIT_SECCOMP record as the netlink socket gives them ("audit(T:N):
// auid=... uid=0 ... pid=N comm=... sig=31 arch=c000003e syscall=101 compat=0 ip=... code=0x0").
// nullopt when a field is missing or malformed.
std::optional<SeccompRecord> parseSeccompFields(std::string_view text);

// Parses one /dev/kmsg record ("6,123,456,-;audit: type=1326 audit(...): ... syscall=101 ...").
// nullopt for every record that is not a seccomp one.
std::optional<SeccompRecord> parseKmsgRecord(std::string_view record);

// "ptrace" for x86_64's 101; "syscall 999 (unknown on this architecture)" when libseccomp cannot
// name it; other ABIs get their name as well ("socketcall (x86)").
std::string syscallName(uint32_t arch, int syscall);

// The call's name when arch is the native ABI and libseccomp knows the number; nullopt otherwise.
std::optional<std::string> nativeSyscallName(uint32_t arch, int syscall);

// The audit netlink multicast reader. Non-blocking: poll fd() and call drain().
class AuditSocket {
 public:
  Result<void> open();
  int fd() const noexcept { return fd_.get(); }
  // Hands the seccomp records queued now to `sink`, at most max_records of them (the rest stay
  // queued; poll says so). Sets lost() when the socket overflowed.
  template <class Sink>
  void drain(Sink&& sink, size_t max_records = SIZE_MAX) {
    for (size_t n = 0; n < max_records; ++n) {
      auto text = next();
      if (!text) return;
      if (auto r = parseSeccompFields(*text)) sink(*r);
    }
  }
  bool lost() const noexcept { return lost_; }

 private:
  // The text of the next AUDIT_SECCOMP message, nullopt when none is queued.
  std::optional<std::string_view> next();

  UniqueFd fd_;
  bool lost_ = false;
  char buffer_[65536];
  size_t length_ = 0;  // bytes of buffer_ received
  size_t offset_ = 0;  // next message in buffer_
};

// The spawner's view: the names of the calls that killed its jobs, looked up by host pid without
// ever waiting (the spawner is one thread serving every job; see Spawner::run).
class SeccompLog {
 public:
  // Opens the netlink socket, else /dev/kmsg positioned at its end (older records are not ours).
  // When neither can be read, unavailableReason() says why.
  SeccompLog();
  bool available() const noexcept { return source_ != Source::kNone; }
  const std::string& unavailableReason() const noexcept { return reason_; }
  // What to poll for new records (-1 when unavailable).
  int fd() const noexcept;
  // Reads the records available now, a bounded number per call (a flood of audit records must not
  // hold the spawner's one loop). Only kill records of a pid for which wanted(pid) is true are
  // kept: any other process of the host may be killed by a filter of its own, and a record kept
  // for a pid that a later job's interpreter reuses would name the wrong call.
  void drain(const std::function<bool(pid_t)>& wanted);
  // Drops what was kept for pid (a new job's interpreter: older records are not its own).
  void forget(pid_t pid);
  // The name of the call that killed host pid `pid`, once its record has been read.
  std::optional<std::string> takeName(pid_t pid);
  // True when every kill record reaches us: the audit socket, no audit=0 at boot, kill_process in
  // /proc/sys/kernel/seccomp/actions_logged (all checked at start) and no overflow since. A death
  // by SIGSYS without a record was then a plain signal (os.kill), not the filter.
  bool complete() const noexcept {
    return source_ == Source::kNetlink && kills_logged_ && !netlink_.lost();
  }
  // The verdict's text when no record came: "forbidden system call (name unknown: <why>)".
  std::string unknownName() const;

 private:
  enum class Source { kNone, kNetlink, kKmsg };
  void keep(const SeccompRecord& r, const std::function<bool(pid_t)>& wanted);

  Source source_ = Source::kNone;
  bool kills_logged_ = false;
  AuditSocket netlink_;
  UniqueFd kmsg_;
  std::string reason_;
  std::deque<SeccompRecord> recent_;
};

}  // namespace pyrun::sandbox
