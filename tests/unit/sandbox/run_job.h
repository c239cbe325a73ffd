// Test helper: runs one job through a spawner of its own, to its end, as root or (in a forked
// child) as an unprivileged user, and says what became of it.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <string>
#include <variant>

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

namespace detail {

inline bool nextMessage(int socket, Received& message, std::string& error) {
  for (;;) {
    pollfd p{socket, POLLIN, 0};
    if (::poll(&p, 1, 60000) != 1) {
      error = "no message from the spawner within 60 s";
      return false;
    }
    auto r = receiveFromSpawner(socket);
    if (!r) {
      error = r.error().detail();
      return false;
    }
    if (*r) {
      message = std::move(**r);
      return true;
    }
  }
}

// Reads fd into out until `needle` appears in it or end of file.
inline void readUntil(int fd, std::string& out, const std::string& needle) {
  char buf[4096];
  while (out.find(needle) == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    out.append(buf, static_cast<size_t>(n));
  }
}

// Drains both pipes together, so that a job filling one never blocks us on the other.
inline void drain(int out_fd, int err_fd, std::string& out, std::string& err) {
  pollfd p[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open = 2;
  while (open > 0 && ::poll(p, 2, 60000) > 0) {
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      char buf[65536];
      ssize_t n = ::read(p[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        p[i].fd = -1;
        --open;
      } else {
        (i == 0 ? out : err).append(buf, static_cast<size_t>(n));
      }
    }
  }
}

}  // namespace detail

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
  auto finish = [&] {
    spawner->socket.reset();
    int status = 0;
    ::waitpid(spawner->pid, &status, 0);
    return run;
  };
  if (auto r = sendToSpawner(spawner->socket.get(), SpawnJob{spec}); !r) {
    run.error = r.error().detail();
    return finish();
  }
  Received first;
  if (!detail::nextMessage(spawner->socket.get(), first, run.error)) return finish();
  if (const auto* f = std::get_if<JobFailed>(&first.message)) {
    run.failed_stage = f->stage;
    run.failed_detail = f->detail;
    return finish();
  }
  const auto* started = std::get_if<JobStarted>(&first.message);
  if (started == nullptr || first.fds.size() != 3) {
    run.error = "the first message is not JobStarted with three descriptors";
    return finish();
  }
  run.started = true;
  if (!ready.empty()) {
    detail::readUntil(first.fds[1].get(), run.out, ready);
    if (while_running) while_running(*started);
  }
  first.fds[0].reset();
  detail::drain(first.fds[1].get(), first.fds[2].get(), run.out, run.err);
  Received last;
  if (!detail::nextMessage(spawner->socket.get(), last, run.error)) return finish();
  const auto* ended = std::get_if<JobEnded>(&last.message);
  if (ended == nullptr) {
    run.error = "the second message is not JobEnded";
    return finish();
  }
  run.signaled = ended->signaled;
  run.code = ended->code;
  run.cause = ended->cause;
  return finish();
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
