"""Runs one script on pyrund with a RUN that asks for lower limits than the policy's, and prints
its stdout (tests/integration/pool). Arguments: PORT BUNDLE CA CPU_SECONDS SCRIPT_TEXT."""
import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support"))
from pyrun_wire import READY, STARTED, STDOUT, STDERR, EXIT, FrameConn, run_frame  # noqa: E402

port, bundle, ca, cpu, text = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(bundle)
ctx.load_verify_locations(ca)
ctx.set_alpn_protocols(["pyrun/1"])
sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port)), timeout=60),
                       server_hostname="127.0.0.1")
conn = FrameConn(sock)
conn.recv_type(READY)
conn.send(run_frame(text, cpu=cpu))
while True:
    f = conn.recv()
    if f is None or f[0] == EXIT:
        break
    if f[0] == STDOUT:
        sys.stdout.write(f[1].decode())
    elif f[0] == STDERR:
        sys.stderr.write(f[1].decode())
