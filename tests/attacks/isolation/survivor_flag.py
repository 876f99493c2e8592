"""Probe (a notebook cell): find what a survivor of an earlier job left for this one.

A survivor (leave_survivor.py) writes `ck-flag-CK_TOKEN` wherever it can write if it could
read the hidden checks: /tmp, its home, its working folder, other jobs' folders.
`probe()` is True when this job sees such a flag.
"""
import glob
import os


def probe() -> bool:
    name = "ck-flag-" + CK_TOKEN
    for pattern in ["/tmp/" + name, name, "../" + name, os.path.expanduser("~/" + name),
                    "/tmp/*/" + name, "/tmp/*/*/" + name, "/tmp/*/*/*/" + name]:
        if glob.glob(pattern):
            return True
    return False
