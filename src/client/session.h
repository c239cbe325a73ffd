// One remote run: connect, TLS handshake, READY, RUN, then stream stdio and signals until EXIT.
#pragma once

#include <boost/system/error_code.hpp>
#include <optional>
#include <string>

#include "client/options.h"
#include "common/error.h"
#include "proto/messages.h"

namespace pyrun::client {

// Reads the script and builds the RUN request (name = the script's base name). Errors name the
// file: unreadable, or a request above the protocol's frame limit or otherwise invalid.
Result<proto::RunRequest> buildRunRequest(const Options& options);

// Runs the job the options describe. The program's stdout and stderr go to fds 1 and 2 as they
// arrive, fd 0 is forwarded, SIGINT/SIGTERM/SIGHUP are handled; pyrun's own lines go to stderr.
// Returns the exit status (see exit_status.h). Precondition: SIGPIPE is ignored.
int runJob(const Options& options);

}  // namespace pyrun::client
