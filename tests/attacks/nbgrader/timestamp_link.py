"""timestamp.txt is a link to the instructor's source notebook.

Stock nbgrader follows it twice: it copies the source notebook into the autograded (then
feedback) folder as timestamp.txt, and reads it as a time, which fails the student (the
run exits 1). The link is neither read nor copied: the timestamp is treated as missing,
with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "timestamp.txt is a link"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook and timestamp.txt -> ../../../source/<assignment>/<nb>.ipynb."""
    nbformat.write(work, path)
    os.symlink(Path("..", "..", "..", "source", path.parent.name, path.name),
               path.parent / "timestamp.txt")
