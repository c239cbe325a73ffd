# Writes to its terminal without blocking while the client does not read: with backpressure from
# the client through the server and the init's relay to the terminal, the terminal fills and the
# writes stall (EAGAIN for a while) long before the output cap. Prints how much got out by then.
import fcntl, os, time

fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_NONBLOCK)
chunk = b"y" * 4096
written = 0
stalled_since = None
while True:
    try:
        written += os.write(1, chunk)
        stalled_since = None
    except BlockingIOError:
        now = time.monotonic()
        stalled_since = stalled_since or now
        if now - stalled_since > 2:
            break
        time.sleep(0.01)
fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) & ~os.O_NONBLOCK)
os.write(1, b"\nSTALLED after %d\n" % written)
