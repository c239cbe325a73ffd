"""A pyrun/1 server that answers one RUN with STARTED and EXIT at once and then neither sends its
close_notify nor closes, as a server whose receive queue is full of stdin it never read may not.
Prints how long after EXIT the client closed its TCP connection ("closed-after-ms N").

Usage: silent_after_exit.py SERVER_BUNDLE CA_CERT PORT_FILE
"""
import os
import select
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support"))
from pyrun_wire import EXIT, READY, RUN, STARTED, FrameConn, expect, frame, s  # noqa: E402

PATIENCE = 60


def main():
    bundle, ca, port_file = sys.argv[1:4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(bundle)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["pyrun/1"])
    listener = socket.create_server(("127.0.0.1", 0))
    with open(port_file + ".tmp", "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    listener.settimeout(PATIENCE)
    raw, _ = listener.accept()
    raw.settimeout(PATIENCE)
    tls = ctx.wrap_socket(raw, server_side=True)
    conn = FrameConn(tls)
    conn.send(frame(READY, struct.pack(">HI", 1, 1048576) + s(b"silent test server")))
    t, _ = conn.recv()
    expect(t == RUN, "expected RUN, got 0x%02x" % t)
    conn.send(frame(STARTED, s(b"1") + struct.pack(">IIQQ", 10, 60, 1 << 28, 1 << 20)))
    exit_payload = struct.pack(">BiBQQQQQB", 0, 0, 0, 0, 0, 0, 0, 0, 0) + s(b"")
    conn.send(frame(EXIT, exit_payload))
    sent = time.monotonic()
    # The client's close_notify may come (it is read and not answered), then its end of stream.
    fd = tls.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], PATIENCE)
        expect(ready, "the client did not close within %d s" % PATIENCE)
        try:
            data = tls.recv(4096)
        except (ssl.SSLError, OSError):
            break
        if not data:
            # close_notify: from here on only the TCP end of stream is awaited, on the raw socket.
            ready, _, _ = select.select([fd], [], [], PATIENCE)
            expect(ready, "the client did not close within %d s" % PATIENCE)
            break
    print("closed-after-ms %d" % int((time.monotonic() - sent) * 1000), flush=True)
    time.sleep(PATIENCE)  # still no close_notify, no close: the client must not need them


if __name__ == "__main__":
    main()
