# Attacks descriptors inherited from the server: lists /proc/self/fd and probes fds 3..1023. Only
# 0, 1 and 2 may be open: a leaked listening socket, TLS key file or spawner socket would hand the
# job the server.
import os

listed = sorted(int(n) for n in os.listdir("/proc/self/fd"))
# listdir's own directory descriptor is closed by now; probe each number directly.
open_fds = []
for fd in range(0, 1024):
    try:
        os.fstat(fd)
        open_fds.append(fd)
    except OSError:
        pass
print("FDS", ",".join(str(f) for f in open_fds), flush=True)
for fd in open_fds:
    if fd > 2:
        print("LEAKED fd %d -> %s" % (fd, os.readlink("/proc/self/fd/%d" % fd)), flush=True)
print("DONE", flush=True)
