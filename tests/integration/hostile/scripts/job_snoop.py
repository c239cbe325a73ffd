# The other of two concurrent jobs: looks for the first job's marker (derived from argv[1] as the
# first job does) wherever it could reach it: its working directory and the one above, /tmp,
# /dev/shm, and /proc/*/{cwd,environ,cmdline} of every visible process; then tries to signal the
# first job by its host pids (argv[2:]). It must find nothing (NOTFOUND) and reach no one (BLOCKED).
import os
import signal
import sys

# The marker is derived from the argument, so that neither job's command line contains it.
marker = ("SECRET-" + sys.argv[1][::-1]).encode()
found = []


def scan(top):
    for root, dirs, files in os.walk(top, onerror=lambda e: None):
        for name in files:
            try:
                with open(os.path.join(root, name), "rb") as f:
                    if marker in f.read(1 << 20):
                        found.append(os.path.join(root, name))
            except OSError:
                pass


for top in [os.getcwd(), os.path.dirname(os.getcwd()), "/job", "/tmp", "/dev/shm", "/var/lib/pyrun"]:
    scan(top)
for name in os.listdir("/proc"):
    if not name.isdigit():
        continue
    scan("/proc/%s/cwd" % name)
    for part in ("environ", "cmdline"):
        try:
            with open("/proc/%s/%s" % (name, part), "rb") as f:
                if marker in f.read():
                    found.append("/proc/%s/%s" % (name, part))
        except OSError:
            pass
print("FOUND " + " ".join(found) if found else "NOTFOUND", flush=True)
for arg in sys.argv[2:]:
    try:
        os.kill(int(arg), signal.SIGKILL)
        print("ALLOWED kill", arg, flush=True)
    except OSError as e:
        print("BLOCKED kill %s: %s" % (arg, type(e).__name__), flush=True)
print("DONE", flush=True)
