# Ordinary workload: multiprocessing.Pool (needs /dev/shm semaphores and fork).
import multiprocessing


def square(x):
    return x * x


if __name__ == "__main__":
    with multiprocessing.Pool(3) as pool:
        print(pool.map(square, range(20)))
        print(sum(pool.imap_unordered(square, range(100))))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        print(pool.map(square, [7, 8, 9]))
