// The warm pool's boot module (Python source) and the message that hands it its job.
#include "sandbox/boot_module.h"

#include <cstring>

namespace pyrun::sandbox {

namespace {

// Runs as __main__ of `INTERPRETER -E -s -B -u /.pyrun/boot.py`, fully confined, before any byte of
// a client exists in the job. It imports nothing: every name it uses is a builtin or a module the
// interpreter's own start-up already loaded from the read-only system paths (sys, os), so a file a
// client later puts into /job can never shadow the boot module's code. sys.path[0] is /.pyrun
// (read-only, holding this file only) until the hand-off.
//
// At the hand-off it first lowers its rlimits to the job's (the spawner cannot: lowering another
// process's limits needs CAP_SYS_RESOURCE, which a container may not grant; a process may always
// lower its own), and exits 71 if it cannot, so that no job runs with higher limits than a cold
// start would give it.
//
// After the hand-off it makes the interpreter's state what a cold start of the script has:
// sys.argv, sys.orig_argv, sys.path[0], __main__'s globals (the same names a script starts with,
// __file__ and __loader__ naming the script), and it runs the script's code in __main__'s
// namespace. An uncaught exception is shown by sys.excepthook without the boot module's frames,
// then re-raised with a silent hook, so that the interpreter's own exit path runs unchanged:
// status 1, atexit handlers and thread joins, and for KeyboardInterrupt the re-raised SIGINT that
// ends a cold interpreter. SystemExit passes through untouched.
constexpr const char kSource[] =
    R"PY(# pyrun boot module: waits for one job, then runs it as __main__.


def _boot():
    import os
    import sys
    # Before the hand-off: from the read-only system paths (sys.path[0] is this directory).
    import resource

    boot_file = __file__
    # The names a script's globals start with: those this module started with.
    keep = {name for name in globals() if name.startswith("__") and name.endswith("__")}
    chunks = []
    while True:
        try:
            chunk = os.read(5, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    os.close(5)
    fields = b"".join(chunks).split(b"\0")
    if len(fields) < 3 or fields[-1] != b"":
        os._exit(70)
    # The job's limits, only ever lowered (a process may always lower its own); the CPU limit
    # counts from here, so the seconds of the boot are added. Any failure ends the job unrun.
    try:
        cpu, fsize, nofile, address_space, nproc = (int(x) for x in fields[0].split())
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu += int(used.ru_utime + used.ru_stime)
        for which, soft, hard in (
            (resource.RLIMIT_CPU, cpu, cpu + 1),
            (resource.RLIMIT_FSIZE, fsize, fsize),
            (resource.RLIMIT_NOFILE, nofile, nofile),
            (resource.RLIMIT_AS, address_space, address_space),
            (resource.RLIMIT_NPROC, nproc, nproc),
        ):
            if soft < 0:
                continue
            old_soft, old_hard = resource.getrlimit(which)
            if old_hard != resource.RLIM_INFINITY:
                hard = min(hard, old_hard)
            soft = min(soft, hard)
            if old_soft != resource.RLIM_INFINITY:
                soft = min(soft, old_soft)
            resource.setrlimit(which, (soft, hard))
    except BaseException:
        os._exit(71)
    del sys.modules["resource"]
    argv = [os.fsdecode(f) for f in fields[1:-1]]
    path = argv[0]
    sys.argv = argv
    sys.orig_argv = sys.orig_argv[: -1] + argv
    sys.path_importer_cache.pop(sys.path[0], None)
    sys.path[0] = os.path.dirname(path)
    main = sys.modules["__main__"].__dict__
    for name in list(main):
        if name not in keep:
            del main[name]
    main["__file__"] = path
    main["__cached__"] = None
    loader_type = sys.modules["_frozen_importlib_external"].SourceFileLoader
    main["__loader__"] = loader_type("__main__", path)
    main["__doc__"] = None
    try:
        with open(path, "rb") as f:
            source = f.read()
        code = compile(source, path, "exec", dont_inherit=True)
        del source, chunks, fields
        exec(code, main)
    except SystemExit:
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == boot_file:
            tb = tb.tb_next
        e.__traceback__ = tb
        sys.last_type, sys.last_value, sys.last_traceback = type(e), e, tb
        sys.excepthook(type(e), e, tb)
        sys.excepthook = lambda *args: None
        raise


_boot()
)PY";

}  // namespace

const char* bootModuleSource() { return kSource; }

std::string encodeHandoff(const HandoffLimits& limits, const std::string& script_path,
                          const std::vector<std::string>& args) {
  std::string out =
      std::to_string(limits.cpu_seconds) + " " + std::to_string(limits.file_size_bytes) + " " +
      std::to_string(limits.open_files) + " " + std::to_string(limits.address_space_bytes) + " " +
      std::to_string(limits.processes);
  out.push_back('\0');
  out.append(script_path.c_str());
  out.push_back('\0');
  for (const auto& a : args) {
    out.append(a.c_str());  // execve would end it at its first NUL too
    out.push_back('\0');
  }
  return out;
}

}  // namespace pyrun::sandbox
