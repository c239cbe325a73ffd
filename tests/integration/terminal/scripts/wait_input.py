input("ready> ")
print("never typed")
