# TIOCSTI would push bytes into the terminal's input as if typed; TIOCLINUX talks to the Linux
# console. Both must fail with EPERM on the job's terminal (and on /dev/tty).
import errno, fcntl, os, termios

TIOCLINUX = 0x541C
for name, fd in (("stdin", 0), ("tty", os.open("/dev/tty", os.O_RDWR))):
    for request, arg in ((termios.TIOCSTI, b"x"), (TIOCLINUX, b"\x06\x00")):
        label = "TIOCSTI" if request == termios.TIOCSTI else "TIOCLINUX"
        try:
            fcntl.ioctl(fd, request, arg)
            print("ALLOWED", label, name, flush=True)
        except OSError as e:
            print("BLOCKED", label, name, errno.errorcode[e.errno], flush=True)
print("DONE", flush=True)
