"""A timestamp.txt that is not a time.

Stock nbgrader's autograde hits its own bug on it (`'CourseDirectory' object has no
attribute 'fail'`; bytes that are not UTF-8 raise UnicodeDecodeError instead): the
student is not graded and the run exits 1. The timestamp is
treated as missing (no submission time), the notebook is graded as usual, with the reason.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "timestamp.txt is not a time"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook and a garbage timestamp.txt beside it."""
    nbformat.write(work, path)
    (path.parent / "timestamp.txt").write_text("next tuesday, honest <b>late</b>\n")
