# Ordinary workload: a subprocess of the interpreter itself (sys.executable), with pipes.
import subprocess
import sys

out = subprocess.run([sys.executable, "-c", "import sys; print(sum(map(int, sys.stdin.read().split())))"],
                     input="1 2 3 4", capture_output=True, text=True, check=True)
print("child said", out.stdout.strip(), "rc", out.returncode)
p = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(7)"])
print("child exit", p.wait())
