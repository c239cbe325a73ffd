# Attacks the network: TCP and UDP to loopback (the server's own port included, given as argv[1]),
# IPv6, raw, packet and netlink sockets, and a listening socket. Every attempt must print BLOCKED
# with PermissionError (the policy answers EPERM for these families), and the job's network
# namespace must hold only its own loopback interface (IFACES lo).
import socket
import sys

port = int(sys.argv[1])


def attempt(what, fn):
    try:
        fn()
        print("ALLOWED", what, flush=True)
    except OSError as e:
        print("BLOCKED %s: %s" % (what, type(e).__name__), flush=True)


def tcp(family, host, p):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((host, p))


def udp(family, host, p):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.sendto(b"x", (host, p))


def listen():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("0.0.0.0", 0))
    s.listen()


attempt("tcp 127.0.0.1 server port", lambda: tcp(socket.AF_INET, "127.0.0.1", port))
attempt("tcp ::1 server port", lambda: tcp(socket.AF_INET6, "::1", port))
attempt("udp 127.0.0.1:53", lambda: udp(socket.AF_INET, "127.0.0.1", 53))
attempt("udp 127.0.0.1 server port", lambda: udp(socket.AF_INET, "127.0.0.1", port))
attempt("udp ::1:53", lambda: udp(socket.AF_INET6, "::1", 53))
attempt("raw icmp", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0x0300))
attempt("netlink route", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("listen 0.0.0.0", listen)
# The network namespace itself: a fresh one has only its loopback interface.
with open("/proc/self/net/dev") as f:
    names = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
print("IFACES", " ".join(names), flush=True)
print("DONE", flush=True)
