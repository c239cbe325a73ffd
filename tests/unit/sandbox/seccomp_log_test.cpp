// The seccomp audit records that name the system call a job was killed for: parsing both sources,
// and the audit netlink socket under a burst of kills (the printk rate limit of /dev/kmsg, 10
// records per 5 s, once left a CI run's kill unnamed).
#include "sandbox/seccomp_log.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <vector>

namespace pyrun::sandbox {
namespace {

constexpr const char* kNetlinkKill =
    "audit(1764163200.123:4242): auid=4294967295 uid=300001 gid=300001 ses=4294967295 "
    "subj=unconfined pid=31337 comm=\"python3\" exe=\"/usr/bin/python3.11\" sig=31 "
    "arch=c000003e syscall=101 compat=0 ip=0x7f0000001234 code=0x80000000";

TEST(SeccompRecordParse, NetlinkKillRecordGivesPidUidArchCallAndAction) {
  auto r = parseSeccompFields(kNetlinkKill);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->pid, 31337);
  EXPECT_EQ(r->uid, 300001u);  // not auid's 4294967295
  EXPECT_EQ(r->arch, 0xc000003eu);
  EXPECT_EQ(r->syscall, 101);
  EXPECT_EQ(r->signal, 31);
  EXPECT_EQ(r->code, 0x80000000u);
  EXPECT_EQ(syscallName(r->arch, r->syscall), "ptrace");
}

TEST(SeccompRecordParse, KmsgRecordNeedsItsAuditType) {
  std::string kmsg = std::string("5,1234,98765,-;audit: type=1326 ") + kNetlinkKill + "\n";
  auto r = parseKmsgRecord(kmsg);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->pid, 31337);
  EXPECT_EQ(r->syscall, 101);
  // Another audit type with the same fields is not a seccomp record.
  std::string other = std::string("5,1234,98765,-;audit: type=1300 ") + kNetlinkKill;
  EXPECT_FALSE(parseKmsgRecord(other));
  EXPECT_FALSE(parseKmsgRecord("no separator type=1326 pid=1"));
}

TEST(SeccompRecordParse, MissingOrMalformedFieldsAreRefused) {
  std::string text = kNetlinkKill;
  for (const char* key : {" pid=", " uid=", " arch=", " syscall=", " sig=", " code="}) {
    std::string broken = text;
    broken.replace(broken.find(key), std::string(key).size(), " xx=");
    EXPECT_FALSE(parseSeccompFields(broken)) << key;
  }
  std::string bad_number = text;
  bad_number.replace(bad_number.find("syscall=101"), 11, "syscall=1x1");
  EXPECT_FALSE(parseSeccompFields(bad_number));
  std::string bad_code = text;
  bad_code.replace(bad_code.find("code=0x80000000"), 15, "code=80000000");
  EXPECT_FALSE(parseSeccompFields(bad_code));
}

TEST(SeccompRecordParse, OtherAbisAreNamedWithTheirAbi) {
  EXPECT_EQ(syscallName(SCMP_ARCH_X86, 102), "socketcall (x86)");
  EXPECT_EQ(syscallName(SCMP_ARCH_X86_64, 999999), "syscall 999999 (unknown on this architecture)");
}

// A child that loads a filter killing getppid, then calls it.
pid_t forkKilledByFilter() {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr || seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS, SCMP_SYS(getppid), 0) != 0 ||
      ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || seccomp_load(ctx) != 0) {
    _exit(100);
  }
  ::syscall(SYS_getppid);
  _exit(101);
}

TEST(SeccompLogTest, NamesEveryKillOfABurstWithoutWaiting) {
  if (::geteuid() != 0) GTEST_SKIP() << "the audit socket needs CAP_AUDIT_READ (root)";
  SeccompLog log;
  ASSERT_TRUE(log.available()) << log.unavailableReason();
  // 40 kills at once: four times the printk burst that /dev/kmsg would let through.
  std::vector<pid_t> pids;
  for (int i = 0; i < 40; ++i) pids.push_back(forkKilledByFilter());
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) << "status " << status;
  }
  auto ours = [&](pid_t pid) { return std::find(pids.begin(), pids.end(), pid) != pids.end(); };
  std::map<pid_t, std::string> names;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (names.size() < pids.size() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{log.fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    log.drain(ours);
    for (pid_t pid : pids) {
      if (names.count(pid) != 0) continue;
      if (auto name = log.takeName(pid)) names[pid] = *name;
    }
  }
  ASSERT_EQ(names.size(), pids.size());
  for (const auto& [pid, name] : names) EXPECT_EQ(name, "getppid") << pid;
  // A record is handed out once; an unknown pid has none, and asking never blocks.
  EXPECT_FALSE(log.takeName(pids.front()));
  EXPECT_FALSE(log.takeName(1));
}

// Reads log (keeping pid's records only) until pid's kill is named, for at most 30 s.
std::optional<std::string> awaitName(SeccompLog& log, pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{log.fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    log.drain([pid](pid_t p2) { return p2 == pid; });
    if (auto name = log.takeName(pid)) return name;
  }
  return std::nullopt;
}

// Kill records of processes that are not ours are never kept: a later job whose interpreter reuses
// that pid would otherwise be told another process's call. forget() drops what was kept for a pid.
TEST(SeccompLogTest, KeepsOnlyWantedPidsAndForgets) {
  if (::geteuid() != 0) GTEST_SKIP() << "the audit socket needs CAP_AUDIT_READ (root)";
  SeccompLog log;
  ASSERT_TRUE(log.available()) << log.unavailableReason();
  pid_t stranger = forkKilledByFilter();
  pid_t ours = forkKilledByFilter();
  int status = 0;
  ASSERT_EQ(::waitpid(stranger, &status, 0), stranger);
  ASSERT_EQ(::waitpid(ours, &status, 0), ours);
  EXPECT_EQ(awaitName(log, ours), "getppid");
  // The stranger's record came first (it was killed first) and was dropped, not kept.
  EXPECT_FALSE(log.takeName(stranger));

  // A second reader witnesses the record's arrival without consuming the first one's copy.
  SeccompLog witness;
  pid_t again = forkKilledByFilter();
  ASSERT_EQ(::waitpid(again, &status, 0), again);
  ASSERT_EQ(awaitName(witness, again), "getppid");
  auto is_again = [&](pid_t pid) { return pid == again; };
  pollfd ready{log.fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&ready, 1, 30000), 1);  // multicast: the same record reaches log's socket too
  log.drain(is_again);
  log.forget(again);
  EXPECT_FALSE(log.takeName(again));
}

}  // namespace
}  // namespace pyrun::sandbox
