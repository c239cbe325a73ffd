# Attacks process isolation by looking: lists every process visible in /proc with its command line.
# Only the job's own processes may appear (its init and this interpreter): the server, the host's
# init and other jobs (their marker is argv[1]) must be invisible.
import os

for name in sorted(os.listdir("/proc"), key=lambda n: (len(n), n)):
    if not name.isdigit():
        continue
    try:
        with open("/proc/%s/cmdline" % name, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError as e:
        cmd = "<%s>" % type(e).__name__
    print("PROC", name, cmd, flush=True)
print("DONE", flush=True)
