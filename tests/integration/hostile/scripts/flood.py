# Attacks the client and the server's memory with endless output. The output limit must deliver at
# most its size, kill the job and say that the output was truncated.
import sys

line = ("y" * 1023 + "\n").encode()
while True:
    sys.stdout.buffer.write(line)
