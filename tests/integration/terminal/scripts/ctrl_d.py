try:
    input("eof> ")
except EOFError:
    print("EOF-ERROR")
