"""Attack (a notebook cell): write junk into every inherited file descriptor but 0/1/2.

A 2 GB length header and binary noise: a reader of a pipe it shares with the job (the
job's channel, fd 3, included) must neither wait for 2 GB, nor allocate it, nor crash.
The notebook's own files (IPython's history) are spared.
"""
PAYLOAD = b"\x7f\xff\xff\xff" + b"junk" * 1024 + bytes(range(256)) * 4

import os
_here = os.path.realpath(".")
for _fd in sorted(int(x) for x in os.listdir("/proc/self/fd")):
    if _fd <= 2:
        continue
    try:
        _target = os.readlink("/proc/self/fd/%d" % _fd)
    except OSError:
        continue
    if _target.startswith(_here):  # the notebook's own files (IPython's history)
        continue
    try:
        os.write(_fd, PAYLOAD)
    except OSError:
        pass
