// The front's seccomp filter, loaded in a forked child (never in the test process itself): exec and
// fork fail, threads still work.
#include "sandbox/front_filter.h"

#include <gtest/gtest.h>
#include <seccomp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace pyrun::sandbox {
namespace {

// Runs body in a child after confineFront(); returns the child's exit status (100 + step on a
// failed expectation, 0 when all held).
template <class Body>
int inConfinedChild(Body body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!confineFront()) _exit(99);
    _exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(FrontConfinement, DeniesExec) {
  int status = inConfinedChild([] {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    char* envp[] = {nullptr};
    ::execve("/bin/true", argv, envp);
    return errno == EPERM ? 0 : 101;
  });
  EXPECT_EQ(status, 0);
}

TEST(FrontConfinement, DeniesForkButAllowsThreads) {
  int status = inConfinedChild([] {
    pid_t child = ::fork();
    if (child == 0) _exit(0);  // reached only if the filter failed
    if (child > 0) return 102;
    if (errno != EPERM) return 103;
    bool ran = false;
    std::thread t([&] { ran = true; });
    t.join();
    return ran ? 0 : 104;
  });
  EXPECT_EQ(status, 0);
}

TEST(FrontConfinement, WithoutTheFilterExecWorks) {
  // The control: the same exec in an unconfined child succeeds, so the test above proves the
  // filter and not a broken /bin/true.
  pid_t pid = ::fork();
  if (pid == 0) {
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    char* envp[] = {nullptr};
    ::execve("/bin/true", argv, envp);
    _exit(101);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(FrontConfinement, DeniesWhatItLists) {
  // Every listed call answers EPERM in a confined child. Called with zero arguments, which the
  // kernel would reject anyway; the calls that would act on the host even so, were the filter
  // broken, are left to the tests above or not made.
  const std::set<std::string> not_called = {"execve",
                                            "execveat",
                                            "fork",
                                            "vfork",
                                            "reboot",
                                            "kexec_load",
                                            "kexec_file_load",
                                            "init_module",
                                            "finit_module",
                                            "delete_module",
                                            "swapon",
                                            "swapoff",
                                            "clone (without CLONE_THREAD)"};
  std::vector<int> numbers;
  for (const auto& name : frontDeniedSyscalls()) {
    if (not_called.count(name) != 0) continue;
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr != __NR_SCMP_ERROR) numbers.push_back(nr);
  }
  ASSERT_GT(numbers.size(), 30u);
  int status = inConfinedChild([&] {
    for (size_t i = 0; i < numbers.size(); ++i) {
      long rc = ::syscall(numbers[i], 0, 0, 0, 0, 0, 0);
      if (rc != -1 || errno != EPERM) return static_cast<int>(100 + i);
    }
    return 0;
  });
  EXPECT_EQ(status, 0) << "a listed call was not denied (100 + its index)";
}

}  // namespace
}  // namespace pyrun::sandbox
