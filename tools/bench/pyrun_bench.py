#!/usr/bin/env python3
"""pyrun benchmark: the targets of issue 11, each against its baseline measured in the same run.

Starts its own pyrund on 127.0.0.1 (kernel-chosen port) with a throwaway PKI made by pyrun-ca in a
temporary directory and, when openssh-server is installed, a private sshd on 127.0.0.1 with
throwaway keys, then measures the sections asked for (--sections, default all):
  hello     hello world: pyrun against local cold `python3 -I -B -u` and against `ssh` over an
            open ControlMaster connection (medians of --runs, interleaved);
  parallel  --clients clients running --parallel-jobs hello jobs in total, as jobs/s, against
            local python3 at the same parallelism;
  stream    --mib MiB of stdout into /dev/null through pyrun, in MB/s, against ssh (and local);
  rss       the peak RSS (ru_maxrss) of the pyrun process of that streaming run;
  cpu       fib(--fib) CPU time (user + system) confined (pyrun --stats) against bare python3;
  stages    the stage breakdown of a hello job (pyrun --timings), the median of --runs;
  transfer  upload (-f) and download (--get) of --transfer-mib MiB, against scp.
Then a table of the targets with their ratios and PASS/MISS. Only ratios from one run are
comparable across machines. Nothing is registered in ctest.

usage: tools/bench/pyrun_bench.py [--bin build/release/bin] [--runs 20] [--mib 1024]
       [--sections hello,parallel,stream,rss,cpu,stages,transfer] [--quick] ...
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PYTHON = "/usr/bin/python3"
# The local baseline of the targets: a cold interpreter as a user would start it.
LOCAL = [PYTHON, "-I", "-B", "-u"]
HELLO = "print('hello, world')\n"
FIB = """import sys
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
print(fib(int(sys.argv[1])))
"""
SECTIONS = ("hello", "parallel", "stream", "rss", "cpu", "stages", "transfer")
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


class Sshd:
    """A private sshd on 127.0.0.1 with throwaway keys (host and user, ed25519, in the temporary
    directory); ssh() runs a command over one ControlMaster connection opened once."""

    def __init__(self, proc, port, d):
        self.proc, self.port, self.dir = proc, port, d
        common = ["-i", os.path.join(d, "user"), "-o", "BatchMode=yes",
                  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                  "-o", "LogLevel=ERROR"]
        self.scp_opts = ["-q", "-P", str(port)] + common
        self.ssh_base = ["ssh", "-p", str(port)] + common + [
            "-o", "ControlPath=" + os.path.join(d, "cm"), "-o", "ControlMaster=auto",
            "-o", "ControlPersist=600"]
        self.master = False

    def ssh(self, command):
        """argv running `command` (a list) on 127.0.0.1 through the shared connection."""
        if not self.master:
            run_quiet(self.ssh_base + ["127.0.0.1", "true"])  # opens the master
            self.master = True
        return self.ssh_base + ["127.0.0.1"] + command

    def stop(self):
        if self.master:
            subprocess.run(self.ssh_base + ["-O", "exit", "127.0.0.1"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_sshd(work):
    """A private sshd on 127.0.0.1 with throwaway keys, for the ssh and scp baselines; None
    without openssh-server (the reason is printed)."""
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None or shutil.which("scp") is None or shutil.which("ssh") is None:
        print("  ssh/scp baselines skipped: install openssh-server (and openssh-client)")
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
        # Its own config file: the system's sshd and its port 22 are left alone.
        f.write(f"ListenAddress 127.0.0.1:{port}\nHostKey {d}/host\n"
                f"AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n"
                "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n"
                "MaxSessions 64\nMaxStartups 64\nUseDNS no\nPrintMotd no\nPrintLastLog no\n"
                "X11Forwarding no\nSubsystem sftp internal-sftp\n")
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "wb"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Sshd(proc, port, d)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    with open(os.path.join(d, "log"), errors="replace") as f:
        print("  sshd did not start: " + (f.read().strip() or "no reason given"))
    return None


def start_server(root, bin_dir, work, server_bundle, crl, mib, transfer_mib=0, max_jobs=0):
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
         "--jobs-dir", os.path.join(work, "jobs")] +
        (["--max-jobs", str(max_jobs)] if max_jobs else []),
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


def transfers(args, work, remote, hello, hello_seconds, sshd):
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
    if sshd is None:
        print("  scp: skipped (no sshd: install openssh-server for the scp baseline)")
        return
    opts = sshd.scp_opts
    dest = os.path.join(work, "scp-copy.bin")
    scp_up = timed(["scp"] + opts + [data, f"127.0.0.1:{dest}"])
    scp_down = timed(["scp"] + opts + [f"127.0.0.1:{dest}", os.path.join(work, "scp-back")])
    print(f"  scp upload             {mb / scp_up:8.1f} MB/s")
    print(f"  scp download           {mb / scp_down:8.1f} MB/s")
    print(f"  ratio pyrun/scp up     {scp_up / up:8.2f}x")
    print(f"  ratio pyrun/scp down   {scp_down / down:8.2f}x")


def timed_rusage(argv, stdout=subprocess.DEVNULL):
    """Runs argv; returns (wall seconds, its rusage) from wait4 on that child alone."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv, stderr=err)
    return wall, usage, err.decode(errors="replace")


