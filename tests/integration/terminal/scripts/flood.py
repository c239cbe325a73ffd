# Writes to the terminal without end: the output cap must stop it.
import os
chunk = b"x" * 65536
while True:
    os.write(1, chunk)
