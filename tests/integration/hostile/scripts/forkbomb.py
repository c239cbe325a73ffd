# Attacks the machine with a fork bomb: forks children that sleep, until fork fails. The process
# limit must stop it (BLOCKED fork after N, or the verdict "process limit"), and every child must be
# gone when the job ends (the test checks the host's process table for argv[1], a marker).
import os
import time

n = 0
try:
    while n < 100000:
        pid = os.fork()
        if pid == 0:
            time.sleep(1000)
            os._exit(0)
        n += 1
    print("ALLOWED fork", n, flush=True)
except OSError as e:
    print("BLOCKED fork after %d: %s" % (n, type(e).__name__), flush=True)
print("DONE", flush=True)
