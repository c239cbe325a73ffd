#!/usr/bin/env python3
"""A minimal pyrun/1 client for pyrund's integration tests: speaks the wire protocol directly
(docs/PROTOCOL.md) so that tests can send what the real client never would.

usage: wire_client.py PORT CLIENT_BUNDLE CA_CERT SCENARIO [ARGS...]
Prints "OK" and exits 0 when the scenario saw what it expected; otherwise prints why, exits 1.
"""
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "support"))
from pyrun_wire import (READY, QUEUED, STARTED, STDOUT, STDERR, EXIT, ERROR, RUN, STDIN,  # noqa: E402
                        STDIN_END, SIGNAL, CANCEL, FILE_DATA, GET, Failure, FrameConn, expect,
                        file_frame, frame, run_frame, run_payload, s)

ERR_BAD_FRAME, ERR_UNEXPECTED, ERR_BAD_REQUEST, ERR_LIMIT, ERR_BUSY = 1, 2, 3, 4, 5
ERR_UNAUTHORIZED, ERR_TIMEOUT, ERR_SHUTTING_DOWN = 6, 7, 9
VERDICT_OK, VERDICT_WALL, VERDICT_OUTPUT, VERDICT_CANCELLED = 0, 2, 4, 5
VERDICT_SERVER_SHUTDOWN = 9
ARGS = sys.argv[5:]

PORT, BUNDLE, CA = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Conn(FrameConn):
    def __init__(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(BUNDLE)
        ctx.load_verify_locations(CA)
        ctx.set_alpn_protocols(["pyrun/1"])
        raw = socket.create_connection(("127.0.0.1", PORT), timeout=60)
        super().__init__(ctx.wrap_socket(raw, server_hostname="127.0.0.1"))


def error_of(payload):
    code, n = struct.unpack(">HI", payload[:6])
    return code, payload[6:6 + n].decode()


def exit_of(payload):
    kind, code, verdict, cpu, wall, mem, out, err, trunc = struct.unpack(">BiBQQQQQB", payload[:47])
    n = struct.unpack(">I", payload[47:51])[0]
    return dict(kind=kind, code=code, verdict=verdict, stdout=out, stderr=err, truncated=trunc,
                detail=payload[51:51 + n].decode())


def collect(c):
    """Reads STDOUT/STDERR until EXIT; returns (stdout, stderr, exit dict)."""
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
            return out, err, exit_of(p)
        else:
            raise Failure("unexpected frame 0x%02x %r while running" % (t, p[:200]))


def stdout_line(c):
    """Collects STDOUT frames up to a newline: python3 -u writes a print() in several pieces."""
    out = b""
    while not out.endswith(b"\n"):
        out += c.recv_type(STDOUT)
    return out


def started(c):
    c.recv_type(READY)
    return c


def scenario_streams_and_exits():
    c = started(Conn())
    c.send(run_frame("import sys\nprint('out', sys.argv[1:])\nsys.stdout.flush()\n"
                     "line = sys.stdin.readline()\nprint('got', line.strip(), file=sys.stderr)\n"
                     "sys.exit(3)\n", ["a", "b"]))
    c.recv_type(STARTED)
    payload = stdout_line(c)
    expect(payload == b"out ['a', 'b']\n", "first output %r" % payload)
    # Sent only after the first line arrived: proves output streams before the program ends.
    c.send(frame(STDIN, b"hello\n") + frame(STDIN_END))
    out, err, ex = collect(c)
    expect(out == b"", "more stdout %r" % out)
    expect(err == b"got hello\n", "stderr %r" % err)
    expect(ex["kind"] == 0 and ex["code"] == 3 and ex["verdict"] == VERDICT_OK, "exit %r" % ex)
    expect(ex["stdout"] == 15 and ex["stderr"] == 10, "byte counts %r" % ex)
    c.expect_closed()


TIMINGS = 0x0a


def scenario_timings_after_exit():
    """RUN with flags bit 0: EXIT, then one TIMINGS frame, then the end of the session."""
    c = started(Conn())
    c.send(frame(RUN, run_payload("print('hi')\n") + struct.pack(">I", 1)))
    c.recv_type(STARTED)
    out, err, ex = collect(c)
    expect(out == b"hi\n" and ex["code"] == 0, "job %r %r" % (out, ex))
    payload = c.recv_type(TIMINGS)
    n = struct.unpack(">I", payload[:4])[0]
    pos, stages = 4, []
    for _ in range(n):
        length = struct.unpack(">I", payload[pos:pos + 4])[0]
        name = payload[pos + 4:pos + 4 + length].decode()
        micros = struct.unpack(">Q", payload[pos + 4 + length:pos + 12 + length])[0]
        stages.append((name, micros))
        pos += 12 + length
    expect(pos == len(payload), "TIMINGS has trailing bytes")
    at = dict(stages)
    expect(stages[0] == ("accept", 0), "first stage %r" % (stages[0],))
    expect(stages[-1][0] == "exit-sent", "last stage %r" % (stages[-1],))
    # A job of the warm pool was handed over instead of passing clone .. exec (docs/PROTOCOL.md).
    if "handoff" in at:
        chain = ["accept", "handshake", "run", "spawn", "workdir", "handoff", "exit", "exit-sent"]
        for parked in ("cgroup", "clone", "root", "confined", "exec"):
            expect(parked not in at, "%s of a parked job in %r" % (parked, stages))
    else:
        chain = ["accept", "handshake", "run", "spawn", "workdir", "clone", "root", "confined",
                 "exec", "exit", "exit-sent"]
    for a, b in zip(chain, chain[1:]):
        expect(a in at and b in at and at[a] <= at[b], "%s then %s in %r" % (a, b, stages))
    c.expect_closed()


def scenario_unknown_run_flag():
    c = started(Conn())
    c.send(frame(RUN, run_payload("print('hi')\n") + struct.pack(">I", 2)))
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_BAD_FRAME and "flags" in msg, "code %d %s" % (code, msg))
    c.expect_closed()


