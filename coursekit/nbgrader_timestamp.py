"""How `nbgrader autograde` reads a student's timestamp.txt: as hostile bytes, never fatally.

Stops: a `timestamp.txt` in a submitted folder that is not a time (garbage, not UTF-8),
huge, a link (to the instructor's files) or a FIFO. Stock nbgrader
(`CourseDirectory.get_existing_timestamp`) follows a link, blocks on a FIFO's `open()`,
reads any size, and for text it cannot parse calls `self.fail`, which CourseDirectory does
not have: the AttributeError (or dateutil's OverflowError) fails that student (no
autograded notebook, no feedback) and the run exits 1.

`read_timestamp(folder)` opens the file without following a link and without blocking,
reads at most `MAX_BYTES` of a regular file, and parses it as nbgrader does
(`nbgrader.utils.parse_utc`). It never raises: it returns the time, or None with the
reason the file was not used (None and no reason when there is no file, or it is empty,
which nbgrader also takes for no timestamp).
"""

from __future__ import annotations

import datetime
import errno
import os
import stat

from nbgrader.utils import parse_utc

NAME = "timestamp.txt"
MAX_BYTES = 1024  # nbgrader writes about 30 characters ("2024-05-01 12:00:00.000000 UTC")


def read_timestamp(folder: str) -> tuple[datetime.datetime | None, str | None]:
    """The submission time in `folder`/timestamp.txt (naive UTC, as nbgrader's), or None and
    why the file was not used ('is a link', 'is not a regular file', 'is larger than ...',
    'is not a time', 'cannot be read (...)'); (None, None) for no file or an empty one."""
    path = os.path.join(folder, NAME)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None, None  # no timestamp, as nbgrader
        if exc.errno == errno.ELOOP:
            return None, "is a link"
        return None, f"cannot be read ({exc.strerror})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a FIFO, a folder, a device
            return None, "is not a regular file"
        if info.st_size > MAX_BYTES:
            return None, f"is larger than {MAX_BYTES} bytes"
        os.set_blocking(fd, True)
        data = b""
        while len(data) <= MAX_BYTES:  # bounded even if it grew after fstat
            chunk = os.read(fd, MAX_BYTES + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        return None, f"is larger than {MAX_BYTES} bytes"
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, "is not a time"
    if not text:
        return None, None  # nbgrader: "Empty timestamp file", no timestamp
    try:
        when = parse_utc(text)
    except Exception:  # noqa: BLE001 - dateutil raises ValueError, OverflowError, ...
        return None, "is not a time"
    if not isinstance(when, datetime.datetime):
        return None, "is not a time"
    return when, None


def timestamp_line(reason: str) -> str:
    """The line for the student's note when their timestamp.txt was not used."""
    return (f"your {NAME} {reason}: it was ignored, so your submission has no submission "
            "time (it was graded as usual).")
