# Ordinary workload: a thread pool and a lock; the output is deterministic (sorted results).
import threading
from concurrent.futures import ThreadPoolExecutor

lock = threading.Lock()
total = 0


def work(n):
    global total
    s = sum(i * i for i in range(n * 1000))
    with lock:
        total += n
    return n, s


with ThreadPoolExecutor(max_workers=4) as pool:
    results = sorted(pool.map(work, range(1, 17)))
for n, s in results:
    print(n, s)
print("total", total, "threads done", threading.active_count())