def scenario_unexpected_frame():
    c = started(Conn())
    c.send(frame(STDIN, b"x"))
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_UNEXPECTED, "code %d %s" % (code, msg))
    expect("STDIN" in msg, "message %r" % msg)
    c.expect_closed()


def scenario_second_run_is_unexpected():
    c = started(Conn())
    c.send(run_frame("import sys\nsys.stdin.read()\n"))
    c.recv_type(STARTED)
    c.send(run_frame("print(1)\n"))
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_UNEXPECTED, "code %d %s" % (code, msg))
    c.expect_closed()


def scenario_oversize_header():
    c = started(Conn())
    c.send(struct.pack(">BI", RUN, (1 << 20) + 1))
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_BAD_FRAME, "code %d %s" % (code, msg))
    c.expect_closed()


def scenario_unknown_type():
    c = started(Conn())
    c.send(frame(0x7f, b""))
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_BAD_FRAME, "code %d %s" % (code, msg))
    c.expect_closed()


def scenario_bad_request():
    c = started(Conn())
    c.send(frame(RUN, s(b"../x.py") + s(b"print(1)") + struct.pack(">IIIQQI", 0, 0, 0, 0, 0, 0)))
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_BAD_REQUEST, "code %d %s" % (code, msg))
    c.expect_closed()


def scenario_limit_too_high():
    c = started(Conn())
    c.send(run_frame("print(1)\n", wall=100000))
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_LIMIT, "code %d %s" % (code, msg))
    expect("wall_seconds" in msg, "message %r" % msg)
    c.expect_closed()


def scenario_output_cap():
    # The server runs with limits.output_bytes 1000.
    c = started(Conn())
    c.send(run_frame("import sys\nsys.stdout.write('x' * 600)\nsys.stdout.flush()\n"
                     "sys.stderr.write('y' * 600)\nsys.stderr.flush()\nimport time\ntime.sleep(60)\n"))
    c.recv_type(STARTED)
    out, err, ex = collect(c)
    # The two pipes are read independently: whichever the front reads first takes its 600 bytes,
    # the other the 400 left (usually stdout first, as written; a loaded front may see both at once).
    expect(sorted([len(out), len(err)]) == [400, 600] and out == b"x" * len(out)
           and err == b"y" * len(err), "delivered %d + %d" % (len(out), len(err)))
    expect(ex["verdict"] == VERDICT_OUTPUT and ex["truncated"] == 1, "exit %r" % ex)
    expect(ex["stdout"] == len(out) and ex["stderr"] == len(err), "counts %r" % ex)
    expect("output limit of 1000 bytes" in ex["detail"], "detail %r" % ex["detail"])


def scenario_wall_limit():
    # The server runs with limits.wall_seconds 1.
    c = started(Conn())
    c.send(run_frame("import time\ntime.sleep(60)\n"))
    c.recv_type(STARTED)
    out, err, ex = collect(c)
    expect(ex["verdict"] == VERDICT_WALL, "exit %r" % ex)
    expect(ex["detail"] == "wall-clock limit of 1 s exceeded", "detail %r" % ex["detail"])
    expect(ex["kind"] == 1 and ex["code"] == 9, "exit %r" % ex)


