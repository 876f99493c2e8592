"""A FIFO (named pipe) among the other files of the submitted folder.

Stock nbgrader's autograde fails this student (`shutil.copy` refuses a named pipe: no
autograded notebook, no feedback, the run exits 1). The FIFO is not copied; the notebook is
graded as usual, and the note names it.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "not a regular file"
NAMED = ("pipe",)


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook and a FIFO named `pipe` beside it."""
    nbformat.write(work, path)
    os.mkfifo(path.parent / "pipe")
