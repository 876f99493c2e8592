"""The batch's stored reports: `OUT/.reports/KEY.json`, one per submission content and
grader version, written atomically, so that an interrupted run (Ctrl-C, kill -9) loses
nothing it had finished and the next run grades only what is missing.

A stored report is read back through the one codec (`coursekit.report.decode`): one
that is unreadable or malformed counts as missing and is graded again.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from coursekit.safe_read import read_bounded
from coursekit.report import MAX_REPORT_BYTES, Cases, Report, ReportError, decode, encode


def grader_version(config: Path, lab_folder: Path) -> str:
    """Hash of everything that decides a score: the engine's code, the course's settings
    (`config`, course_config.py) and the lab's folder (its checks and lab.toml)."""
    import coursekit

    h = hashlib.sha256()
    package = Path(coursekit.__file__).parent
    for folder, pattern in ((package, "**/*.py"), (lab_folder, "*.py"), (lab_folder, "*.toml")):
        for path in sorted(folder.glob(pattern)):  # the engine and its sandbox; the lab's own files
            h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    h.update(config.read_bytes())
    return h.hexdigest()[:16]


def bounded_bytes(path: Path, limit: int) -> bytes:
    """At most `limit` + 1 bytes of a regular file, never through a link and never
    waiting on a FIFO (`safe_read.read_bounded`); OSError where it cannot be read that way."""
    return read_bounded(path, limit)


def content_key(path: Path, version: str, limit_bytes: int) -> str:
    """The stored report's key: grader version, file name (messages quote it) and content
    (at most the size cap + 1 bytes: beyond that it is refused anyway). A file that
    cannot be read (a link, a FIFO) gets a key of its name alone; the grader reports it."""
    h = hashlib.sha256(version.encode() + b"\0" + path.name.encode(errors="replace") + b"\0")
    try:
        h.update(b"\1" + bounded_bytes(path, limit_bytes))
    except OSError:
        pass
    return h.hexdigest()[:32]


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in its folder: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ReportStore:
    """The reports stored in one folder, by content key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: str) -> Path:
        """Where the report of `key` is stored."""
        return self.folder / f"{key}.json"

    def get(self, key: str, cases: Cases) -> Report | None:
        """The stored report (of the lab whose case table is `cases`), or None when
        missing, unreadable or malformed."""
        try:
            with self.path(key).open("rb") as f:
                return decode(f.read(MAX_REPORT_BYTES + 1), cases)
        except (OSError, ReportError):
            return None

    def put(self, key: str, report: Report) -> None:
        """Store `report` atomically."""
        write_atomic(self.path(key), encode(report))
