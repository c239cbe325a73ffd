#!/usr/bin/python3
"""Hostile peers for pyrund's integration tests: what a scanner, a broken client or an attacker sends.

usage: hostile.py SCENARIO --port PORT --ca CA_CERT [--cert BUNDLE] [--good BUNDLE] [--server-pid PID]

Every scenario that authenticates also runs a "bystander" session with --good at the same time and
checks its output byte for byte, so that abuse of one session is proven not to touch another.
Prints "OK" and exits 0 when the scenario saw what it expected; otherwise prints why and exits 1.
Only the Python standard library is used (the tests run /usr/bin/python3).
"""
import argparse
import os
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support"))
from pyrun_wire import (READY, QUEUED, STARTED, STDOUT, STDERR, EXIT, ERROR, RUN, STDIN,  # noqa: E402
                        STDIN_END, SIGNAL, CANCEL, Failure, FrameConn, expect, frame, run_frame,
                        run_payload, s)

ERR_BAD_FRAME, ERR_UNEXPECTED, ERR_TIMEOUT = 1, 2, 7
MAX_PAYLOAD = 1 << 20

# Upper bounds for things that must happen; they only stop a broken server from hanging the test
# and are never the thing measured.
PATIENCE = 60


def tls_context(cert, alpn=True, maximum=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if maximum is None else ssl.TLSVersion.TLSv1_2
    if maximum is not None:
        ctx.maximum_version = maximum
    if cert:
        ctx.load_cert_chain(cert)
    ctx.load_verify_locations(ARGS.ca)
    if alpn:
        ctx.set_alpn_protocols(["pyrun/1"])
    return ctx


def tcp():
    return socket.create_connection(("127.0.0.1", ARGS.port), timeout=PATIENCE)


class Conn(FrameConn):
    """A pyrun/1 session over TLS 1.3 with ALPN, as a correct client opens it."""

    def __init__(self, cert):
        super().__init__(tls_context(cert).wrap_socket(tcp(), server_hostname="127.0.0.1"))

    def expect_error(self, code, words=None):
        p = self.recv_type(ERROR)
        got, n = struct.unpack(">HI", p[:6])
        msg = p[6:6 + n].decode()
        expect(got == code, "expected ERROR code %d, got %d %r" % (code, got, msg))
        if words is not None:
            expect(words in msg, "ERROR message %r does not say %r" % (msg, words))
        self.expect_closed()
        return msg


def collect(c):
    """Reads STDOUT/STDERR until EXIT; returns (stdout, stderr, exit code or None if signaled)."""
    out, err = b"", b""
    while True:
        f = c.recv()
        expect(f is not None, "closed before EXIT")
        t, p = f
        if t == STDOUT:
            out += p
        elif t == STDERR:
            err += p
        elif t == EXIT:
            kind, code = struct.unpack(">Bi", p[:5])
            return out, err, (code if kind == 0 else None)
        elif t not in (QUEUED, STARTED):
            raise Failure("unexpected frame 0x%02x %r while running" % (t, p[:200]))


# The bystander's program: waits for one line of stdin, then writes a known, non-repeating
# pattern to stdout and stderr interleaved; its output must arrive byte for byte.
BYSTANDER = """import sys
key = sys.stdin.readline().strip()
for i in range(2000):
    sys.stdout.write('%s %06d %s\\n' % (key, i, 'o' * (i % 97)))
    if i % 100 == 0:
        sys.stderr.write('%s err %d\\n' % (key, i))
sys.exit(7)
"""


def bystander_expected(key):
    out = "".join("%s %06d %s\n" % (key, i, "o" * (i % 97)) for i in range(2000))
    err = "".join("%s err %d\n" % (key, i) for i in range(0, 2000, 100))
    return out.encode(), err.encode()


class Bystander:
    """A well-behaved session that is started before the abuse and finished after it."""

    def __init__(self):
        self.conn = Conn(ARGS.good)
        self.conn.recv_type(READY)
        self.conn.send(run_frame(BYSTANDER))
        self.conn.recv_type(STARTED)

    def finish(self):
        key = "bystander-%d" % os.getpid()
        self.conn.send(frame(STDIN, (key + "\n").encode()) + frame(STDIN_END))
        out, err, code = collect(self.conn)
        want_out, want_err = bystander_expected(key)
        expect(out == want_out, "bystander stdout differs (%d bytes, want %d)" % (len(out), len(want_out)))
        expect(err == want_err, "bystander stderr differs: %r" % err[:200])
        expect(code == 7, "bystander exit code %r" % code)


def with_bystander(abuse):
    b = Bystander()
    abuse()
    b.finish()


def authenticated():
    c = Conn(ARGS.cert)
    c.recv_type(READY)
    return c


# ---- before authentication: each must be refused; the test then checks the log and a good job ----

def scenario_garbage():
    sock = tcp()
    # Bytes that are not a TLS record: a fixed pattern, so that the refusal reason is repeatable.
    sock.sendall(bytes(range(256)) * 4)
    expect_tcp_closed_without_data(sock)


def scenario_http():
    sock = tcp()
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: hostile\r\n\r\n")
    expect_tcp_closed_without_data(sock)


def expect_tcp_closed_without_data(sock):
    got = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        got += chunk
    # A TLS alert record (type 21) is acceptable; application data or an HTTP answer is not.
    expect(got == b"" or got[0] == 21, "server answered non-TLS bytes with %r" % got[:100])


def scenario_refused_tls():
    """A TLS 1.3 client (ALPN pyrun/1) with --cert (or none): must never see READY."""
    try:
        sock = tls_context(ARGS.cert).wrap_socket(tcp(), server_hostname="127.0.0.1")
        # TLS 1.3: the client learns of a refused certificate on its first read.
        data = sock.recv(65536)
    except (ssl.SSLError, ConnectionError) as e:
        print("refused:", e, file=sys.stderr)
        return
    expect(data == b"", "server sent %r to a refused client" % data[:50])


# ---- after authentication ----

def scenario_oversize_frame():
    def abuse():
        c = authenticated()
        # Only the header: the server must refuse by the announced length, before reading or
        # allocating the payload.
        c.send(struct.pack(">BI", RUN, MAX_PAYLOAD + 1))
        c.expect_error(ERR_BAD_FRAME)
        c = authenticated()
        c.send(struct.pack(">BI", STDIN, 0xFFFFFFFF))
        c.expect_error(ERR_BAD_FRAME)
    with_bystander(abuse)


def scenario_truncated_frame():
    def abuse():
        c = authenticated()
        c.send(frame(RUN, run_payload("print(1)\n"))[:20])
        # close_notify, then the TCP connection: the session ends mid-frame. There is nobody left
        # to send an ERROR to; the server must drop the session alone.
        try:
            c.sock.unwrap()
        except (ssl.SSLError, ConnectionError):
            pass  # the server may close without answering our close_notify
        c.sock.close()
        # The same with a plain TCP close and no close_notify.
        c = authenticated()
        c.send(frame(RUN, run_payload("print(1)\n"))[:20])
        c.sock.close()
    with_bystander(abuse)


def scenario_unknown_type():
    def abuse():
        for t in (0x00, 0x0b, 0x1a, 0x7f, 0xff):
            c = authenticated()
            c.send(frame(t, b"abc"))
            c.expect_error(ERR_BAD_FRAME)
    with_bystander(abuse)


def scenario_out_of_order():
    def abuse():
        for first in (frame(STDIN, b"x"), frame(STDIN_END), frame(SIGNAL, bytes([2])), frame(CANCEL)):
            c = authenticated()
            c.send(first)
            c.expect_error(ERR_UNEXPECTED)
        c = authenticated()
        c.send(run_frame("import sys\nsys.stdin.read()\n"))
        c.recv_type(STARTED)
        c.send(run_frame("print('again')\n"))
        c.expect_error(ERR_UNEXPECTED)
        # Client-bound frame types sent by a client are out of place as well.
        c = authenticated()
        c.send(frame(EXIT, b"\0" * 51))
        f = c.recv()
        expect(f is not None and f[0] == ERROR, "EXIT from a client was not refused: %r" % (f,))
    with_bystander(abuse)


def scenario_endless_upload():
    """RUN announces 1 MiB and then trickles: the request deadline must end it."""
    def abuse():
        c = authenticated()
        c.send(struct.pack(">BI", RUN, MAX_PAYLOAD))
        c.sock.settimeout(0.2)
        start = time.monotonic()
        sent = 0
        while time.monotonic() - start < PATIENCE:
            try:
                c.sock.sendall(b"A" * 16)
                sent += 16
            except (ssl.SSLError, ConnectionError):
                break  # the server is gone: the ERROR frame is read below
            try:
                chunk = c.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except (ssl.SSLError, ConnectionError):
                break
            c.buf += chunk
            break
        expect(sent < MAX_PAYLOAD, "the whole payload was accepted without a deadline")
        c.sock.settimeout(PATIENCE)
        c.expect_error(ERR_TIMEOUT, "no RUN request")
    with_bystander(abuse)


def scenario_slow_tcp():
    """TCP connect, then nothing: closed at the handshake deadline."""
    sock = tcp()
    expect_tcp_closed_without_data(sock)


def scenario_slow_client_hello():
    """A real ClientHello, then nothing: closed at the handshake deadline."""
    sock = tcp()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_context(ARGS.cert).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    expect(hello[:1] == b"\x16", "not a handshake record")
    sock.sendall(hello)
    # The server answers with its flight (ServerHello ... Finished), then must give up on us.
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break


def scenario_slow_after_handshake():
    """Handshake done, READY received, then nothing: ERROR timeout and close."""
    def abuse():
        c = authenticated()
        c.expect_error(ERR_TIMEOUT, "no RUN request")
    with_bystander(abuse)


# A job that writes far more than any buffer between it and the client can hold.
FLOOD = """import sys
chunk = b'x' * 65536
while True:
    sys.stdout.buffer.write(chunk)
"""


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise Failure("no %s for pid %d" % (key, pid))


def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def blocked_writers(root):
    """Descendants of root asleep in a pipe write: the job that cannot get rid of its output."""
    found = []
    for pid in descendants(root):
        try:
            with open("/proc/%d/wchan" % pid) as f:
                wchan = f.read()
            with open("/proc/%d/syscall" % pid) as f:
                syscall = f.read().split()
        except OSError:
            continue
        # Kernels name the wait differently (pipe_write, anon_pipe_write, pipe_wait_writable);
        # /proc/PID/syscall says "write(1, ...)" when wchan is hidden.
        if "pipe" in wchan or syscall[:2] == ["1", "0x1"]:
            found.append(pid)
    return found


def jobs_of(root):
    """Descendants of root that run a job script (every RUN here names it job.py)."""
    found = []
    for pid in descendants(root):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if b"job.py" in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def wait_until_no_job(root, why):
    deadline = time.monotonic() + PATIENCE
    while jobs_of(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(not jobs_of(root), why)


def wait_until_stuck(root):
    """Waits until a job of root stays blocked on its output pipe (ten samples in a row, so that a
    pipe that is full for a moment before the front reads it again does not count)."""
    in_a_row = 0
    deadline = time.monotonic() + PATIENCE
    while in_a_row < 10 and time.monotonic() < deadline:
        in_a_row = in_a_row + 1 if blocked_writers(root) else 0
        time.sleep(0.05)
    expect(in_a_row >= 10, "the flooding job never blocked on its output pipe")


def scenario_never_reads_output():
    """RUN a job that floods stdout and never read: the job blocks, the front's memory stays
    bounded, and other clients are served meanwhile."""
    server = ARGS.server_pid
    before = proc_status(server, "VmRSS")
    raw = tcp()
    # A small receive window so that the flood backs up into the server quickly.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c = FrameConn(tls_context(ARGS.cert).wrap_socket(raw, server_hostname="127.0.0.1"))
    c.recv_type(READY)
    c.send(run_frame(FLOOD))
    c.recv_type(STARTED)
    # Synchronise on the kernel's view, not on time: the job sleeps in a pipe write.
    wait_until_stuck(server)
    # Others are served while it is stuck.
    b = Bystander()
    b.finish()
    b = Bystander()
    b.finish()
    expect(blocked_writers(server), "the flooding job is no longer blocked")
    grown = proc_status(server, "VmRSS") - before
    # The front holds at most its bounded writer queue (8 x 64 KiB) and TLS buffers per session.
    expect(grown < 16 << 20, "the front grew by %d bytes while a client did not read" % grown)
    print("front grew by %d KiB" % (grown // 1024), file=sys.stderr)
    c.sock.close()
    # The abandoned job is killed.
    wait_until_no_job(server, "the job of a vanished client still runs")


def scenario_tiny_stdin_frames():
    """RUN a job that never reads stdin, then send STDIN frames of one byte each: what the front
    buffers for the job is bounded in memory, not only in payload bytes (each frame it holds costs
    more than its byte), and other clients are served meanwhile."""
    server = ARGS.server_pid
    c = authenticated()
    c.send(run_frame("import time\ntime.sleep(60)\n"))
    c.recv_type(STARTED)
    # Measured from here: a job and another client's session have been through the front once,
    # so that what a first job costs it (and, under ASan, its allocator's first regions) is not
    # counted.
    Bystander().finish()
    before = proc_status(server, "VmRSS")
    # 400 000 frames of one byte (2.4 MB on the wire): far more frames than 256 KiB of stdin
    # would allow if only payload bytes counted. The front stops reading once its buffer is full;
    # what does not fit into the sockets' buffers then is not sent.
    blob = frame(STDIN, b"x") * 400000
    c.sock.settimeout(2)
    sent = 0
    try:
        while sent < len(blob):
            sent += c.sock.send(blob[sent:sent + 65536])
    except (socket.timeout, ssl.SSLWantWriteError):
        pass
    time.sleep(1)
    grown = proc_status(server, "VmRSS") - before
    print("front grew by %d KiB (%d bytes of frames sent)" % (grown // 1024, sent), file=sys.stderr)
    # Counting payload bytes only, the front held 256 Ki frames here: 16 MiB (release build). Now
    # about 150 KiB; under ASan (debug build, its allocator and shadow) about 4 MiB.
    expect(grown < 8 << 20, "the front grew by %d bytes for one-byte STDIN frames" % grown)
    Bystander().finish()
    c.sock.close()
    wait_until_no_job(server, "the job of a vanished client still runs")


def tcp_state(local_port, remote_port):
    """State (hex, as /proc/net/tcp gives it) of the IPv4 socket local_port -> remote_port, or None
    when the kernel has none."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
                return fields[3]
    return None


def scenario_stops_reading():
    """RUN a job that floods stdout, read nothing: once the client has taken no byte for the idle
    timeout, the server closes the connection and kills the job."""
    server = ARGS.server_pid
    raw = tcp()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c = FrameConn(tls_context(ARGS.cert).wrap_socket(raw, server_hostname="127.0.0.1"))
    c.recv_type(READY)
    c.send(run_frame(FLOOD))
    c.recv_type(STARTED)
    wait_until_stuck(server)
    # Without a write-stall limit the job would stay blocked for as long as we keep the
    # connection open (until the wall-clock limit); we keep it open and read nothing.
    wait_until_no_job(server, "the job of a client that reads nothing was not killed")
    # The server closed its end of the connection (ESTABLISHED is state 01). Reading what it had
    # sent to see the end would take long: the kernel trickles it into our tiny window.
    mine = c.sock.getsockname()[1]
    deadline = time.monotonic() + PATIENCE
    while tcp_state(ARGS.port, mine) == "01" and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(tcp_state(ARGS.port, mine) != "01", "the server kept the connection open")
    c.sock.close()


# ---- the caps before authentication (each cap is set to 2 by the test's config) ----

def tcp_from(source):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(PATIENCE)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", ARGS.port))
    return sock


def refused(source="127.0.0.1"):
    """True when the server closes a new connection from source before any TLS is spoken."""
    try:
        # On loopback the reset can come back before connect() itself returns.
        sock = tls_context(ARGS.cert).wrap_socket(tcp_from(source), server_hostname="127.0.0.1",
                                                  do_handshake_on_connect=False)
    except ConnectionError:
        return True
    try:
        sock.do_handshake()
        f = sock.recv(65536)  # TLS 1.3: a refused certificate shows on the first read
    except (ssl.SSLError, ConnectionError):
        return True
    finally:
        sock.close()
    return f == b""


def served(source="127.0.0.1"):
    """A good job from source, start to end; False if the connection is refused."""
    try:
        c = FrameConn(tls_context(ARGS.cert).wrap_socket(tcp_from(source),
                                                         server_hostname="127.0.0.1"))
        c.sock.settimeout(PATIENCE)
        f = c.recv()
    except (ssl.SSLError, ConnectionError):
        return False
    if f is None or f[0] != READY:
        return False
    c.send(run_frame("print('served')\n"))
    out, err, code = collect(c)
    expect(out == b"served\n" and code == 0, "job: %r %r %r" % (out, err, code))
    c.sock.close()
    return True


def eventually_served(source="127.0.0.1"):
    # The server frees a place when it has seen the close: retry until then.
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if served(source):
            return
        time.sleep(0.1)
    raise Failure("not served again after the cap was no longer reached")


def scenario_connection_cap():
    held = [authenticated(), authenticated()]
    expect(refused(), "a third connection was not refused over max_connections 2")
    expect(refused("127.0.0.2"), "a connection from elsewhere was not refused either")
    held[0].sock.close()
    eventually_served()
    for c in held[1:]:
        c.sock.close()


def scenario_handshake_cap():
    # TCP connections that never start TLS are handshakes in progress.
    held = [tcp_from("127.0.0.1"), tcp_from("127.0.0.2")]
    expect(refused("127.0.0.3"), "a third handshake was not refused over max_handshakes 2")
    for sock in held:
        sock.close()
    eventually_served("127.0.0.3")


def scenario_source_cap():
    held = [tcp_from("127.0.0.1"), tcp_from("127.0.0.1")]
    expect(refused("127.0.0.1"), "a third handshake from one address was not refused")
    expect(served("127.0.0.2"), "another address was refused by the per-source cap")
    for sock in held:
        sock.close()
    eventually_served("127.0.0.1")


def scenario_good():
    b = Bystander()
    b.finish()


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--good")
    parser.add_argument("--server-pid", type=int)
    ARGS = parser.parse_args()
    try:
        globals()["scenario_" + ARGS.scenario]()
    except Failure as e:
        print("FAILED:", e)
        return 1
    print("OK")
    return 0


ARGS = None

if __name__ == "__main__":
    sys.exit(main())
