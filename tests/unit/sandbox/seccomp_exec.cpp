// Test helper: seccomp_exec POLICY PROGRAM [ARGS...] compiles POLICY's seccomp section, installs it
// in this process (after no_new_privs) and execs PROGRAM, as the spawner's child will.
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "policy/policy.h"
#include "sandbox/seccomp_filter.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: seccomp_exec POLICY PROGRAM [ARGS...]\n");
    return 2;
  }
  auto policy = pyrun::policy::loadPolicy(argv[1]);
  if (!policy) {
    std::fprintf(stderr, "%s\n", policy.error().detail().c_str());
    return 2;
  }
  auto program = pyrun::sandbox::compileSeccompFilter(policy->seccomp);
  if (!program) {
    std::fprintf(stderr, "%s\n", program.error().detail().c_str());
    return 2;
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    std::perror("prctl(PR_SET_NO_NEW_PRIVS)");
    return 2;
  }
  if (int err = pyrun::sandbox::loadSeccompProgram(*program); err != 0) {
    std::fprintf(stderr, "seccomp: %s\n", std::strerror(err));
    return 2;
  }
  execv(argv[2], argv + 2);
  // The filter may deny execve itself; report as an exit code the test can tell apart.
  std::fprintf(stderr, "execv %s: %s\n", argv[2], std::strerror(errno));
  return 127;
}