def median(values):
    return statistics.median(values) if values else float("nan")


class Report:
    """The targets of issue 11: each with its measured value, its baseline, and PASS/MISS."""

    def __init__(self):
        self.rows = []

    def add(self, name, value, baseline, ratio, target, ok):
        self.rows.append((name, value, baseline, ratio, target, ok))

    def print(self):
        if not self.rows:
            return
        print("targets (issue 11):")
        print(f"  {'target':<34} {'pyrun':>14} {'baseline':>22} {'ratio':>8}  {'wanted':<18} result")
        for name, value, baseline, ratio, target, ok in self.rows:
            result = "n/a" if ok is None else ("PASS" if ok else "MISS")
            print(f"  {name:<34} {value:>14} {baseline:>22} {ratio:>8}  {target:<18} {result}")


def section_hello(args, remote, sshd, hello, report):
    timed(remote + [hello])  # warm caches once, unmeasured
    timed(LOCAL + [hello])
    ssh_cmd = sshd.ssh(LOCAL + [hello]) if sshd else None
    if ssh_cmd:
        timed(ssh_cmd)
    pyrun_times, local_times, ssh_times = [], [], []
    # Interleaved, so drift affects all alike. --settle pauses before each run: on a VM an idle
    # vCPU wakes slowly, and a pyrun job hands work across some fifteen wake-ups of other processes
    # (client, front, spawner, init, interpreter) where local python runs in one; README.md shows
    # the figures both ways.
    def settled(argv):
        if args.settle > 0:
            time.sleep(args.settle)
        return timed(argv)
    for _ in range(args.runs):
        pyrun_times.append(settled(remote + [hello]))
        local_times.append(settled(LOCAL + [hello]))
        if ssh_cmd:
            ssh_times.append(settled(ssh_cmd))
    p, l, s = median(pyrun_times), median(local_times), median(ssh_times)
    print(f"hello world, median of {args.runs} runs:")
    print(f"  pyrun (127.0.0.1)            {p * 1000:8.1f} ms")
    print(f"  local python3 -I -B -u       {l * 1000:8.1f} ms")
    print(f"  ratio pyrun/local            {p / l:8.2f}x")
    if ssh_cmd:
        print(f"  ssh (open ControlMaster)     {s * 1000:8.1f} ms")
        print(f"  ratio pyrun/ssh              {p / s:8.2f}x")
    report.add("hello world vs local python3", f"{p * 1000:.1f} ms", f"{l * 1000:.1f} ms local",
               f"{p / l:.2f}x", "<= 0.60x", p / l <= 0.6)
    if ssh_cmd:
        report.add("hello world vs ssh ControlMaster", f"{p * 1000:.1f} ms",
                   f"{s * 1000:.1f} ms ssh", f"{p / s:.2f}x", "< 1.00x", p < s)
    else:
        report.add("hello world vs ssh ControlMaster", f"{p * 1000:.1f} ms", "no sshd", "-",
                   "< 1.00x", None)
    return p


def section_parallel(args, remote, hello, report):
    def rate(argv):
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
            list(pool.map(lambda _: run_quiet(argv), range(args.parallel_jobs)))
        return args.parallel_jobs / (time.perf_counter() - start)

    p = rate(remote + [hello])
    l = rate(LOCAL + [hello])
    print(f"{args.parallel_jobs} hello jobs, {args.clients} at a time:")
    print(f"  pyrun (127.0.0.1)            {p:8.1f} jobs/s")
    print(f"  local python3 -I -B -u       {l:8.1f} jobs/s")
    print(f"  ratio pyrun/local            {p / l:8.2f}x")
    report.add(f"{args.clients} clients, {args.parallel_jobs} hello jobs", f"{p:.1f} jobs/s",
               f"{l:.1f} jobs/s local", f"{p / l:.2f}x", ">= 1.00x", p >= l)


