// Writes the seed corpus of spawner_codec_fuzz from the real encoders: every request datagram, a
// full and a minimal JobSpec, and every message of the spawner. Usage: make_spawner_corpus DIR
// (tools/fuzz and the fuzz_spawner_codec_* tests run it; nothing of it is committed).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "sandbox/channel.h"
#include "sandbox/spawner.h"

namespace {

using namespace pyrun::sandbox;

std::vector<std::pair<std::string, std::vector<uint8_t>>> corpus() {
  JobSpec full;
  full.job_id = 42;
  full.policy = "default";
  full.script_name = "fib.py";
  full.script = "import sys\nprint(sys.argv)\n";
  full.args = {"30", "", "-x"};
  full.files = {{"data/input.txt", 0644, "1 2 3\n"}, {"run.sh", 0755, ""}};
  full.limits.cpu_seconds = 5;
  full.limits.memory_bytes = 256ull << 20;
  JobSpec minimal;

  JobStarted started{7, 4242, {}};
  started.times.set(pyrun::JobStage::kWorkDir, 1000);
  started.times.set(pyrun::JobStage::kExec, 9000);
  JobFailed failed{7, "execve", 2, "execve /usr/bin/python3: No such file or directory"};
  JobEnded ended;
  ended.job_id = 7;
  ended.signaled = true;
  ended.code = 31;
  ended.cause = EndCause::kSyscall;
  ended.cpu_us = 1500;
  ended.peak_memory_bytes = 9ull << 20;
  ended.wall_us = 20000;
  ended.detail = "ptrace";
  ended.times.set(pyrun::JobStage::kExit, 20000);
  ended.times.set(pyrun::JobStage::kCleanup, 21000);
  ended.syscall_named = true;
  JobEnded unnamed = ended;
  unnamed.detail = "forbidden system call (name unknown: no audit source)";
  unnamed.syscall_named = false;
  PoliciesReloaded reloaded{false, "default.yaml:3:1: unknown key"};

  return {
      {"request_spawn", channel::encodeRequest(SpawnJob{full})},
      {"request_signal", channel::encodeRequest(SignalJob{7, 2})},
      {"request_kill", channel::encodeRequest(KillJob{7})},
      {"request_reload", channel::encodeRequest(ReloadPolicies{})},
      {"spec_full", encodeJobSpec(full)},
      {"spec_minimal", encodeJobSpec(minimal)},
      {"message_started", encodeMessage(started)},
      {"message_failed", encodeMessage(failed)},
      {"message_ended", encodeMessage(ended)},
      {"message_ended_unnamed", encodeMessage(unnamed)},
      {"message_reloaded", encodeMessage(reloaded)},
  };
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_spawner_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  for (const auto& [name, bytes] : corpus()) {
    std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_spawner_corpus: cannot write %s/%s\n", dir.c_str(), name.c_str());
      return 1;
    }
  }
  return 0;
}
