"""Reading a file that someone else could have written: never through a link, never waiting
on a FIFO, never more than a bound.

The attack it stops: a submission (or a file beside it, such as nbgrader's timestamp.txt)
that is a symbolic link to a file of the grader's, a FIFO that hangs the reader for ever, a
device, or a file that grows while it is read. Every reader of such a file in coursekit goes
through `open_regular` or `read_bounded`; what is wrong is one short phrase (`FileRefused.why`)
the caller puts in its own message.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


class FileRefused(OSError):
    """The file cannot be read safely; `why` says why in a few words ("is a link", "is not a
    file", "is not a regular file", "cannot be read (...)")."""

    def __init__(self, why: str, missing: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.missing = missing  # there is no file (ENOENT, ENOTDIR)


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for reading if it is a regular file reached without following a link
    (O_NOFOLLOW; O_NONBLOCK so that opening a FIFO cannot hang); FileRefused otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRefused("is a link, not a file") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise FileRefused("is not a file", missing=True) from None
        raise FileRefused(f"cannot be read ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileRefused("is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_bounded(path: str | Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of the regular file `path` (`open_regular`): a result longer
    than `limit` means the file is larger, whatever its size said when it was opened."""
    with open_regular(path) as f:
        if os.fstat(f.fileno()).st_size > limit:
            return f.read(limit + 1)
        data = b""
        while len(data) <= limit:  # bounded even if it grows meanwhile
            chunk = f.read(limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
        return data
