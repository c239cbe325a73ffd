// pyrund: parse flags and config, fork the spawner, build TLS, listen, drop root, serve.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <sys/wait.h>
#include <vector>

#include <utility>

#include <boost/asio/io_context.hpp>

#include "common/file.h"
#include "common/log.h"
#include "sandbox/spawner.h"
#include "server/config.h"
#include "server/privileges.h"
#include "server/server.h"
#include "tls/tls.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "pyrund: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace pyrun;
  std::vector<std::string> args(argv + 1, argv + argc);
  auto command = server::parseCommandLine(args);
  if (!command) return fail(kExitUsage, command.error().detail());
  if (command->help) {
    std::fputs(server::usage().c_str(), stdout);
    return kExitOk;
  }
  auto config = server::resolveConfig(*command);
  if (!config) return fail(kExitUsage, config.error().detail());
  log::setLevel(config->log_level);

  // The spawner is forked first, while this process has one thread and no Asio object: fork in a
  // multi-threaded process could copy a lock held by another thread into the child.
  sandbox::SpawnerConfig spawner_config;
  spawner_config.jobs_dir = config->jobs_dir;
  auto spawner = sandbox::startSpawner(spawner_config);
  if (!spawner) return fail(kExitFailure, "cannot start the spawner: " + spawner.error().detail());
  const pid_t spawner_pid = spawner->pid;

  // A job that closes its stdin must give us EPIPE on the pipe, not kill the front.
  std::signal(SIGPIPE, SIG_IGN);

  int status = kExitOk;
  {
    auto tls = tls::makeServerContext({config->cert, config->ca, config->crl});
    if (!tls) {
      status = fail(kExitFailure, tls.error().detail());
    }
    boost::asio::io_context io(1);
    std::unique_ptr<server::Server> front;
    if (tls) {
      auto made = server::Server::create(io, *config, *tls, std::move(spawner->socket));
      if (!made) {
        status = fail(kExitFailure, made.error().detail());
      } else {
        front = std::move(*made);
      }
    }
    if (front && !config->port_file.empty()) {
      // Written after listen(): whoever reads the port can connect at once.
      if (auto r = replaceFile(config->port_file, std::to_string(front->port()) + "\n", 0644); !r) {
        status = fail(kExitFailure, r.error().detail());
        front.reset();
      }
    }
    if (front) {
      // The key is loaded and the port bound: nothing the front still does needs root.
      if (auto r = server::dropPrivileges(config->user); !r) {
        status = fail(kExitFailure, "cannot drop privileges: " + r.error().detail());
        front.reset();
      } else if (server::runningAsRoot()) {
        status = fail(kExitFailure, "still running as root after the privilege drop");
        front.reset();
      }
    }
    if (front) {
      front->start();
      try {
        io.run();
      } catch (const std::exception& e) {
        PYRUN_LOG(kError) << "unexpected failure: " << e.what();
        status = kExitFailure;
      }
      if (status == kExitOk) status = front->exitCode();
    }
    front.reset();
  }
  // Our end of the spawner socket is closed by now (it belonged to the front or to `spawner`):
  // the spawner kills what is left of the jobs and exits.
  spawner->socket.reset();
  int wstatus = 0;
  while (waitpid(spawner_pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  return status;
}
