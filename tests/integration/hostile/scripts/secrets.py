# Attacks the host's secrets: the server's key bundle and the CA key of the test PKI (their host
# paths are argv[1:] - 1), /etc/shadow, /root, and a world-readable file of the test outside the
# working directory (last argument). Every read must print BLOCKED: the job's root holds none of
# these paths, and the uid and Landlock stand behind the mount namespace.
import os
import sys


def attempt(what, fn):
    try:
        data = fn()
        print("ALLOWED %s: %r" % (what, data[:40]), flush=True)
    except OSError as e:
        print("BLOCKED %s: %s" % (what, type(e).__name__), flush=True)


def read(path):
    with open(path, "rb") as f:
        return f.read()


for path in sys.argv[1:] + ["/etc/shadow", "/etc/gshadow", "/root/.bash_history"]:
    attempt("read " + path, lambda p=path: read(p))
attempt("list /root", lambda: os.listdir("/root"))
attempt("list /home", lambda: os.listdir("/home"))
print("DONE", flush=True)
