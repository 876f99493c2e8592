"""timestamp.txt is a FIFO (a named pipe) with no writer.

Stock nbgrader fails this student when it copies the folder (`shutil.copy` refuses a
named pipe; the run exits 1), and its timestamp reader would block on `open()`. It is
neither opened for a blocking read nor copied: the timestamp is treated as missing, with
the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "timestamp.txt is not a regular file"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook and make timestamp.txt a named pipe."""
    nbformat.write(work, path)
    os.mkfifo(path.parent / "timestamp.txt")
