# Attacks the server with ptrace: PTRACE_ATTACH to the server's host pid (argv[1]) and then to pid 1.
# ptrace is not in the default policy: the job must end with the verdict "forbidden system call"
# (or, were the call answered with an error, print BLOCKED). ALLOWED means the server was attached.
import ctypes
import sys

libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
for pid in (int(sys.argv[1]), 1):
    print("ATTEMPT ptrace", pid, flush=True)
    r = libc.ptrace(PTRACE_ATTACH, pid, None, None)
    if r == 0:
        print("ALLOWED ptrace", pid, flush=True)
    else:
        print("BLOCKED ptrace %d: errno %d" % (pid, ctypes.get_errno()), flush=True)
print("DONE", flush=True)
