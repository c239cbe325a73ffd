# Attacks the CPU: spins for ever. The CPU time limit must end the job (verdict "CPU time limit").
print("SPINNING", flush=True)
while True:
    pass
