# Attacks the machine's memory: allocates and touches 16 MiB blocks until allocation fails. The
# memory limit must stop it (BLOCKED memory after N MiB with MemoryError, or the verdict "memory
# limit" when the cgroup's OOM killer ends the job first).
chunks = []
mib = 0
try:
    while mib < 65536:
        chunks.append(bytearray(16 << 20))  # zero-filled: every page is touched
        mib += 16
    print("ALLOWED memory", mib, flush=True)
except MemoryError:
    print("BLOCKED memory after %d MiB: MemoryError" % mib, flush=True)
print("DONE", flush=True)
