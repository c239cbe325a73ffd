// Test helper: runs one job through a spawner of its own (sandbox/job_run.h), to its end, as root
// or (in a forked child) as an unprivileged user, and says what became of it.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "sandbox/job_run.h"
#include "sandbox/spawner.h"

namespace pyrun::sandbox::test_support {

// What became of one job.
struct JobRun {
  std::string error;  // why the run itself went wrong (no spawner, no message); empty otherwise
  bool started = false;
  std::string failed_stage, failed_detail;  // JobFailed
  std::string out, err;                     // the job's stdout and stderr
  bool signaled = false;                    // JobEnded
  int code = -1;
  EndCause cause = EndCause::kExited;
};

// Starts a spawner with config, runs spec to its end (stdin closed at once, or once `ready` has
// appeared on stdout and while_running has returned), stops the spawner.
inline JobRun runJob(const SpawnerConfig& config, const JobSpec& spec,
                     const std::string& ready = "",
                     const std::function<void(const JobStarted&)>& while_running = {}) {
  JobRun run;
  auto spawner = startSpawner(config);
  if (!spawner) {
    run.error = "startSpawner: " + spawner.error().detail();
    return run;
  }
  JobRunOptions options;
  options.idle_timeout_ms = 60000;  // a hang fails the run instead of blocking the test
  options.hold_stdin = !ready.empty();
  std::optional<JobStarted> started;
  options.on_started = [&](const JobStarted& s, JobRunControl&) { started = s; };
  options.on_output = [&](int stream, std::string_view bytes, JobRunControl& job) {
    std::string& to = stream == 1 ? run.out : run.err;
    const bool was_ready = ready.empty() || run.out.find(ready) != std::string::npos;
    to.append(bytes);
    if (was_ready || run.out.find(ready) == std::string::npos) return;
    if (while_running) while_running(*started);
    job.closeStdin();
  };
  auto outcome = runJobThroughSpawner(spawner->socket.get(), spec, options);
  spawner->socket.reset();
  int status = 0;
  ::waitpid(spawner->pid, &status, 0);
  if (!outcome) {
    run.error = outcome.error().detail();
    return run;
  }
  run.started = outcome->started.has_value();
  if (outcome->failed) {
    run.failed_stage = outcome->failed->stage;
    run.failed_detail = outcome->failed->detail;
    return run;
  }
  run.signaled = outcome->ended->signaled;
  run.code = outcome->ended->code;
  run.cause = outcome->ended->cause;
  return run;
}

namespace detail {

inline void putField(std::string& to, const std::string& field) {
  to += std::to_string(field.size()) + ":" + field;
}

inline std::string takeField(const std::string& from, size_t& at) {
  size_t colon = from.find(':', at);
  if (colon == std::string::npos) return {};
  size_t length = std::stoul(from.substr(at, colon - at));
  std::string field = from.substr(colon + 1, length);
  at = colon + 1 + length;
  return field;
}

}  // namespace detail

// Runs body in a forked child that has dropped root for uid:gid (and every supplementary group),
// and returns its JobRun. Call it as root only.
inline JobRun runAsUser(uid_t uid, gid_t gid, const std::function<JobRun()>& body) {
  JobRun failed;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    failed.error = "pipe failed";
    return failed;
  }
  pid_t child = ::fork();
  if (child < 0) {
    failed.error = "fork failed";
    return failed;
  }
  if (child == 0) {
    ::close(fds[0]);
    JobRun run;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0) {
      run.error = "could not drop root";
    } else {
      run = body();
    }
    std::string bytes;
    for (const std::string* field :
         {&run.error, &run.failed_stage, &run.failed_detail, &run.out, &run.err}) {
      detail::putField(bytes, *field);
    }
    detail::putField(bytes, std::string(run.started ? "1" : "0") + (run.signaled ? "1" : "0") +
                                std::to_string(static_cast<int>(run.cause)) + " " +
                                std::to_string(run.code));
    for (size_t done = 0; done < bytes.size();) {
      ssize_t n = ::write(fds[1], bytes.data() + done, bytes.size() - done);
      if (n <= 0) _exit(2);
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  ::close(fds[1]);
  std::string bytes;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  JobRun run;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || bytes.empty()) {
    run.error = "the unprivileged child failed (wait status " + std::to_string(status) + ")";
    return run;
  }
  size_t at = 0;
  for (std::string* field :
       {&run.error, &run.failed_stage, &run.failed_detail, &run.out, &run.err}) {
    *field = detail::takeField(bytes, at);
  }
  std::string flags = detail::takeField(bytes, at);
  run.started = flags.size() > 2 && flags[0] == '1';
  run.signaled = flags.size() > 2 && flags[1] == '1';
  size_t space = flags.find(' ');
  if (space != std::string::npos && space > 2) {
    run.cause = static_cast<EndCause>(std::stoi(flags.substr(2, space - 2)));
    run.code = std::stoi(flags.substr(space + 1));
  }
  return run;
}

// "job failed at <stage>: <detail>", the run's error, or "" for a job that started.
inline std::string whyNotStarted(const JobRun& run) {
  if (!run.error.empty()) return run.error;
  if (!run.failed_stage.empty()) {
    return "job failed at " + run.failed_stage + ": " + run.failed_detail;
  }
  return "";
}

}  // namespace pyrun::sandbox::test_support
