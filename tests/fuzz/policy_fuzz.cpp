// libFuzzer target for the policy loader: arbitrary bytes as the top-level policy file. Besides
// memory errors, leaks (ASan/UBSan) and hangs (libFuzzer's -timeout), it checks the loader's
// contract: it fails with at least one diagnostic or succeeds with none, and every policy it
// accepts compiles into a seccomp program, so "pyrun-policy check" passing means the spawner can
// build the filter.
#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/file.h"
#include "policy/policy.h"
#include "sandbox/seccomp_filter.h"

namespace {

// The input is loaded as if it were <dir>/fuzz.yaml, where <dir> is a private directory holding
// two fixed files it may include: a valid base (so extending, overriding and conflicting with a
// base are reached) and a file with a YAML syntax error. Every other relative include names a
// file that does not exist and must come back as a clean "cannot include" diagnostic; including
// "fuzz.yaml" itself is an include loop, detected without touching the disk.
constexpr std::string_view kBase =
    "version: 1\n"
    "limits:\n"
    "  memory: 256M\n"
    "  cpu_seconds: 5\n"
    "seccomp:\n"
    "  default_action: kill_process\n"
    "  allow: [\"@python-startup\", close]\n"
    "  rules:\n"
    "    - {syscall: socket, args: [{index: 0, op: eq, value: AF_UNIX}]}\n"
    "    - {syscall: kill, action: errno EPERM}\n";
constexpr std::string_view kBroken = "version: 1\nseccomp: [unclosed\n";

std::string g_dir;
std::string g_path;

int removeEntry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

void removeDir() {
  if (!g_dir.empty()) ::nftw(g_dir.c_str(), removeEntry, 8, FTW_DEPTH | FTW_PHYS);
}

void writeOrDie(const std::string& path, std::string_view text) {
  if (auto r = pyrun::writeNewFile(path, text, 0600); !r) {
    std::fprintf(stderr, "policy_fuzz: %s\n", r.error().detail().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/pyrun-policy-fuzz.XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    std::perror("policy_fuzz: mkdtemp");
    std::abort();
  }
  g_dir = templ;
  std::atexit(removeDir);
  writeOrDie(g_dir + "/base.yaml", kBase);
  writeOrDie(g_dir + "/broken.yaml", kBroken);
  g_path = g_dir + "/fuzz.yaml";
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  pyrun::policy::LoadOutcome outcome = pyrun::policy::loadPolicyTextWithDiagnostics(text, g_path);

  // Exactly one of the two: a refused policy says why, an accepted one has nothing to say.
  if (outcome.policy.has_value() == !outcome.diagnostics.empty()) __builtin_trap();
  for (const pyrun::policy::Diagnostic& d : outcome.diagnostics) {
    if (d.message.empty() || d.where.file.empty() || d.where.line < 1 || d.where.column < 1) {
      __builtin_trap();
    }
  }
  if (!outcome.policy) return 0;

  const pyrun::policy::Policy& policy = *outcome.policy;
  (void)pyrun::policy::describePolicy(policy);
  pyrun::Result<pyrun::sandbox::SeccompProgram> program =
      pyrun::sandbox::compileSeccompFilter(policy.seccomp);
  if (!program) {
    std::fprintf(stderr, "policy_fuzz: an accepted policy does not compile: %s\n",
                 program.error().detail().c_str());
    __builtin_trap();
  }
  if (program->empty()) __builtin_trap();
  return 0;
}
