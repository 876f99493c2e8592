"""Probe (a notebook cell): list or read the grader's cache of hidden data.

The bundle cache's file names carry the data seed, and its files the hidden inputs.
CK_CACHE is the cache folder, CK_FILES pairs of (path, sha256) of files in it. `probe()`
is True when the job could list a `bundle-*` name there or read any of those files.
"""
import hashlib
import os


def probe() -> bool:
    try:
        if any(n.startswith("bundle-") for n in os.listdir(CK_CACHE)):
            return True
    except OSError:
        pass
    for path, digest in CK_FILES:
        try:
            with open(path, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() == digest:
                    return True
        except OSError:
            pass
    return False
