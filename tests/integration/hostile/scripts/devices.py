# Attacks device nodes: opening host disks, memory and the kernel log, then making a block device
# node in the working directory. The job's /dev must hold only harmless nodes (DEV lists it), every
# open must print BLOCKED, and mknod must end the job with the verdict "forbidden system call".
import os
import stat

print("DEV", " ".join(sorted(os.listdir("/dev"))), flush=True)
for path in ["/dev/sda", "/dev/vda", "/dev/nvme0n1", "/dev/mem", "/dev/kmem", "/dev/port",
             "/dev/kmsg", "/dev/tty0", "/dev/loop0", "/dev/fuse"]:
    try:
        with open(path, "rb") as f:
            print("ALLOWED open", path, flush=True)
    except OSError as e:
        print("BLOCKED open %s: %s" % (path, type(e).__name__), flush=True)
print("ATTEMPT mknod", flush=True)
try:
    os.mknod(os.path.join(os.getcwd(), "sda"), 0o600 | stat.S_IFBLK, os.makedev(8, 0))
    print("ALLOWED mknod", flush=True)
except OSError as e:
    print("BLOCKED mknod: %s" % type(e).__name__, flush=True)
print("DONE", flush=True)
