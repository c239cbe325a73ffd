# Attacks the server's environment: prints the job's environment and what /proc shows of the
# environments it can read. None of the server's variables (a secret the test sets) may appear.
import os

for key, value in sorted(os.environ.items()):
    print("ENV %s=%s" % (key, value), flush=True)
for name in os.listdir("/proc"):
    if name.isdigit() or name == "self":
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                print("PROCENV", name, f.read().replace(b"\0", b" ").decode(errors="replace"),
                      flush=True)
        except OSError:
            pass
print("DONE", flush=True)
