"""The submitted assignment folder is itself a link, to the instructor's source folder.

Stock nbgrader reads the notebook through the link and grades the instructor's source
notebook (full marks; its model answers are kept as the student's answers and shown in
the feedback), and copies the source folder's other files. Nothing is read through the
link: 0 points, with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat

SCORE = "none"  # no autograded point
NOTE = "the submitted folder is a link"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Replace course/submitted/<student>/<assignment>/ (empty) with a relative link to
    course/source/<assignment>/."""
    folder = path.parent
    folder.rmdir()
    os.symlink(Path("..", "..", "source", folder.name), folder)
