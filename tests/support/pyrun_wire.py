"""pyrun/1 framing for the Python peers of the integration tests (docs/PROTOCOL.md): frame and
RUN encoders, and a reader of frames over any connected socket. The test scripts (wire_client.py,
hostile.py) speak the wire directly so that they can send what the real client never would; this
is the part they share. Only the Python standard library (the tests run /usr/bin/python3).
"""
import ssl
import struct

READY, QUEUED, STARTED, STDOUT, STDERR, EXIT, ERROR = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
RESULT, RESULT_DATA = 0x08, 0x09
RUN, STDIN, STDIN_END, SIGNAL, CANCEL = 0x10, 0x11, 0x12, 0x13, 0x14
FILE, FILE_DATA, GET = 0x15, 0x16, 0x17


def file_frame(name, size, mode=0o644):
    """FILE: name, mode, size (its bytes follow in FILE_DATA frames)."""
    return frame(FILE, s(name.encode()) + struct.pack(">IQ", mode, size))


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


def s(b):
    """A length-prefixed byte string (u32 big-endian length)."""
    return struct.pack(">I", len(b)) + b


def frame(t, payload=b""):
    return struct.pack(">BI", t, len(payload)) + payload


def run_payload(script, args=(), cpu=0, wall=0, mem=0, out=0):
    """RUN's payload for job.py; limits of 0 ask for the policy's."""
    p = s(b"job.py") + s(script.encode())
    p += struct.pack(">I", len(args)) + b"".join(s(a.encode()) for a in args)
    p += struct.pack(">IIQQ", cpu, wall, mem, out)
    p += struct.pack(">I", 0)  # no extra files
    return p


def run_frame(script, args=(), cpu=0, wall=0, mem=0, out=0):
    return frame(RUN, run_payload(script, args, cpu, wall, mem, out))


class FrameConn:
    """Frames over a connected socket (TLS or not): sock is set by the subclass or caller."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def recv(self):
        """Next frame as (type, payload), or None at a clean end of stream."""
        if not self._fill(5):
            expect(self.buf == b"", "stream ended inside a frame header")
            return None
        t, n = struct.unpack(">BI", self.buf[:5])
        expect(self._fill(5 + n), "stream ended inside a frame payload")
        payload = self.buf[5:5 + n]
        self.buf = self.buf[5 + n:]
        return t, payload

    def recv_type(self, want):
        f = self.recv()
        expect(f is not None, "connection closed, expected frame 0x%02x" % want)
        expect(f[0] == want, "expected frame 0x%02x, got 0x%02x %r" % (want, f[0], f[1][:200]))
        return f[1]

    def expect_closed(self):
        try:
            f = self.recv()
        except (ssl.SSLError, ConnectionError):
            return
        expect(f is None, "expected the server to close, got frame 0x%02x" % (f[0] if f else 0))
