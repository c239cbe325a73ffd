try:
    input("ready> ")
except KeyboardInterrupt:
    print("KEYBOARD-INTERRUPT")
