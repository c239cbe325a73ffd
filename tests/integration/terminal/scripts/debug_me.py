x = 41
breakpoint()
print("AFTER", x)
