import getpass
secret = getpass.getpass("pw: ")
print("GOT", len(secret))