def scenario_cancel():
    c = started(Conn())
    c.send(run_frame("import sys\nprint('ready', flush=True)\nsys.stdin.read()\n"))
    c.recv_type(STARTED)
    expect(stdout_line(c) == b"ready\n", "first line")
    c.send(frame(CANCEL))
    out, err, ex = collect(c)
    expect(ex["verdict"] == VERDICT_CANCELLED and ex["kind"] == 1, "exit %r" % ex)


def scenario_queue_and_busy():
    # The server runs with max_jobs 1 and queue 1.
    a = started(Conn())
    a.send(run_frame("import sys\nprint('a', flush=True)\nsys.stdin.read()\nprint('a done')\n"))
    a.recv_type(STARTED)
    expect(stdout_line(a) == b"a\n", "a's first line")
    b = started(Conn())
    b.send(run_frame("print('b')\n"))
    pos = struct.unpack(">I", b.recv_type(QUEUED))[0]
    expect(pos == 1, "b's position %d" % pos)
    c = started(Conn())
    c.send(run_frame("print('c')\n"))
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_BUSY and msg == "server busy, 1 jobs queued", "c got %d %r" % (code, msg))
    c.expect_closed()
    a.send(frame(STDIN_END))
    out, _, ex = collect(a)
    expect(out == b"a done\n" and ex["code"] == 0, "a ended %r %r" % (out, ex))
    b.recv_type(STARTED)
    out, _, ex = collect(b)
    expect(out == b"b\n" and ex["code"] == 0, "b ended %r %r" % (out, ex))


def scenario_cancel_while_queued():
    # The server runs with max_jobs 1 and queue 1.
    a = started(Conn())
    a.send(run_frame("import sys\nprint('a', flush=True)\nsys.stdin.read()\n"))
    a.recv_type(STARTED)
    stdout_line(a)
    b = started(Conn())
    b.send(run_frame("print('b')\n"))
    b.recv_type(QUEUED)
    b.send(frame(SIGNAL, bytes([2])))
    ex = exit_of(b.recv_type(EXIT))
    expect(ex["verdict"] == VERDICT_CANCELLED and ex["kind"] == 1 and ex["code"] == 2, "%r" % ex)
    b.expect_closed()
    # b left the queue: a newcomer is queued at position 1, not refused as busy.
    c = started(Conn())
    c.send(run_frame("print('c')\n"))
    pos = struct.unpack(">I", c.recv_type(QUEUED))[0]
    expect(pos == 1, "c's position %d" % pos)
    a.send(frame(STDIN_END))
    collect(a)
    c.recv_type(STARTED)
    out, _, _ = collect(c)
    expect(out == b"c\n", "c's output %r" % out)


def started_limits(payload):
    n = struct.unpack(">I", payload[:4])[0]
    return struct.unpack(">IIQQ", payload[4 + n:4 + n + 24])


def scenario_started_limits():
    # ARGS: the cpu, wall, memory and output limits the client's policy must give it.
    want = tuple(int(a) for a in ARGS)
    c = started(Conn())
    c.send(run_frame("print('hi')\n"))
    got = started_limits(c.recv_type(STARTED))
    expect(got == want, "limits in STARTED %r, expected %r" % (got, want))
    out, _, ex = collect(c)
    expect(out == b"hi\n" and ex["verdict"] == VERDICT_OK, "ended %r %r" % (out, ex))


def scenario_hold_then_report():
    # Runs a job that waits on stdin, prints RUNNING once it runs, then reports how it ended.
    c = started(Conn())
    c.send(run_frame("import sys\nprint('ready', flush=True)\nsys.stdin.read()\n", ARGS))
    c.recv_type(STARTED)
    expect(stdout_line(c) == b"ready\n", "first line")
    print("RUNNING", flush=True)
    out, err, ex = collect(c)
    print("EXIT verdict=%d kind=%d detail=%s" % (ex["verdict"], ex["kind"], ex["detail"]), flush=True)


def scenario_idle_timeout():
    # The server runs with idle_timeout_seconds 1: READY, then nothing from us.
    c = started(Conn())
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_TIMEOUT and msg == "no RUN request within 1 s", "got %d %r" % (code, msg))
    c.expect_closed()


