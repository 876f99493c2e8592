"""Probe (a notebook cell): see the grader's environment.

The test puts CK_NAME=CK_VALUE in the grader's environment. `probe()` is True when the job
finds it in its own environment or in the environ of any process it can read.
"""
import glob
import os


def probe() -> bool:
    if os.environ.get(CK_NAME) == CK_VALUE:
        return True
    for path in ["/proc/self/environ"] + glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(path, "rb") as f:
                if (CK_NAME + "=" + CK_VALUE).encode() in f.read():
                    return True
        except OSError:
            pass
    return False