def section_stream(args, remote, sshd, flood, sections, report):
    blocks = args.mib * 16  # 64 KiB blocks
    mb = blocks * 65536 / 1e6
    # Linux counts the forking process's RSS at the exec into the child's ru_maxrss (here this
    # script's ~18 MiB, shared through vfork). GNU time forks pyrun from its own ~2 MiB and reports
    # that child's figure alone; without it, the figure is only an upper bound.
    gnu_time = shutil.which("time", path="/usr/bin")
    rss_file = os.path.join(os.path.dirname(flood), "rss.txt")
    wrapper = [gnu_time, "-f", "%M", "-o", rss_file] if gnu_time else []
    wall, usage, _ = timed_rusage(wrapper + remote + [flood, str(blocks)])
    p_rate = mb / wall
    if gnu_time:
        with open(rss_file) as f:
            rss_mib = int(f.read().split()[-1]) / 1024  # KiB
    else:
        rss_mib = usage.ru_maxrss / 1024  # KiB on Linux; includes this script's RSS at the fork
    print(f"{args.mib} MiB of stdout to /dev/null:")
    if "stream" in sections:
        l_rate = mb / timed(LOCAL + [flood, str(blocks)])
        print(f"  pyrun (127.0.0.1)            {p_rate:8.1f} MB/s")
        print(f"  local python3                {l_rate:8.1f} MB/s")
        s_rate = None
        if sshd:
            s_rate = mb / timed(sshd.ssh(LOCAL + [flood, str(blocks)]))
            print(f"  ssh (open ControlMaster)     {s_rate:8.1f} MB/s")
            print(f"  ratio pyrun/ssh              {p_rate / s_rate:8.2f}x")
        report.add(f"{args.mib} MiB stdout, absolute", f"{p_rate:.0f} MB/s", "-", "-",
                   ">= 1000 MB/s", p_rate >= 1000)
        if s_rate:
            report.add(f"{args.mib} MiB stdout vs ssh", f"{p_rate:.0f} MB/s",
                       f"{s_rate:.0f} MB/s ssh", f"{p_rate / s_rate:.2f}x", ">= 2.50x",
                       p_rate / s_rate >= 2.5)
        else:
            report.add(f"{args.mib} MiB stdout vs ssh", f"{p_rate:.0f} MB/s", "no sshd", "-",
                       ">= 2.50x", None)
    if "rss" in sections:
        print(f"  pyrun peak RSS (ru_maxrss)   {rss_mib:8.1f} MiB")
        report.add(f"client peak RSS, {args.mib} MiB out", f"{rss_mib:.1f} MiB", "-", "-",
                   "<= 8 MiB", rss_mib <= 8)


def section_cpu(args, remote, fib, report):
    """CPU time of fib(N): the job's user + system as pyrun --stats reports it (the spawner's
    wait4 over the job's whole pid namespace) against the same program run bare here."""
    stats_re = re.compile(r"pyrun: cpu ([0-9.]+) s")
    confined, bare = [], []
    for _ in range(args.cpu_runs):
        _, _, err = timed_rusage(remote[:1] + ["--stats"] + remote[1:] + [fib, str(args.fib)])
        m = stats_re.search(err)
        if not m:
            sys.exit("pyrun_bench: no cpu figure in pyrun --stats output:\n" + err)
        confined.append(float(m.group(1)))
        _, usage, _ = timed_rusage(LOCAL + [fib, str(args.fib)])
        bare.append(usage.ru_utime + usage.ru_stime)
    c, b = median(confined), median(bare)
    print(f"fib({args.fib}) CPU time (user + system), median of {args.cpu_runs}:")
    print(f"  confined (pyrun --stats)     {c:8.3f} s")
    print(f"  bare python3 -I -B -u        {b:8.3f} s")
    print(f"  ratio confined/bare          {c / b:8.3f}x")
    report.add(f"fib({args.fib}) CPU confined vs bare", f"{c:.3f} s", f"{b:.3f} s bare",
               f"{c / b:.3f}x", "<= 1.02x", c / b <= 1.02)


