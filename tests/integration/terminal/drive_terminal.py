#!/usr/bin/env python3
# Runs `pyrun -t ...` on a real pseudo-terminal, as a person at a terminal would, and plays one
# scenario against it: wait for a text, type keys, resize. Usage:
#   drive_terminal.py SCENARIO PYRUN_ARGV...
# Prints the transcript and exits 0 when every expectation held and the terminal's settings after
# pyrun ended are those before it started; else prints "FAIL: why" and exits 1. A scenario step
# waits for output, never for a fixed time.
import os
import select
import signal
import struct
import sys
import termios
import fcntl
import time

TIMEOUT = 60


class Fail(Exception):
    pass


class Terminal:
    def __init__(self, argv, rows=24, cols=80):
        self.master, self.slave = os.openpty()
        self.resize(rows, cols, notify=False)
        self.before = termios.tcgetattr(self.slave)
        self.out = b""
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.setsid()
                fcntl.ioctl(self.slave, termios.TIOCSCTTY, 0)
                for fd in (0, 1, 2):
                    os.dup2(self.slave, fd)
                os.closerange(3, 256)
                os.environ["TERM"] = "xterm-256color"
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        self.status = None

    def resize(self, rows, cols, notify=True):
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_some(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        self.out += data
        return bool(data)

    def expect(self, needle, timeout=TIMEOUT):
        needle = needle.encode() if isinstance(needle, str) else needle
        end = time.time() + timeout
        while needle not in self.out:
            if time.time() > end:
                raise Fail("did not see %r" % needle)
            if not self.read_some(0.2) and self.exited():
                # Drain what is left, then decide.
                while self.read_some(0.1):
                    pass
                if needle not in self.out:
                    raise Fail("pyrun ended without printing %r" % needle)

    def type(self, data):
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def exited(self):
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = status
        return self.status is not None

    def wait(self, timeout=TIMEOUT):
        end = time.time() + timeout
        while not self.exited():
            if time.time() > end:
                os.kill(self.pid, signal.SIGKILL)
                raise Fail("pyrun did not end")
            self.read_some(0.1)
        while self.read_some(0.1):
            pass
        return os.waitstatus_to_exitcode(self.status)

    def settings_unchanged(self):
        after = termios.tcgetattr(self.slave)
        if after != self.before:
            raise Fail("terminal settings changed: before %r after %r" % (self.before, after))


def scenario(name, t, extra):
    if name == "isatty":
        t.expect("TTY True True True")
        t.expect("TERM xterm-256color")
        t.expect("SIZE 100 30")
        t.expect("CTTY /dev/pts/0")
        t.expect("SID True")
        return t.wait() == 0
    if name == "input":
        t.expect("name? ")
        if b"hello" in t.out:
            raise Fail("output before input")
        t.type("bob\r")
        t.expect("hello bob")
        return t.wait() == 0
    if name == "getpass":
        t.expect("pw: ")
        t.type("s3cr3t\r")
        t.expect("GOT 6")
        if b"s3cr3t" in t.out:
            raise Fail("the password was echoed")
        return t.wait() == 0
    if name == "pdb":
        t.expect("(Pdb) ")
        t.type("p x\r")
        t.expect("41\r\n(Pdb) ")
        t.type("c\r")
        t.expect("AFTER 41")
        return t.wait() == 0
    if name == "resize":
        t.expect("SIZE 80 24")
        t.resize(40, 120)
        t.expect("WINCH 120 40")
        return t.wait() == 0
    if name == "ctrl-c":
        t.expect("ready> ")
        t.type(b"\x03")
        t.expect("KEYBOARD-INTERRUPT")
        return t.wait() == 0
    if name == "ctrl-d":
        t.expect("eof> ")
        t.type(b"\x04")
        t.expect("EOF-ERROR")
        return t.wait() == 0
    if name == "escape":
        t.expect("ready> ")
        t.type("\r~.")
        code = t.wait()
        t.expect("session ended with ~.")
        return code == 255
    if name == "server-dies":
        # extra: the pid of pyrund, killed while the job waits for input.
        t.expect("ready> ")
        os.kill(int(extra), signal.SIGKILL)
        code = t.wait()
        t.expect("pyrun: connection to")
        return code == 255
    if name in ("kill-term", "kill-quit", "kill-usr1"):
        # A signal sent to pyrun itself: the job is cancelled and pyrun exits on its own (not
        # killed by the signal), with the terminal's settings put back (checked by the caller).
        sig = {"kill-term": signal.SIGTERM, "kill-quit": signal.SIGQUIT,
               "kill-usr1": signal.SIGUSR1}[name]
        t.expect("ready> ")
        os.kill(t.pid, sig)
        code = t.wait()
        if code < 0:
            raise Fail("pyrun was killed by signal %d" % -code)
        return True
    raise Fail("unknown scenario " + name)


def main():
    name = sys.argv[1]
    extra = None
    args = sys.argv[2:]
    if name == "server-dies":
        extra, args = args[0], args[1:]
    rows, cols = (30, 100) if name == "isatty" else (24, 80)
    t = Terminal(args, rows, cols)
    try:
        ok = scenario(name, t, extra)
        if not ok:
            raise Fail("pyrun exited with %r" % os.waitstatus_to_exitcode(t.status))
        t.settings_unchanged()
    except Fail as e:
        if not t.exited():
            os.kill(t.pid, signal.SIGKILL)
            os.waitpid(t.pid, 0)
        sys.stdout.write("TRANSCRIPT %r\n" % t.out)
        sys.stdout.write("FAIL: %s\n" % e)
        return 1
    sys.stdout.write("TRANSCRIPT %r\n" % t.out)
    sys.stdout.write("PASS\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
