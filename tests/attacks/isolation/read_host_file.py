"""Probe (a notebook cell): read a file of the host the job must not see.

CK_PATH is the file (the repository's hidden checks, the master notebook, the solutions, a
classmate's submission, a user's secret...), CK_SHA256 the digest of its real bytes.
`probe()` is True when the job got those bytes.
"""
import hashlib


def probe() -> bool:
    with open(CK_PATH, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest() == CK_SHA256
