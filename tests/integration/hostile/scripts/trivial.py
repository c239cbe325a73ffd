# Not an attack: the job run after each attack to show the server still serves.
import sys
print("alive", sum(int(a) for a in sys.argv[1:]), flush=True)
