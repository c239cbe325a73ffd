# Attacks the job's end: double fork and setsid, so that a daemon escapes its parent and tries to
# live on after the job (argv[1] is a marker the test looks for in the host's process table). The
# whole job, daemon included, must be killed when the main program exits.
import os
import sys
import time

r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        os.write(w, b"%d" % os.getpid())
        os.close(w)
        for fd in (0, 1, 2):
            os.close(fd)
        time.sleep(100000)
        os._exit(0)
    os._exit(0)
os.close(w)
daemon = os.read(r, 32).decode()
os.wait()
print("DAEMON STARTED", daemon, sys.argv[1], flush=True)
