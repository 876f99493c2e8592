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
import os

from nbgrader.utils import parse_utc

from coursekit.safe_read import FileRefused, read_bounded

NAME = "timestamp.txt"
MAX_BYTES = 1024  # nbgrader writes about 30 characters ("2024-05-01 12:00:00.000000 UTC")


def read_timestamp(folder: str) -> tuple[datetime.datetime | None, str | None]:
    """The submission time in `folder`/timestamp.txt (naive UTC, as nbgrader's), or None and
    why the file was not used ('is a link', 'is not a regular file', 'is larger than ...',
    'is not a time', 'cannot be read (...)'); (None, None) for no file or an empty one."""
    try:
        data = read_bounded(os.path.join(folder, NAME), MAX_BYTES)
    except FileRefused as exc:
        if exc.missing:
            return None, None  # no timestamp, as nbgrader
        return None, "is a link" if exc.why.startswith("is a link") else exc.why
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
