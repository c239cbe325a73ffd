# One of two concurrent jobs: writes a marker (argv[1]) into its working directory, /tmp and
# /dev/shm, says WROTE, then waits for a line on stdin and checks its files are still intact.
import os

marker = "SECRET-" + os.sys.argv[1][::-1]  # not in any command line
paths = [os.path.join(os.getcwd(), "mine.txt"), "/tmp/mine.txt", "/dev/shm/mine.txt"]
for p in paths:
    with open(p, "w") as f:
        f.write(marker)
print("WROTE", os.getpid(), flush=True)
input()
for p in paths:
    with open(p) as f:
        print("INTACT" if f.read() == marker else "CHANGED", p, flush=True)
print("DONE", flush=True)
