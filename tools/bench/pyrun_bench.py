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
import socket
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


def start_sshd(work):
    """A private sshd on 127.0.0.1 with throwaway keys, for the scp baseline; None without one."""
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None or shutil.which("scp") is None:
        return None
    # sshd refuses to start without its privilege separation directory, which Debian's unit makes
    # at boot (RuntimeDirectory=sshd); make it when we can, as that unit would.
    if not os.path.isdir("/run/sshd") and os.geteuid() == 0:
        os.makedirs("/run/sshd", 0o755, exist_ok=True)
    d = os.path.join(work, "ssh")
    os.mkdir(d, 0o700)
    for name in ("host", "user"):
        run_quiet(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, name)])
    shutil.copy(os.path.join(d, "user.pub"), os.path.join(d, "authorized_keys"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = os.path.join(d, "sshd_config")
    with open(config, "w") as f:
        f.write(f"ListenAddress 127.0.0.1:{port}\nHostKey {d}/host\n"
                f"AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n"
                "StrictModes no\nUsePAM no\nPidFile none\nSubsystem sftp internal-sftp\n")
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "wb"))
    ssh_opts = ["-q", "-P", str(port), "-i", os.path.join(d, "user"), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, ssh_opts
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    with open(os.path.join(d, "log"), errors="replace") as f:
        print("  sshd did not start: " + (f.read().strip() or "no reason given"))
    return None


def start_server(root, bin_dir, work, server_bundle, crl, mib, transfer_mib=0):
    port_file = os.path.join(work, "port")
    log = open(os.path.join(work, "pyrund.log"), "wb")
    policy = os.path.join(work, "policy.yaml")
    with open(policy, "w") as f:
        # The project's default policy, with room for the streaming run's output and time.
        # And a working directory (and the memory its tmpfs takes) for the transfer runs.
        f.write("version: 1\ninclude: [%s]\nlimits:\n  output: %dM\n  wall_seconds: 600\n"
                "  cpu_seconds: 600\n  workdir: %dM\n  file_size: %dM\n  memory: %dM\n"
                % (os.path.join(root, "policy", "default.yaml"), mib + 16, transfer_mib + 64,
                   transfer_mib + 16, 2 * transfer_mib + 512))
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


def transfers(args, work, remote, hello, hello_seconds):
    """Upload (-f) and download (--get) of one file, against scp of the same file through a
    private sshd when there is one. A pyrun run also starts a job: its median hello-world time is
    taken off, so the rates are those of the transfer (and the copy into and out of /job)."""
    size = args.transfer_mib << 20
    data = os.path.join(work, "data.bin")
    with open(data, "wb") as f:
        for _ in range(args.transfer_mib):
            f.write(os.urandom(1 << 20))
    quiet = remote[:1] + ["-q", "--no-modules"] + remote[1:]
    up = timed(quiet[:1] + ["-f", data + ":in.bin"] + quiet[1:] + [hello]) - hello_seconds
    writer = os.path.join(work, "write.py")
    with open(writer, "w") as f:
        f.write("import sys\nb = bytes(1 << 20)\nwith open('out.bin', 'wb') as f:\n"
                "    for _ in range(int(sys.argv[1])):\n        f.write(b)\n")
    got = os.path.join(work, "got")
    down = timed(quiet[:1] + ["--get", "out.bin", "-o", got] + quiet[1:] +
                 [writer, str(args.transfer_mib)]) - hello_seconds
    mb = size / 1e6
    print(f"transfer of {args.transfer_mib} MiB over 127.0.0.1:")
    print(f"  pyrun upload (-f)      {mb / up:8.1f} MB/s")
    print(f"  pyrun download (--get) {mb / down:8.1f} MB/s")
    sshd = start_sshd(work)
    if sshd is None:
        print("  scp: skipped (no sshd: install openssh-server for the scp baseline)")
        return
    proc, opts = sshd
    try:
        dest = os.path.join(work, "scp-copy.bin")
        scp_up = timed(["scp"] + opts + [data, f"127.0.0.1:{dest}"])
        scp_down = timed(["scp"] + opts + [f"127.0.0.1:{dest}", os.path.join(work, "scp-back")])
        print(f"  scp upload             {mb / scp_up:8.1f} MB/s")
        print(f"  scp download           {mb / scp_down:8.1f} MB/s")
        print(f"  ratio pyrun/scp up     {scp_up / up:8.2f}x")
        print(f"  ratio pyrun/scp down   {scp_down / down:8.2f}x")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(root, "build", "release", "bin"),
                        help="directory holding pyrun, pyrund and pyrun-ca")
    parser.add_argument("--runs", type=int, default=20, help="hello-world runs of each kind")
    parser.add_argument("--mib", type=int, default=200, help="MiB written in the streaming test")
    parser.add_argument("--transfer-mib", type=int, default=256,
                        help="MiB of the file uploaded (-f) and downloaded (--get)")
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
        server, port = start_server(root, args.bin, work, server_bundle, crl, args.mib,
                                    args.transfer_mib)
        hello = os.path.join(work, "hello.py")
        flood = os.path.join(work, "flood.py")
        with open(hello, "w") as f:
            f.write(HELLO)
        with open(flood, "w") as f:
            f.write(FLOOD)
        remote = [os.path.join(args.bin, "pyrun"), "--cert", client, f"127.0.0.1:{port}"]
        # The server runs `python3 -E -s -B -u`; the local baseline gets the same flags.
        local = [PYTHON, "-E", "-s", "-B", "-u"]

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
        transfers(args, work, remote, hello, p_med)
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
