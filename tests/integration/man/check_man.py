#!/usr/bin/env python3
"""The man pages against the programs: every option a program's --help names appears in its man
page source, and `man --warnings -l` renders every page without a warning.

usage: check_man.py BIN_DIR MAN_SOURCE_DIR MAN_BUILD_DIR
"""
import os
import re
import shutil
import subprocess
import sys

bin_dir, source_dir, build_dir = sys.argv[1:4]

# program -> (man page source, the --help invocations whose options the page must describe)
PAGES = {
    "pyrun": ("pyrun.1.scd", [["--help"]]),
    "pyrund": ("pyrund.8.scd", [["--help"]]),
    "pyrun-policy": ("pyrun-policy.1.scd", [["--help"]]),
    "pyrun-ca": ("pyrun-ca.1.scd", [["--help"]] + [[c, "--help"] for c in
                 ("init", "server", "client", "list", "show", "revoke", "crl", "renew")]),
}
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")

failures = []
for program, (page, invocations) in PAGES.items():
    with open(os.path.join(source_dir, page), encoding="utf-8") as f:
        # scdoc escapes: \- and \_ are the plain characters.
        text = f.read().replace("\\-", "-").replace("\\_", "_")
    for args in invocations:
        help_text = subprocess.run([os.path.join(bin_dir, program)] + args, capture_output=True,
                                   text=True, timeout=30).stdout
        if not help_text:
            failures.append(f"{program} {' '.join(args)} printed nothing")
        for option in sorted(set(OPTION.findall(help_text))):
            if re.search(r"(?<![\w-])" + re.escape(option) + r"(?![\w-])", text) is None:
                failures.append(f"{page}: does not mention {option} "
                                f"(from `{program} {' '.join(args)}`)")
    # Every page says how to get the version.
    if "--version" not in text:
        failures.append(f"{page}: does not mention --version")

if shutil.which("man") is None:
    print("man is not installed: pages not rendered")
else:
    for page in sorted(os.listdir(build_dir)):
        if not re.search(r"\.[1-8]$", page):
            continue
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MANROFFSEQ="")
        r = subprocess.run(["man", "--warnings", "-l", os.path.join(build_dir, page)],
                           capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0 or r.stderr.strip():
            failures.append(f"man --warnings -l {page}: status {r.returncode}\n{r.stderr}")

for f in failures:
    print(f)
sys.exit(1 if failures else 0)