def scenario_slow_run():
    # The server runs with idle_timeout_seconds 1: a RUN trickled in a byte at a time (slowloris)
    # is cut off by the same deadline.
    c = started(Conn())
    data = run_frame("print(1)\n")
    try:
        for b in data:
            c.send(bytes([b]))
            time.sleep(0.1)
    except (ssl.SSLError, ConnectionError, OSError):
        pass
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == ERR_TIMEOUT, "got %d %r" % (code, msg))


def scenario_ready():
    # The server accepts this client: READY arrives.
    started(Conn())


def scenario_refused():
    # The server must refuse this client's certificate: no READY, a TLS alert or a close.
    try:
        c = Conn()
        f = c.recv()
    except (ssl.SSLError, ConnectionError) as e:
        print("refused:", e)
        return
    expect(f is None, "got frame 0x%02x instead of a refusal" % (f[0] if f else 0))


def scenario_silent_tcp():
    # A TCP client that never says anything is closed by the server (handshake deadline).
    raw = socket.create_connection(("127.0.0.1", PORT), timeout=60)
    try:
        data = raw.recv(1)
    except ConnectionResetError:
        data = b""
    expect(data == b"", "server sent %r to a silent client" % data)


def scenario_source_cap():
    # ARGS: the per-source handshake cap N. N silent connections hold every handshake slot of
    # 127.0.0.1; the next TLS client is closed before its handshake; once they are gone, it works.
    cap = int(ARGS[0])
    silent = [socket.create_connection(("127.0.0.1", PORT), timeout=60) for _ in range(cap)]
    refused = False
    try:
        c = Conn()
        c.recv()
    except (ssl.SSLError, ConnectionError, OSError):
        refused = True
    expect(refused, "a connection over the per-source cap was served")
    for raw in silent:
        raw.close()
    for _ in range(200):
        try:
            c = Conn()
            c.recv_type(READY)
            return
        except (ssl.SSLError, ConnectionError, OSError):
            time.sleep(0.05)
    raise Failure("never served again after the silent connections closed")


def scenario_job_cap():
    # The server runs with max_jobs_per_identity 1.
    a = started(Conn())
    a.send(run_frame("import sys\nprint('a', flush=True)\nsys.stdin.read()\n"))
    a.recv_type(STARTED)
    stdout_line(a)
    b = started(Conn())
    b.send(run_frame("print('b')\n"))
    code, msg = error_of(b.recv_type(ERROR))
    expect(code == ERR_UNAUTHORIZED, "code %d %s" % (code, msg))
    expect(msg == "too many jobs running for alice: 1 of 1", "message %r" % msg)
    b.expect_closed()
    a.send(frame(STDIN_END))
    collect(a)
    # The slot is free again once a's job ended.
    c = started(Conn())
    c.send(run_frame("print('c')\n"))
    c.recv_type(STARTED)
    out, _, _ = collect(c)
    expect(out == b"c\n", "c's output %r" % out)


def scenario_audit_fields():
    # ARGS: the audit log path. One good job and one plaintext HTTP request, then every line of the
    # log must be JSON with the documented fields.
    path = ARGS[0]
    c = started(Conn())
    script = "print('audited')\n"
    c.send(run_frame(script, ["x"]))
    c.recv_type(STARTED)
    collect(c)
    c.expect_closed()
    raw = socket.create_connection(("127.0.0.1", PORT), timeout=60)
    raw.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        raw.recv(100)
    except OSError:
        pass
    raw.close()
    events = {}
    for _ in range(500):
        with open(path) as f:
            lines = f.read().splitlines()
        events = {}
        for line in lines:
            record = json.loads(line)
            events.setdefault(record["event"], []).append(record)
        if all(e in events for e in ("connect", "auth_fail", "job_start", "job_end")):
            break
        time.sleep(0.02)
    for e in ("connect", "auth_fail", "job_start", "job_end"):
        expect(e in events, "no %s line in %r" % (e, events))
    for records in events.values():
        for r in records:
            expect(r["time"].endswith("Z") and "T" in r["time"], "time %r" % r)
            expect(r["peer"].startswith("127.0.0.1"), "peer %r" % r)
    connect = events["connect"][0]
    for key in ("identity", "serial", "fingerprint", "policy"):
        expect(key in connect, "connect lacks %s: %r" % (key, connect))
    expect(connect["identity"] == "alice" and len(connect["fingerprint"]) == 64, "%r" % connect)
    expect("reason" in events["auth_fail"][0], "auth_fail %r" % events["auth_fail"][0])
    sha = hashlib.sha256(script.encode()).hexdigest()
    start = events["job_start"][0]
    expect(start["script"] == "job.py" and start["script_sha256"] == sha, "job_start %r" % start)
    expect(start["policy"] == "default" and start["job_id"] >= 1, "job_start %r" % start)
    end = events["job_end"][0]
    for key in ("job_id", "script", "script_sha256", "policy", "verdict", "exit_code", "cpu_us",
                "wall_us", "peak_memory_bytes", "bytes_in", "bytes_out", "identity", "serial",
                "fingerprint"):
        expect(key in end, "job_end lacks %s: %r" % (key, end))
    expect(end["verdict"] == "ok" and end["exit_code"] == 0, "job_end %r" % end)
    expect(end["stdout_bytes"] == 8 and end["bytes_in"] > len(script), "job_end %r" % end)
    text = open(path).read()
    expect("audited" not in text, "the audit log contains the script's text")


