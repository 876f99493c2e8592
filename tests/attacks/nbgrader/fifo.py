"""The submitted notebook is a FIFO (a named pipe) with no writer.

Stock nbgrader opens it to read and blocks forever: the whole autograde run hangs. A
FIFO is not a submission: 0 points, with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

SCORE = "none"  # no autograded point
NOTE = "is not a regular file"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Make `path` a named pipe."""
    os.mkfifo(path)
