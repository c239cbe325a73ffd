# Tries to reach a terminal that is not the job's own: other ptys of the devpts the job sees, the
# host's virtual consoles and serial lines, the console. Prints BLOCKED for each, lists what the
# job's /dev/pts holds, and which descriptors the job has (the pty master must not be one).
import os

print("PTS", " ".join(sorted(os.listdir("/dev/pts"))), flush=True)
for path in ["/dev/pts/1", "/dev/pts/2", "/dev/pts/5", "/dev/tty0", "/dev/tty1", "/dev/tty7",
             "/dev/console", "/dev/ttyS0", "/dev/vcs", "/dev/hvc0"]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        print("ALLOWED open", path, os.ttyname(fd), flush=True)
    except OSError as e:
        print("BLOCKED open %s: %s" % (path, type(e).__name__), flush=True)
# The init holds the terminal's master: its descriptors are not the job's to open.
try:
    names = os.listdir("/proc/1/fd")
    print("ALLOWED list /proc/1/fd", names, flush=True)
except OSError as e:
    print("BLOCKED list /proc/1/fd: %s" % type(e).__name__, flush=True)
for n in range(3, 12):
    try:
        fd = os.open("/proc/1/fd/%d" % n, os.O_RDWR | os.O_NOCTTY)
        print("ALLOWED open /proc/1/fd/%d" % n, os.readlink("/proc/self/fd/%d" % fd), flush=True)
    except OSError as e:
        pass
fds = sorted(int(n) for n in os.listdir("/proc/self/fd"))
print("FDS", " ".join(os.readlink("/proc/self/fd/%d" % n) for n in fds if n <= 2), flush=True)
print("NFDS", len(fds), flush=True)
with open("/proc/self/mountinfo") as f:
    for line in f:
        if " devpts " in line:
            print("DEVPTS", line.split(" - ")[1].strip(), flush=True)
# A new pty from the job's own ptmx lands in the job's own instance, beside its terminal.
import pty
master, slave = pty.openpty()
print("NEWPTY", os.ttyname(slave), flush=True)
print("DONE", flush=True)
