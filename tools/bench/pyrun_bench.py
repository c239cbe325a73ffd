#!/usr/bin/env python3
"""First pyrun benchmark: start-up and streaming throughput, each against local python3.

Starts its own pyrund on 127.0.0.1 (kernel-chosen port) with a throwaway PKI made by pyrun-ca in a
temporary directory, then measures in the same run:
  1. hello world: N runs of `pyrun ... hello.py` and of `/usr/bin/python3 hello.py`, the medians
     and their ratio (pyrun / local);
  2. streaming: a script writing M MiB to stdout, through pyrun and locally, both into /dev/null,
     as MB/s and their ratio (pyrun / local).
Only ratios from one run are comparable across machines. Nothing is registered in ctest.

usage: tools/bench/pyrun_bench.py [--bin build/release/bin] [--runs 20] [--mib 200]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

PYTHON = "/usr/bin/python3"
HELLO = "print('hello, world')\n"
FLOOD = """import sys
n = int(sys.argv[1])
block = b'x' * 65535 + b'\\n'
out = sys.stdout.buffer
for _ in range(n):
    out.write(block)
"""


def run_quiet(argv, stdout=subprocess.DEVNULL):
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, check=True)


def timed(argv):
    start = time.perf_counter()
    run_quiet(argv)
    return time.perf_counter() - start


def make_pki(bin_dir, work):
    ca = os.path.join(work, "ca")
    pyrun_ca = os.path.join(bin_dir, "pyrun-ca")
    run_quiet([pyrun_ca, "init", "--dir", ca, "--name", "pyrun bench CA"])
    server = os.path.join(work, "server.pem")
    client = os.path.join(work, "me.pem")
    run_quiet([pyrun_ca, "server", "localhost", "127.0.0.1", "--dir", ca, "--out", server])
    run_quiet([pyrun_ca, "client", "bench", "--dir", ca, "--out", client])
    return server, client, os.path.join(ca, "crl.pem")


def start_server(root, bin_dir, work, server_bundle, crl, mib):
    port_file = os.path.join(work, "port")
    log = open(os.path.join(work, "pyrund.log"), "wb")
    policy = os.path.join(work, "policy.yaml")
    with open(policy, "w") as f:
        # The project's default policy, with room for the streaming run's output and time.
        f.write("version: 1\ninclude: [%s]\nlimits:\n  output: %dM\n  wall_seconds: 600\n"
                "  cpu_seconds: 600\n" % (os.path.join(root, "policy", "default.yaml"), mib + 16))
    config = os.path.join(work, "pyrund.yaml")
    with open(config, "w") as f:
        # Every run comes from one identity; its quotas must not throttle the benchmark.
        f.write("policies:\n  default: %s\nmax_jobs_per_identity: 1000\n"
                "job_starts_per_minute: 100000\n" % policy)
    proc = subprocess.Popen(
        [os.path.join(bin_dir, "pyrund"), "--config", config, "--listen", "127.0.0.1",
         "--port", "0", "--port-file", port_file, "--cert", server_bundle, "--crl", crl,
         "--jobs-dir", os.path.join(work, "jobs")],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
            with open(port_file) as f:
                return proc, int(f.read().strip())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    with open(os.path.join(work, "pyrund.log")) as f:
        sys.exit("pyrun_bench: pyrund did not start:\n" + f.read())


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(root, "build", "release", "bin"),
                        help="directory holding pyrun, pyrund and pyrun-ca")
    parser.add_argument("--runs", type=int, default=20, help="hello-world runs of each kind")
    parser.add_argument("--mib", type=int, default=200, help="MiB written in the streaming test")
    args = parser.parse_args()
    for program in ("pyrun", "pyrund", "pyrun-ca"):
        if not os.access(os.path.join(args.bin, program), os.X_OK):
            sys.exit(f"pyrun_bench: {args.bin}/{program} is missing: build first "
                     "(cmake --preset release && cmake --build --preset release)")

    # Jobs run under their own uids when pyrund runs as root: the directory must be traversable.
    work = tempfile.mkdtemp(prefix="pyrun-bench.")
    os.chmod(work, 0o711)
    server = None
    try:
        server_bundle, client, crl = make_pki(args.bin, work)
        server, port = start_server(root, args.bin, work, server_bundle, crl, args.mib)
        hello = os.path.join(work, "hello.py")
        flood = os.path.join(work, "flood.py")
        with open(hello, "w") as f:
            f.write(HELLO)
        with open(flood, "w") as f:
            f.write(FLOOD)
        remote = [os.path.join(args.bin, "pyrun"), "--cert", client, f"127.0.0.1:{port}"]
        # The server runs `python3 -I -B -u`; the local baseline gets the same flags.
        local = [PYTHON, "-I", "-B", "-u"]

        timed(remote + [hello])  # warm caches once, unmeasured
        timed(local + [hello])
        pyrun_times, local_times = [], []
        for _ in range(args.runs):  # interleaved, so drift affects both alike
            pyrun_times.append(timed(remote + [hello]))
            local_times.append(timed(local + [hello]))
        p_med, l_med = statistics.median(pyrun_times), statistics.median(local_times)

        blocks = args.mib * 16  # 64 KiB blocks
        p_stream = timed(remote + [flood, str(blocks)])
        l_stream = timed(local + [flood, str(blocks)])
        mb = blocks * 65536 / 1e6
        p_rate, l_rate = mb / p_stream, mb / l_stream

        print(f"hello world, median of {args.runs} runs:")
        print(f"  pyrun (127.0.0.1) {p_med * 1000:8.1f} ms")
        print(f"  local python3     {l_med * 1000:8.1f} ms")
        print(f"  ratio pyrun/local {p_med / l_med:8.2f}x")
        print(f"streaming {args.mib} MiB to /dev/null:")
        print(f"  pyrun (127.0.0.1) {p_rate:8.1f} MB/s")
        print(f"  local python3     {l_rate:8.1f} MB/s")
        print(f"  ratio pyrun/local {p_rate / l_rate:8.2f}x")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
