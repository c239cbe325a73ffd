import os, sys
print("TTY", sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty())
print("TERM", os.environ.get("TERM"))
size = os.get_terminal_size()
print("SIZE", size.columns, size.lines)
with open("/dev/tty", "rb", buffering=0) as tty:
    print("CTTY", os.ttyname(tty.fileno()))
print("SID", os.getsid(0) == os.getpid() and os.tcgetpgrp(0) == os.getpgrp())
