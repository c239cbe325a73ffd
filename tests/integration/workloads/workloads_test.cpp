// Ordinary workloads under the shipped default policy: each program's output through pyrun and the
// real pyrund equals, byte for byte, its output when run locally with /usr/bin/python3.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "support/pki.h"
#include "support/process.h"
#include "support/pyrund.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

using namespace std::chrono_literals;

const std::string kScripts = PYRUN_SOURCE_DIR "/tests/integration/workloads/scripts/";

// One pyrund for the whole suite, with the shipped default policy.
struct WorkloadServer {
  static PyrundOptions options(Pki& pki) {
    PyrundOptions o;
    o.cert = pki.serverBundle();
    o.config_yaml = poolSizeYaml() + "max_jobs: 2\npolicies:\n  default: " PYRUN_SOURCE_DIR
                                     "/policy/default.yaml\n";
    return o;
  }
  TempDir dir{"workloads-srv"};
  Pki pki{dir.path()};
  std::string alice = pki.clientBundle("alice");
  Pyrund pyrund{dir.path(), options(pki)};
};

class WorkloadTest : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() { server_ = std::make_unique<WorkloadServer>(); }
  static void TearDownTestSuite() { server_.reset(); }

  static inline std::unique_ptr<WorkloadServer> server_;
};

TEST_P(WorkloadTest, OutputEqualsALocalRun) {
  ASSERT_TRUE(server_->pyrund.started()) << server_->pyrund.startError();
  const std::string script = kScripts + GetParam() + ".py";
  RunOptions options;
  options.timeout = 120s;
  // Locally with the flags pyrund gives the interpreter (isolated, no bytecode, unbuffered), in a
  // scratch directory like the job's.
  TempDir local("workload-local");
  options.cwd = local.path();
  Outcome expected = run({"/usr/bin/python3", "-I", "-B", "-u", script}, options);
  if (std::string(GetParam()) == "numpy_work" &&
      expected.err.find("No module named 'numpy'") != std::string::npos) {
    GTEST_SKIP() << "numpy is not installed locally (apt install python3-numpy to run this)";
  }
  ASSERT_EQ(expected.exit_code, 0) << "the workload fails locally:\n" << expected.err;
  options.cwd.clear();
  Outcome remote =
      run({binary("pyrun"), "--cert", server_->alice, server_->pyrund.address(), script}, options);
  EXPECT_EQ(remote.exit_code, expected.exit_code) << remote.err;
  EXPECT_EQ(remote.out, expected.out) << remote.err;
  EXPECT_EQ(remote.err, expected.err);
}

INSTANTIATE_TEST_SUITE_P(Python, WorkloadTest,
                         ::testing::Values("threads", "process_pool", "asyncio_work", "files",
                                           "subprocess_self", "numpy_work"),
                         [](const auto& param_info) { return std::string(param_info.param); });

}  // namespace
}  // namespace pyrun::test
