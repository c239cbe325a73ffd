# Attacks the job slots by never ending: sleeps far past the wall-clock limit, which must end the
# job (verdict "wall-clock limit").
import time

print("SLEEPING", flush=True)
time.sleep(100000)
print("WOKE", flush=True)
