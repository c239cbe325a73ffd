# Attacks the disk: fills /tmp (a private tmpfs of the policy's size) with many files, each below
# the file size limit, and writes one file in the working directory past the file size limit. Both
# must stop with an error (BLOCKED with the amount written: ENOSPC for /tmp, EFBIG for the file);
# neither may reach the host's disk beyond the limits.
import errno
import os

block = b"x" * (1 << 20)


def fill(paths, file_mib):
    written = 0
    try:
        for path in paths:
            with open(path, "wb") as f:
                for _ in range(file_mib):
                    f.write(block)
                    f.flush()
                    written += 1
        print("ALLOWED fill %s %d MiB" % (paths[0], written), flush=True)
    except OSError as e:
        print("BLOCKED fill %s after %d MiB: %s" % (paths[0], written, errno.errorcode.get(e.errno, e.errno)),
              flush=True)
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass


fill(["/tmp/fill%d" % i for i in range(64)], 16)
fill([os.path.join(os.getcwd(), "fill")], 1024)
print("DONE", flush=True)
