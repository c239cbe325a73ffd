# Ordinary workload: asyncio tasks, queues and a local stream pair over a socketpair.
import asyncio
import socket


async def producer(q):
    for i in range(10):
        await q.put(i)
    await q.put(None)


async def consumer(q):
    total = 0
    while (item := await q.get()) is not None:
        total += item
    return total


async def echo_pair():
    a, b = socket.socketpair()
    r1, w1 = await asyncio.open_connection(sock=a)
    r2, w2 = await asyncio.open_connection(sock=b)
    w1.write(b"ping\n")
    await w1.drain()
    line = await r2.readline()
    w1.close()
    w2.close()
    return line


async def main():
    q = asyncio.Queue()
    _, total = await asyncio.gather(producer(q), consumer(q))
    print("queue total", total)
    print("gathered", await asyncio.gather(*(asyncio.sleep(0.01, result=i) for i in range(5))))
    print("stream", await echo_pair())


asyncio.run(main())
