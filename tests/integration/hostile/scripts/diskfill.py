# Attacks the disk: fills /tmp and the working directory (private tmpfs mounts of the policy's tmp
# and workdir sizes) with many files, each below the file size limit; writes one file past the file
# size limit; and creates empty files in the working directory without end (they take no size, only
# inodes). Each must stop with an error (BLOCKED with the amount: ENOSPC for a full mount and for
# too many files, EFBIG for the one file) and the job must go on to its end; nothing may reach the
# host's disk.
import errno
import os

block = b"x" * (1 << 20)


def name(e):
    return errno.errorcode.get(e.errno, e.errno)


def fill(what, paths, file_mib):
    written = 0
    try:
        for path in paths:
            with open(path, "wb") as f:
                for _ in range(file_mib):
                    f.write(block)
                    f.flush()
                    written += 1
        print("ALLOWED fill %s %d MiB" % (what, written), flush=True)
    except OSError as e:
        print("BLOCKED fill %s after %d MiB: %s" % (what, written, name(e)), flush=True)
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


def many_files(limit):
    n = 0
    try:
        while n < limit:
            open("empty%d" % n, "w").close()
            n += 1
        print("ALLOWED files %d" % n, flush=True)
    except OSError as e:
        print("BLOCKED files after %d: %s" % (n, name(e)), flush=True)
    for i in range(n):
        os.unlink("empty%d" % i)


fill("tmp", ["/tmp/fill%d" % i for i in range(256)], 2)
fill("workdir", [os.path.join(os.getcwd(), "fill%d" % i) for i in range(256)], 2)
fill("one file", [os.path.join(os.getcwd(), "big")], 1024)
many_files(1000000)
print("DONE", flush=True)
