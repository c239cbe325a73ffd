"""A pyrun/1 server written for the tests: it answers RUN with STARTED, then sends RESULT frames
that a real pyrund never would (hostile names, more bytes than announced), then EXIT. pyrun must
write nothing outside its -o directory and never through a symlink.

usage: hostile_server.py SCENARIO BUNDLE PORT_FILE [OUTSIDE_DIR]
"""
import os
import socket
import ssl
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support"))
import pyrun_wire as w  # noqa: E402

RESULT, RESULT_DATA = 0x08, 0x09
READY_PAYLOAD = struct.pack(">HI", 1, 1 << 20) + w.s(b"hostile 0")
STARTED_PAYLOAD = w.s(b"1") + struct.pack(">IIQQ", 10, 10, 1 << 29, 1 << 24)
EXIT_PAYLOAD = struct.pack(">BiB", 0, 0, 0) + struct.pack(">QQQQQ", 0, 0, 0, 0, 0) + b"\0" + w.s(b"")


def result(name, data, mode=0o644, size=None):
    size = len(data) if size is None else size
    out = w.frame(RESULT, w.s(name.encode()) + struct.pack(">IQ", mode, size))
    if data:
        out += w.frame(RESULT_DATA, data)
    return out


def scenario_frames(name, outside):
    if name == "dotdot":
        return result("../escape.txt", b"escaped\n")
    if name == "absolute":
        return result(outside + "/absolute.txt", b"escaped\n")
    if name == "inner-dotdot":
        return result("a/../../escape.txt", b"escaped\n")
    if name == "control":
        return result("evil\nname.txt", b"x")
    if name == "through-symlink":
        return result("link/escape.txt", b"escaped\n")
    if name == "leaf-symlink":
        return result("leaf", b"replaced\n")
    if name == "more-than-announced":
        return result("short.txt", b"0123456789", size=4)
    if name == "oversize":
        return result("huge.bin", b"", size=(64 << 30) + 1)
    if name == "unasked":
        return result("x.txt", b"x")
    raise SystemExit("unknown scenario " + name)


def main():
    scenario, bundle, port_file = sys.argv[1], sys.argv[2], sys.argv[3]
    outside = sys.argv[4] if len(sys.argv) > 4 else "/nonexistent"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(bundle)
    ctx.load_verify_locations(bundle)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["pyrun/1"])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    raw, _ = listener.accept()
    conn = w.FrameConn(ctx.wrap_socket(raw, server_side=True))
    conn.send(w.frame(w.READY, READY_PAYLOAD))
    while True:
        f = conn.recv()
        if f is None:
            return
        if f[0] == w.RUN:
            break
    conn.send(w.frame(w.STARTED, STARTED_PAYLOAD))
    try:
        conn.send(scenario_frames(scenario, outside))
        conn.send(w.frame(w.EXIT, EXIT_PAYLOAD))
        conn.expect_closed()
    except (ssl.SSLError, OSError):
        pass  # pyrun hung up on us, as it should


if __name__ == "__main__":
    main()
