// pyrund: parse flags and config, load the policies, fork the spawner (which cleans up after a
// crashed run), build TLS, listen, open the audit log, drop root, confine the front, serve.
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#if defined(PYRUN_HAVE_SYSTEMD)
#include <systemd/sd-daemon.h>
#endif

#include "common/fd.h"
#include "common/file.h"
#include "common/log.h"
#include "common/strict_modes.h"
#include "common/version.h"
#include "sandbox/front_filter.h"
#include "sandbox/spawner.h"
#include "server/audit.h"
#include "server/config.h"
#include "server/policy_set.h"
#include "server/privileges.h"
#include "server/revocation.h"
#include "server/server.h"
#include "tls/tls.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int fail(int code, const std::string& message) {
  // One "pyrund: " line per line of the message: policy errors are file:line:col lines.
  std::istringstream lines(message);
  std::string line;
  while (std::getline(lines, line)) std::fprintf(stderr, "pyrund: %s\n", line.c_str());
  return code;
}

void warnAboutCrl(const std::string& path) {
  using namespace pyrun;
  auto crl = server::readCrl(path);
  if (!crl) return;  // makeServerContext reports an unreadable CRL and stops the start
  std::time_t now = std::time(nullptr);
  auto freshness = server::crlFreshness(crl->next_update, now);
  std::string message = server::crlFreshnessMessage(freshness, path, crl->next_update, now);
  if (freshness == server::CrlFreshness::kExpired) {
    PYRUN_LOG(kError) << message;
  } else if (!message.empty()) {
    PYRUN_LOG(kWarning) << message;
  }
}

// Tells systemd (Type=notify) about the service's state; nothing when not started by systemd
// (NOTIFY_SOCKET unset) or built without libsystemd. The front may call it after its seccomp
// filter is loaded: sd_notify needs socket(AF_UNIX) and sendmsg, which the filter allows.
void notifySystemd(const char* state) {
#if defined(PYRUN_HAVE_SYSTEMD)
  ::sd_notify(0, state);
#else
  (void)state;
#endif
}

// The uid and gid of the user the front drops to, when we are root and it exists.
std::optional<std::pair<uid_t, gid_t>> frontUserIds(const pyrun::server::ServerConfig& config) {
  if (!pyrun::server::runningAsRoot()) return std::nullopt;
  passwd* pw = ::getpwnam(config.user.c_str());
  if (pw == nullptr) return std::nullopt;
  return std::make_pair(pw->pw_uid, pw->pw_gid);
}

