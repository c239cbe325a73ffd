// pyrun: runs a Python program on a pyrund server, as if it ran here.
#include <openssl/ssl.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "client/exit_status.h"
#include "client/options.h"
#include "client/session.h"
#include "client/stdio.h"
#include "common/version.h"

int main(int argc, char** argv) {
  using namespace pyrun::client;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 1 && args[0] == "--version") {
    std::printf("pyrun %s\n", pyrun::kVersion);
    return 0;
  }
  auto command = parseCommandLine(args, Environment::fromProcess());
  if (!command) {
    printLine(command.error().detail());
    return kFailureStatus;
  }
  if (command->help) {
    std::string text = usage();
    return writeFully(1, text) ? 0 : kFailureStatus;
  }
  // Writes to a closed stdout or socket must fail with EPIPE, not kill pyrun before it can cancel
  // the job and report.
  ::signal(SIGPIPE, SIG_IGN);
  // pyrun ends with its job: OpenSSL's clean-up at exit would only free, page by page, memory the
  // kernel frees at once (2% of a hello world's CPU). Its state stays reachable, so leak checkers
  // are not misled.
  OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT, nullptr);
  return runJob(command->options);
}
