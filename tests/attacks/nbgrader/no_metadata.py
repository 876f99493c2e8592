"""No nbgrader metadata in any cell (an editor that drops unknown metadata, or a student
who deletes it).

The answers are still the student's code and are graded as such; the hidden checks, which
carry the points, are added back from the course.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

SCORE = "full"  # every autograded point of the course
NOTE = "graded cells were missing and were added back"


def submit(path: Path, work: nbformat.NotebookNode) -> None:
    """Write the notebook without any cell's nbgrader metadata."""
    for cell in work.cells:
        cell.metadata.pop("nbgrader", None)
    nbformat.write(work, path)
