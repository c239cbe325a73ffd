// The seccomp compiler: policy::Seccomp -> libseccomp context -> BPF bytes (exported via a memfd).
#include "sandbox/seccomp_filter.h"

#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "common/fd.h"

namespace pyrun::sandbox {
namespace {

using policy::ActionKind;
using policy::CompareOp;

uint32_t toScmpAction(const policy::Action& action) {
  switch (action.kind) {
    case ActionKind::kAllow:
      return SCMP_ACT_ALLOW;
    case ActionKind::kKillProcess:
      return SCMP_ACT_KILL_PROCESS;
    case ActionKind::kLog:
      return SCMP_ACT_LOG;
    case ActionKind::kErrno:
      return SCMP_ACT_ERRNO(static_cast<uint32_t>(action.errno_value));
  }
  return SCMP_ACT_KILL_PROCESS;
}

scmp_compare toScmpCompare(CompareOp op) {
  switch (op) {
    case CompareOp::kEq:
      return SCMP_CMP_EQ;
    case CompareOp::kNe:
      return SCMP_CMP_NE;
    case CompareOp::kLt:
      return SCMP_CMP_LT;
    case CompareOp::kLe:
      return SCMP_CMP_LE;
    case CompareOp::kGt:
      return SCMP_CMP_GT;
    case CompareOp::kGe:
      return SCMP_CMP_GE;
    case CompareOp::kMaskedEq:
      return SCMP_CMP_MASKED_EQ;
  }
  return SCMP_CMP_EQ;
}

struct ContextDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Context = std::unique_ptr<void, ContextDeleter>;

Error seccompError(const std::string& what, int rc) {
  // libseccomp returns negative errnos.
  return Error(Errc::kSandbox, what + ": " + std::strerror(-rc));
}

}  // namespace

Result<SeccompProgram> compileSeccompFilter(const policy::Seccomp& seccomp) {
  const uint32_t default_action = toScmpAction(seccomp.default_action);
  Context ctx(seccomp_init(default_action));
  if (!ctx) return Error(Errc::kSandbox, "seccomp_init failed (out of memory?)");

  // A new context holds the native architecture only; a syscall made through another ABI (int 0x80
  // or x32 on x86_64) meets this action before any rule, since the rules' numbers mean other calls
  // there.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
      rc < 0) {
    return seccompError("setting the bad-architecture action", rc);
  }
  // The filter is exported, not loaded here; no_new_privs is the spawner's step in the child.
  if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0); rc < 0) {
    return seccompError("clearing the no_new_privs attribute", rc);
  }

  auto add = [&](const std::string& name, uint32_t action,
                 const std::vector<scmp_arg_cmp>& conditions) -> Result<void> {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    // A name of another architecture (e.g. socketcall on x86_64): nothing to filter here.
    if (nr == __NR_SCMP_ERROR) return {};
    // libseccomp refuses a rule whose action is the default one; it would change nothing.
    if (action == default_action) return {};
    int rc = seccomp_rule_add_array(ctx.get(), action, nr, static_cast<unsigned>(conditions.size()),
                                    conditions.empty() ? nullptr : conditions.data());
    if (rc < 0) return seccompError("adding the seccomp rule for " + name, rc);
    return {};
  };

  for (const policy::AllowedSyscall& a : seccomp.allowed) {
    if (auto r = add(a.syscall, SCMP_ACT_ALLOW, {}); !r) return r.error();
  }
  for (const policy::SyscallRule& rule : seccomp.rules) {
    std::vector<scmp_arg_cmp> conditions;
    for (const policy::ArgCondition& c : rule.conditions) {
      scmp_arg_cmp cmp{};
      cmp.arg = c.index;
      cmp.op = toScmpCompare(c.op);
      if (c.op == CompareOp::kMaskedEq) {
        cmp.datum_a = c.mask;
        cmp.datum_b = c.value;
      } else {
        cmp.datum_a = c.value;
      }
      conditions.push_back(cmp);
    }
    if (auto r = add(rule.syscall, toScmpAction(rule.action), conditions); !r) return r.error();
  }
  for (const std::string& name : seccomp.enosys) {
    if (auto r = add(name, SCMP_ACT_ERRNO(ENOSYS), {}); !r) return r.error();
  }

  // libseccomp 2.5.4 can only export to a descriptor (seccomp_export_bpf_mem came in 2.6).
  UniqueFd memfd(memfd_create("pyrun-seccomp", MFD_CLOEXEC));
  if (!memfd) return errnoError("memfd_create for the seccomp program", errno);
  if (int rc = seccomp_export_bpf(ctx.get(), memfd.get()); rc < 0) {
    return seccompError("exporting the seccomp program", rc);
  }
  if (lseek(memfd.get(), 0, SEEK_SET) < 0)
    return errnoError("rewinding the seccomp program", errno);
  Result<std::string> bytes =
      readAll(memfd.get(), "the seccomp program", BPF_MAXINSNS * sizeof(sock_filter) + 1);
  if (!bytes) return bytes.error();
  if (bytes->empty() || bytes->size() % sizeof(sock_filter) != 0) {
    return Error(Errc::kSandbox, "libseccomp exported a program of " +
                                     std::to_string(bytes->size()) +
                                     " bytes, not a whole number of BPF instructions");
  }
  if (bytes->size() / sizeof(sock_filter) > BPF_MAXINSNS) {
    return Error(Errc::kSandbox, "the seccomp program has more than " +
                                     std::to_string(BPF_MAXINSNS) + " instructions");
  }
  std::vector<sock_filter> instructions(bytes->size() / sizeof(sock_filter));
  std::memcpy(instructions.data(), bytes->data(), bytes->size());
  return SeccompProgram(std::move(instructions));
}

int loadSeccompProgram(const SeccompProgram& program) noexcept {
  sock_fprog fprog{};
  fprog.len = static_cast<unsigned short>(program.size());
  // The kernel copies the program; it does not write through this pointer.
  fprog.filter = const_cast<sock_filter*>(program.instructions().data());
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) return errno;
  return 0;
}

}  // namespace pyrun::sandbox
