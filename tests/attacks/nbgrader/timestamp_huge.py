"""A huge timestamp.txt (2 MB of digits).

Stock nbgrader reads all of it and fails this student (dateutil: OverflowError; the run
exits 1). The file is not read past a few kilobytes: treated as missing, with the reason.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "timestamp.txt is larger than"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook and 2 MB of '9' as its timestamp.txt."""
    nbformat.write(work, path)
    (path.parent / "timestamp.txt").write_bytes(b"9" * (2 << 20))