def section_stages(args, remote, hello):
    """The median offset (ms from the server's accept) of each stage of a hello job, and the
    median time since the stage before."""
    line_re = re.compile(r"^pyrun:\s+(server|client) (\S+)\s+([0-9.]+) ms(?:\s+\+([0-9.]+))?$")
    offsets, steps, order = {}, {}, []
    for _ in range(args.runs):
        _, _, err = timed_rusage(remote[:1] + ["--timings"] + remote[1:] + [hello])
        for line in err.splitlines():
            m = line_re.match(line)
            if not m:
                continue
            key = (m.group(1), m.group(2))
            if key not in offsets:
                order.append(key)
                offsets[key], steps[key] = [], []
            offsets[key].append(float(m.group(3)))
            steps[key].append(float(m.group(4) or 0))
    print(f"stages of a hello job, median of {args.runs} (server: ms from accept, client: from "
          "connect):")
    for side, name in order:
        key = (side, name)
        print(f"  {side:<6} {name:<14} {median(offsets[key]):8.2f} ms  "
              f"+{median(steps[key]):6.2f}  ({len(offsets[key])} runs)")


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=os.path.join(root, "build", "release", "bin"),
                        help="directory holding pyrun, pyrund and pyrun-ca")
    parser.add_argument("--runs", type=int, default=20,
                        help="hello-world runs of each kind (hello, stages)")
    parser.add_argument("--mib", type=int, default=1024,
                        help="MiB written to stdout in the stream and rss sections")
    parser.add_argument("--transfer-mib", type=int, default=256,
                        help="MiB of the file uploaded (-f) and downloaded (--get)")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds of pause before each measured hello run (hello)")
    parser.add_argument("--clients", type=int, default=8, help="parallel clients (parallel)")
    parser.add_argument("--parallel-jobs", type=int, default=200,
                        help="hello jobs in total in the parallel section")
    parser.add_argument("--fib", type=int, default=33, help="N of fib(N) in the cpu section")
    parser.add_argument("--cpu-runs", type=int, default=3, help="runs of fib(N), each kind")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help="comma-separated subset of: " + ", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a smoke run: --runs 5 --mib 128 --parallel-jobs 40 "
                             "--fib 27 --cpu-runs 1 --transfer-mib 32 (explicit options win)")
    args = parser.parse_args()
    if args.quick:
        given = set(a.split("=")[0] for a in sys.argv[1:])
        for option, value in (("--runs", 5), ("--mib", 128), ("--parallel-jobs", 40),
                              ("--fib", 27), ("--cpu-runs", 1), ("--transfer-mib", 32)):
            if option not in given:
                setattr(args, option[2:].replace("-", "_"), value)
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    for x in sections:
        if x not in SECTIONS:
            sys.exit(f"pyrun_bench: unknown section {x!r} (one of {', '.join(SECTIONS)})")
    for program in ("pyrun", "pyrund", "pyrun-ca"):
        if not os.access(os.path.join(args.bin, program), os.X_OK):
            sys.exit(f"pyrun_bench: {args.bin}/{program} is missing: build first "
                     "(cmake --preset release && cmake --build --preset release)")

    # Jobs run under their own uids when pyrund runs as root: the directory must be traversable.
    work = tempfile.mkdtemp(prefix="pyrun-bench.")
    os.chmod(work, 0o711)
    server = None
    sshd = None
    report = Report()
    try:
        server_bundle, client, crl = make_pki(args.bin, work)
        server, port = start_server(root, args.bin, work, server_bundle, crl, args.mib,
                                    args.transfer_mib, max_jobs=args.clients)
        hello = os.path.join(work, "hello.py")
        flood = os.path.join(work, "flood.py")
        fib = os.path.join(work, "fib.py")
        for path, text in ((hello, HELLO), (flood, FLOOD), (fib, FIB)):
            with open(path, "w") as f:
                f.write(text)
        # Readable by the job uids and by sshd's session (the same machine, another process).
        remote = [os.path.join(args.bin, "pyrun"), "--cert", client, f"127.0.0.1:{port}"]
        if set(sections) & {"hello", "stream", "transfer"}:
            sshd = start_sshd(work)

        hello_seconds = None
        if "hello" in sections:
            hello_seconds = section_hello(args, remote, sshd, hello, report)
        if "parallel" in sections:
            section_parallel(args, remote, hello, report)
        if "stream" in sections or "rss" in sections:
            section_stream(args, remote, sshd, flood, sections, report)
        if "cpu" in sections:
            section_cpu(args, remote, fib, report)
        if "stages" in sections:
            section_stages(args, remote, hello)
        if "transfer" in sections:
            if hello_seconds is None:
                hello_seconds = median([timed(remote + [hello]) for _ in range(max(args.runs, 3))])
            transfers(args, work, remote, hello, hello_seconds, sshd)
        report.print()
    finally:
        if sshd is not None:
            sshd.stop()
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
