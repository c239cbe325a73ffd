// pyrun-policy: policy tooling for admins (check files, explain what a policy allows).
#include <sys/utsname.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "sandbox/seccomp_filter.h"

namespace {

// Exit codes (see policy/README.md).
constexpr int kExitOk = 0;
constexpr int kExitInvalid = 1;  // a policy has mistakes, or its filter cannot be built
constexpr int kExitUsage = 2;

constexpr std::string_view kUsage =
    "usage: pyrun-policy check FILE...   check policy files; print each mistake as file:line:col\n"
    "       pyrun-policy explain FILE    show resolved limits, allowed syscalls by group, filter "
    "size\n"
    "       pyrun-policy --help\n";

int usage(std::string_view complaint) {
  std::cerr << "pyrun-policy: " << complaint << "\n" << kUsage;
  return kExitUsage;
}

// Loads a policy and builds its filter, as pyrund does at start and on SIGHUP.
int check(const std::vector<std::string>& files) {
  int status = kExitOk;
  for (const std::string& file : files) {
    pyrun::policy::LoadOutcome outcome = pyrun::policy::loadPolicyWithDiagnostics(file);
    if (!outcome.policy) {
      for (const auto& d : outcome.diagnostics) std::cerr << toString(d) << "\n";
      status = kExitInvalid;
      continue;
    }
    auto program = pyrun::sandbox::compileSeccompFilter(outcome.policy->seccomp);
    if (!program) {
      std::cerr << file << ": cannot build the seccomp filter: " << program.error().detail() << "\n";
      status = kExitInvalid;
      continue;
    }
    std::cout << file << ": ok\n";
  }
  return status;
}

int explain(const std::string& file) {
  auto policy = pyrun::policy::loadPolicy(file);
  if (!policy) {
    std::cerr << policy.error().detail() << "\n";
    return kExitInvalid;
  }
  auto program = pyrun::sandbox::compileSeccompFilter(policy->seccomp);
  if (!program) {
    std::cerr << file << ": cannot build the seccomp filter: " << program.error().detail() << "\n";
    return kExitInvalid;
  }
  struct utsname host {};
  uname(&host);
  std::cout << describePolicy(*policy);
  std::cout << "  filter: " << program->size() << " BPF instructions ("
            << program->size() * sizeof(sock_filter) << " bytes) for " << host.machine
            << "; system calls of any other ABI kill the job\n";
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage("missing command");
  const std::string& command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  std::vector<std::string> operands(args.begin() + 1, args.end());
  if (command == "check") {
    if (operands.empty()) return usage("check needs at least one policy file");
    return check(operands);
  }
  if (command == "explain") {
    if (operands.size() != 1) return usage("explain takes exactly one policy file");
    return explain(operands[0]);
  }
  return usage("unknown command \"" + command + "\"");
}
