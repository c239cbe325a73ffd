// Ordinary workloads under the shipped default policy: each program's output through pyrun and the
// real pyrund equals, byte for byte, its output when run locally with /usr/bin/python3.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace pyrun::test {
namespace {

using namespace std::chrono_literals;

const std::string kScripts = PYRUN_SOURCE_DIR "/tests/integration/workloads/scripts/";

class WorkloadTest : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("workloads-srv");
    // Jobs run under their own uids and the front as "nobody" when the test runs as root.
    ::chmod(dir_->path().c_str(), 0711);
    pki_ = new Pki(dir_->path());
    alice_ = pki_->clientBundle("alice");
    writeFile(*dir_ / "pyrund.yaml",
              poolSizeYaml() + "listen: 127.0.0.1\nport: 0\nport_file: " + (*dir_ / "port") +
                  "\ncert: " + pki_->serverBundle() + "\njobs_dir: " + (*dir_ / "jobs") +
                  "\nmax_jobs: 2\npolicies:\n  default: " PYRUN_SOURCE_DIR "/policy/default.yaml\n",
              0600);
    server_ = new Child({binary("pyrund"), "--config", *dir_ / "pyrund.yaml"});
    if (!eventually([] { return !readFileOrEmpty(*dir_ / "port").empty(); }, 30s)) {
      server_->signal(SIGKILL);
      start_error_ = "pyrund did not write its port file; stderr:\n" + server_->wait(10s).err;
      delete server_;
      server_ = nullptr;
      return;
    }
    port_ = std::stoi(readFileOrEmpty(*dir_ / "port"));
  }

  static void TearDownTestSuite() {
    if (server_ != nullptr) {
      server_->signal(SIGTERM);
      server_->wait(30s);
      delete server_;
    }
    delete pki_;
    delete dir_;
  }

  static inline TempDir* dir_ = nullptr;
  static inline Pki* pki_ = nullptr;
  static inline Child* server_ = nullptr;
  static inline int port_ = 0;
  static inline std::string alice_, start_error_;
};

TEST_P(WorkloadTest, OutputEqualsALocalRun) {
  ASSERT_NE(server_, nullptr) << start_error_;
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
  Outcome remote = run(
      {binary("pyrun"), "--cert", alice_, "127.0.0.1:" + std::to_string(port_), script}, options);
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
