import os, sys
print("TTY", sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty())
print("DEV", " ".join(sorted(os.listdir("/dev"))))
print("TERM", os.environ.get("TERM"))