// The front's start-up once the spawner runs, one step after the other: the first that fails
// ends it with its message. Returns pyrund's exit status; what it built is gone when it returns.
int runFront(const pyrun::server::ServerConfig& config, pyrun::server::PolicySet policies,
             pyrun::UniqueFd spawner_socket) {
  using namespace pyrun;
  auto tls = tls::makeServerContext({config.cert, config.ca, config.crl});
  if (!tls) return fail(kExitFailure, tls.error().detail());
  // Opened while still root (the log's directory is usually root's); the file is given to the
  // front's user so that SIGHUP can reopen it after a rotation (docs/pyrund.md, "Audit log").
  server::AuditLog audit;
  if (!config.audit_log.empty()) {
    auto ids = frontUserIds(config);
    auto opened = server::AuditLog::open(config.audit_log, ids ? static_cast<int>(ids->first) : -1,
                                         ids ? static_cast<int>(ids->second) : -1);
    if (!opened) return fail(kExitFailure, opened.error().detail());
    audit = std::move(*opened);
  }
  boost::asio::io_context io(1);
  auto made = server::Server::create(io, config, *tls, std::move(spawner_socket),
                                     std::move(policies), std::move(audit));
  if (!made) return fail(kExitFailure, made.error().detail());
  server::Server& front = **made;
  if (!config.port_file.empty()) {
    // Written after listen(): whoever reads the port can connect at once.
    if (auto r = replaceFile(config.port_file, std::to_string(front.port()) + "\n", 0644); !r) {
      return fail(kExitFailure, r.error().detail());
    }
  }
  // The key is loaded and the port bound: nothing the front still does needs root.
  if (auto r = server::dropPrivileges(config.user); !r) {
    return fail(kExitFailure, "cannot drop privileges: " + r.error().detail());
  }
  if (server::runningAsRoot()) {
    return fail(kExitFailure, "still running as root after the privilege drop");
  }
  // Last step of the start-up: the TLS context, the sockets and the audit log exist, and nothing
  // from here on needs exec or fork (the spawner makes the jobs).
  if (auto r = sandbox::confineFront(); !r) {
    return fail(kExitFailure, "cannot confine the network front: " + r.error().detail());
  }
  front.onStopping([] { notifySystemd("STOPPING=1"); });
  front.start();
  // Listening, privileges dropped, confined: systemd may consider the service started.
  notifySystemd("READY=1");
  try {
    io.run();
  } catch (const std::exception& e) {
    PYRUN_LOG(kError) << "unexpected failure: " << e.what();
    return kExitFailure;
  } catch (...) {
    PYRUN_LOG(kError) << "unexpected failure: unknown exception";
    return kExitFailure;
  }
  return front.exitCode();
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
  if (command->version) {
    std::printf("pyrund %s\n", kVersion);
    return kExitOk;
  }
  auto config = server::resolveConfig(*command);
  if (!config) return fail(kExitUsage, config.error().detail());
  log::setLevel(config->log_level);
  // The spawner re-reads it as root on SIGHUP and refuses it then; refuse it now already.
  if (!config->config_file.empty()) {
    if (auto safe = checkStrictModes(config->config_file); !safe) {
      return fail(kExitUsage, safe.error().detail());
    }
  }

  // Every policy is loaded before anything starts: an admin's mistake is reported here, with its
  // file:line:col, instead of at a client's first job.
  // As root here too: each policy file passes StrictModes before it is read, as in the spawner.
  auto policies = server::loadPolicySet(
      *config, [](const std::string& path) { return checkStrictModes(path); });
  if (!policies) return fail(kExitUsage, policies.error().detail());

  if (!config->crl.empty()) warnAboutCrl(config->crl);

  // The spawner is forked first; before it forks it removes whatever a run killed with SIGKILL
  // left in jobs_dir and in its cgroup subtree (the jobs themselves died with that run through
  // their parent-death signals).
  // The spawner is forked first, while this process has one thread and no Asio object: fork in a
  // multi-threaded process could copy a lock held by another thread into the child.
  sandbox::SpawnerConfig spawner_config;
  spawner_config.jobs_dir = config->jobs_dir;
  // The spawner loads the same files and compiles their seccomp programs.
  spawner_config.policy_files = config->policies;
  // The front runs at most max_jobs; twice that leaves room for jobs the front has let go of
  // (a client gone) whose end the spawner has not reported yet, and still bounds a front that
  // misbehaves.
  spawner_config.max_jobs = 2 * config->max_jobs;
  spawner_config.pool_sizes = server::poolSizesOf(*config);
  // On SIGHUP the spawner re-reads the config file on its own (as root):
  // the unprivileged front must not be able to name the files it loads.
  if (!config->config_file.empty()) {
    // Root reads it: refused when anyone but root could have written it (StrictModes); the
    // policies it names are loaded by the spawner alone, each checked before it is opened.
    spawner_config.reload_policy_files = [file = config->config_file]() {
      return server::policyFilesForSpawner(file);
    };
    spawner_config.reload_pool_sizes = [file = config->config_file]() {
      return server::poolSizesForSpawner(file);
    };
  }
  spawner_config.cgroups.subtree = server::cgroupSubtreeFor(*config);
  spawner_config.cgroups.prefer = config->cgroups == "none" ? sandbox::CgroupVersion::kNone
                                  : config->cgroups == "v1" ? sandbox::CgroupVersion::kV1
                                                            : sandbox::CgroupVersion::kV2;
  spawner_config.cgroups.require = config->require_cgroups;
  // The front stages uploads in <jobs_dir>/.uploads as the user it drops to.
  if (auto ids = frontUserIds(*config)) {
    spawner_config.uploads_uid = ids->first;
    spawner_config.uploads_gid = ids->second;
  }
  auto spawner = sandbox::startSpawner(spawner_config);
  if (!spawner) return fail(kExitFailure, "cannot start the spawner: " + spawner.error().detail());
  const pid_t spawner_pid = spawner->pid;

  // A job that closes its stdin must give us EPIPE on the pipe, not kill the front.
  std::signal(SIGPIPE, SIG_IGN);

  int status = runFront(*config, std::move(*policies), std::move(spawner->socket));
  // Our end of the spawner socket went with runFront: the spawner kills what is left of the jobs
  // and exits.
  int wstatus = 0;
  while (waitpid(spawner_pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  return status;
}
