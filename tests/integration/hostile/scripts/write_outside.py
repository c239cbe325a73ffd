# Attacks the host's files by writing outside the working directory: system paths, /var, /, and a
# world-writable directory of the test on the host (argv[1]). Every write must print BLOCKED:
# system paths are mounted read-only and host directories are not in the job's root at all.
import os
import sys


def attempt(what, fn):
    try:
        fn()
        print("ALLOWED", what, flush=True)
    except OSError as e:
        print("BLOCKED %s: %s" % (what, type(e).__name__), flush=True)


def write(path):
    with open(path, "w") as f:
        f.write("pwned\n")


targets = [os.path.join(sys.argv[1], "pwned"), "/etc/pyrun-pwned", "/usr/lib/pyrun-pwned",
           "/var/tmp/pyrun-pwned", "/pyrun-pwned", "/proc/sys/kernel/hostname"]
for t in targets:
    attempt("write " + t, lambda p=t: write(p))
attempt("mkdir /usr/pyrun-pwned", lambda: os.mkdir("/usr/pyrun-pwned"))
print("DONE", flush=True)
