// What every job's root holds of the host, and whether a policy's interpreter is reachable in it.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pyrun::policy {

// Host directories bound read-only at the same place in every job's root (or recreated as the
// same symbolic link on merged-/usr hosts), so that interpreter and library paths resolve as on
// the host. sandbox/job_root.cpp mounts them.
inline constexpr const char* kJobSystemPaths[] = {"/usr",   "/bin",   "/sbin",  "/lib",
                                                  "/lib32", "/lib64", "/libx32"};

// The parts of /etc that programs need and that hold no secret. The host's /etc as a whole is not
// exposed: it holds shadow, ssh host keys, the server's own configuration and often its key.
inline constexpr const char* kJobEtcFiles[] = {
    "/etc/alternatives", "/etc/ca-certificates", "/etc/ca-certificates.conf",
    "/etc/host.conf",    "/etc/hosts",           "/etc/ld.so.cache",
    "/etc/ld.so.conf",   "/etc/ld.so.conf.d",    "/etc/localtime",
    "/etc/mime.types",   "/etc/nsswitch.conf",   "/etc/protocols",
    "/etc/python3",      "/etc/python3.11",      "/etc/services",
    "/etc/ssl",
};

// Why `interpreter` cannot be executed in a job whose root holds the system paths above plus
// `extra_paths` (the policy's filesystem.read_only and read_write), or nothing when it can. The
// path is followed on this host component by component: every symbolic link on the way (a venv's
// bin/python3 -> /usr/bin/python3.11) must itself be in the root, and so must what it points to.
// A component that does not exist here ends the walk (execve reports it at run time). The
// sentence names the path that is missing and the filesystem.read_only entry that would add it.
std::optional<std::string> interpreterOutsideJobRoot(const std::string& interpreter,
                                                     const std::vector<std::string>& extra_paths);

}  // namespace pyrun::policy
