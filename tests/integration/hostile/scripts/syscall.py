# Attacks the kernel through a system call the default policy does not allow (argv[1] names it;
# x86_64 numbers; arguments that would succeed for root). The call must either end the job with the
# verdict "forbidden system call" or fail (BLOCKED with its errno); ALLOWED means it went through.
import ctypes
import sys

NUMBERS = {
    "io_uring_setup": 425, "bpf": 321, "perf_event_open": 298, "keyctl": 250,
    "userfaultfd": 323, "unshare": 272, "mount": 165, "setns": 308, "sethostname": 170,
}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
name = sys.argv[1]
params = ctypes.create_string_buffer(128)
attr = ctypes.create_string_buffer(128)
ARGS = {
    "io_uring_setup": (8, params),
    "bpf": (0, attr, 64),                                  # BPF_MAP_CREATE
    "perf_event_open": (attr, 0, -1, -1, 0),
    "keyctl": (0, -3, 0),                                  # KEYCTL_GET_KEYRING_ID of the session
    "userfaultfd": (0,),
    "unshare": (0x10000000,),                              # CLONE_NEWUSER
    "mount": (b"none", b"/tmp", b"tmpfs", 0, None),
    "setns": (0, 0),
    "sethostname": (b"pwned", 5),
}
print("ATTEMPT", name, flush=True)
r = libc.syscall(NUMBERS[name], *ARGS[name])
if r >= 0:
    print("ALLOWED", name, r, flush=True)
else:
    print("BLOCKED %s: errno %d" % (name, ctypes.get_errno()), flush=True)
print("DONE", flush=True)
