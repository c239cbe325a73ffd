# Attacks the cleanup of the working directory: plants symbolic links to host paths of the test
# (argv[1] a file, argv[2] a directory) and a hard link to a system file, then exits. Removing the
# working directory must not follow any of them: the host file and directory stay unchanged.
import os

cwd = os.getcwd()
os.symlink(os.sys.argv[1], os.path.join(cwd, "file-link"))
os.symlink(os.sys.argv[2], os.path.join(cwd, "dir-link"))
os.mkdir(os.path.join(cwd, "sub"))
os.symlink(os.sys.argv[2], os.path.join(cwd, "sub", "deeper-link"))
os.symlink("/", os.path.join(cwd, "root-link"))
for target in ("/etc/passwd", os.sys.argv[1]):
    try:
        os.link(target, os.path.join(cwd, "hard-" + os.path.basename(target)))
        print("LINKED", target, flush=True)
    except OSError as e:
        print("BLOCKED link %s: %s" % (target, type(e).__name__), flush=True)
print("PLANTED", flush=True)
