import os, signal, sys, time
changed = []
signal.signal(signal.SIGWINCH, lambda *a: changed.append(1))
size = os.get_terminal_size()
print("SIZE", size.columns, size.lines, flush=True)
while not changed:
    time.sleep(0.05)
size = os.get_terminal_size()
print("WINCH", size.columns, size.lines)