def expect_error(c, want_code, text):
    code, msg = error_of(c.recv_type(ERROR))
    expect(code == want_code, "code %d %s" % (code, msg))
    expect(text in msg, "message %r lacks %r" % (msg, text))
    c.expect_closed()


def scenario_stdin_after_stdin_end():
    for extra in (frame(STDIN, b"x"), frame(STDIN_END)):
        c = started(Conn())
        c.send(run_frame("import sys, time\nsys.stdin.read()\nprint('eof', flush=True)\n"
                         "time.sleep(60)\n"))
        c.recv_type(STARTED)
        c.send(frame(STDIN_END))
        expect(stdout_line(c) == b"eof\n", "no eof")
        c.send(extra)
        expect_error(c, ERR_UNEXPECTED, "after STDIN_END")


def scenario_file_then_run():
    c = started(Conn())
    c.send(file_frame("d/in.txt", 5) + frame(FILE_DATA, b"hel") + frame(FILE_DATA, b"lo"))
    c.send(file_frame("empty", 0, 0o600))
    c.send(run_frame("import os, sys\nprint(open('d/in.txt').read(), sys.argv[0], "
                     "oct(os.stat('empty').st_mode & 0o777))\n"))
    c.recv_type(STARTED)
    out, err, ex = collect(c)
    expect(out == b"hello /job/job.py 0o600\n", "stdout %r stderr %r" % (out, err))
    c.expect_closed()


def scenario_file_data_without_file():
    c = started(Conn())
    c.send(frame(FILE_DATA, b"x"))
    expect_error(c, ERR_UNEXPECTED, "FILE_DATA")


def scenario_run_while_file_owed():
    c = started(Conn())
    c.send(file_frame("a", 10) + frame(FILE_DATA, b"1234") + run_frame("print(1)\n"))
    expect_error(c, ERR_UNEXPECTED, "RUN")


def scenario_file_data_beyond_size():
    c = started(Conn())
    c.send(file_frame("a", 2) + frame(FILE_DATA, b"123"))
    expect_error(c, ERR_BAD_REQUEST, "beyond")


def scenario_file_bad_name():
    for name in ("../x", "/etc/x", "a/../../x", "a\nb"):
        c = started(Conn())
        c.send(file_frame(name, 0))
        expect_error(c, ERR_BAD_REQUEST, "file name")


def scenario_file_twice():
    c = started(Conn())
    c.send(file_frame("a", 0) + file_frame("a", 0))
    expect_error(c, ERR_BAD_REQUEST, "twice")


def scenario_file_clashes_with_script():
    c = started(Conn())
    c.send(file_frame("job.py", 0) + run_frame("print(1)\n"))
    expect_error(c, ERR_BAD_REQUEST, "job.py")


def scenario_file_after_run():
    c = started(Conn())
    c.send(run_frame("import sys\nsys.stdin.read()\n"))
    c.recv_type(STARTED)
    c.send(file_frame("late", 0))
    expect_error(c, ERR_UNEXPECTED, "FILE")


def scenario_get_twice():
    c = started(Conn())
    get = frame(GET, struct.pack(">I", 1) + s(b"*") + struct.pack(">IQ", 10, 1000))
    c.send(get + get)
    expect_error(c, ERR_BAD_REQUEST, "GET")


def scenario_upload_abandoned():
    """Announces 1 MiB, sends 64 KiB, then vanishes: the test checks nothing is left."""
    c = started(Conn())
    c.send(file_frame("big", 1 << 20) + frame(FILE_DATA, b"x" * 65536))
    time.sleep(0.5)
    c.sock.close()


def main():
    try:
        globals()["scenario_" + sys.argv[4]]()
    except Failure as e:
        print("FAILED:", e)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
