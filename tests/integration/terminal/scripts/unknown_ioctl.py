# An ioctl request that no policy group lists gets the policy's default action.
import fcntl
print("ATTEMPT", flush=True)
fcntl.ioctl(0, 0x541E, bytes(64))  # TIOCGSERIAL
print("SURVIVED", flush=True)
