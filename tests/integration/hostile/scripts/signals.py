# Attacks the server and pid 1 with signals: SIGKILL to the server's host pids (argv[1:]) must fail
# (not visible from the job's pid namespace), and pid 1 inside the job must be the job's own init,
# not the host's, so that signalling it harms nothing outside the job.
import os
import signal
import sys

for arg in sys.argv[1:]:
    pid = int(arg)
    try:
        os.kill(pid, signal.SIGKILL)
        print("ALLOWED kill %d" % pid, flush=True)
    except OSError as e:
        print("BLOCKED kill %d: %s" % (pid, type(e).__name__), flush=True)
with open("/proc/1/cmdline", "rb") as f:
    print("PID1", f.read().replace(b"\0", b" ").decode(errors="replace").strip(), flush=True)
try:
    os.kill(1, signal.SIGKILL)
    print("SENT kill 1", flush=True)
except OSError as e:
    print("BLOCKED kill 1: %s" % type(e).__name__, flush=True)
print("DONE", flush=True)
